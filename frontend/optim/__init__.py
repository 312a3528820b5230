"""fusegrad.optim: PyTorch's torch.optim optimizers, each step realized as one fused program,
and its learning-rate schedules (`fusegrad.optim.lr_scheduler`).

    import fusegrad.optim as optim
"""
from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam
from .adamw import AdamW
from .lbfgs import LBFGS
from .nadam import NAdam
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "NAdam", "Adadelta", "LBFGS", "lr_scheduler"]
