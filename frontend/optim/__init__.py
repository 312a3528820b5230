"""fusegrad.optim: PyTorch's torch.optim optimizers, each step realized as one fused program.

    import fusegrad.optim as optim
"""
from .adam import Adam
from .adamw import AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop"]
