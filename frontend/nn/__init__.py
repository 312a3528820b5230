"""fusegrad.nn: PyTorch's torch.nn — Module, Parameter, layers, losses, functional, init, utils.

    import fusegrad.nn as nn
    import fusegrad.nn.functional as F
"""
from . import functional, init, utils
from .modules import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, BCELoss, BCEWithLogitsLoss, Conv1d,
                      Conv2d, ConvTranspose2d, CrossEntropyLoss, Dropout, ELU, Embedding, Flatten, GELU, GroupNorm, GRU,
                      GRUCell, HuberLoss, Identity, KLDivLoss, L1Loss, LayerNorm, LeakyReLU, Linear, LogSoftmax, LSTM,
                      LSTMCell, MaxPool1d, MaxPool2d, Module, ModuleDict, ModuleList, MSELoss, MultiheadAttention,
                      NLLLoss, ParameterList, ReLU, RMSNorm, RNN, RNNCell, Sequential, Sigmoid, SiLU, SmoothL1Loss,
                      Softmax, Softplus, Tanh, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder,
                      TransformerEncoderLayer, Unflatten, Upsample, UpsamplingBilinear2d, UpsamplingNearest2d)
from .parameter import Parameter

__all__ = ["functional", "init", "utils", "Parameter", "Module", "Sequential", "ModuleList", "ModuleDict",
           "ParameterList", "Identity", "Linear", "ReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "GELU", "SiLU",
           "LeakyReLU", "ELU", "Softplus", "Flatten", "Unflatten", "Dropout", "LayerNorm", "RMSNorm", "GroupNorm",
           "BatchNorm1d", "BatchNorm2d", "Embedding", "MSELoss", "L1Loss", "NLLLoss", "CrossEntropyLoss", "BCELoss",
           "BCEWithLogitsLoss", "SmoothL1Loss", "HuberLoss", "KLDivLoss", "Conv1d", "Conv2d", "ConvTranspose2d",
           "MaxPool1d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "MultiheadAttention", "TransformerEncoderLayer",
           "TransformerEncoder", "TransformerDecoderLayer", "TransformerDecoder", "RNN", "LSTM", "GRU", "RNNCell",
           "LSTMCell", "GRUCell", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"]

from . import parallel  # noqa: E402  (DistributedDataParallel builds on Module)
