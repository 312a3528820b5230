"""fusegrad.nn: PyTorch's torch.nn — Module, Parameter, layers, losses, functional, init, utils.

    import fusegrad.nn as nn
    import fusegrad.nn.functional as F
"""
from . import functional, init, utils
from .modules import (ELU, GELU, BatchNorm1d, BatchNorm2d, BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, Dropout,
                      Embedding, Flatten, GroupNorm, HuberLoss, Identity, KLDivLoss, L1Loss, LayerNorm, LeakyReLU,
                      Linear, LogSoftmax, Module, ModuleDict, ModuleList, MSELoss, NLLLoss, ParameterList, ReLU,
                      RMSNorm, Sequential, Sigmoid, SiLU, SmoothL1Loss, Softmax, Softplus, Tanh, Unflatten)
from .parameter import Parameter

__all__ = ["functional", "init", "utils", "Parameter", "Module", "Sequential", "ModuleList", "ModuleDict",
           "ParameterList", "Identity", "Linear", "ReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "GELU", "SiLU",
           "LeakyReLU", "ELU", "Softplus", "Flatten", "Unflatten", "Dropout", "LayerNorm", "RMSNorm", "GroupNorm",
           "BatchNorm1d", "BatchNorm2d", "Embedding", "MSELoss", "L1Loss", "NLLLoss", "CrossEntropyLoss", "BCELoss",
           "BCEWithLogitsLoss", "SmoothL1Loss", "HuberLoss", "KLDivLoss"]

from .modules import (AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, ConvTranspose2d, MaxPool1d,  # noqa: E402
                      MaxPool2d)

__all__ += ["Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool1d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]

from .modules import (GRU, LSTM, RNN, GRUCell, LSTMCell, MultiheadAttention, RNNCell,  # noqa: E402
                      TransformerDecoder, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer)

__all__ += ["MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder", "TransformerDecoderLayer",
            "TransformerDecoder", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]

from .modules import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d  # noqa: E402

__all__ += ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"]
