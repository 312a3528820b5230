"""`fusegrad.device`: where a tensor lives, printed as PyTorch prints it."""
from __future__ import annotations


class device:
    __slots__ = ("type", "index")

    def __init__(self, type, index=None):   # noqa: A002 - PyTorch's signature
        if isinstance(type, device):
            type, index = type.type, type.index
        elif ":" in str(type):
            type, _, idx = str(type).partition(":")
            index = int(idx)
        if type not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device string: {type}")
        self.type, self.index = type, index

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and (self.index or 0) == (other.index or 0)

    def __hash__(self):
        return hash((self.type, self.index or 0))


CPU = device("cpu")


def as_device(value) -> device:
    if value is None:
        return CPU
    if isinstance(value, int):
        return device("cuda", value)
    d = device(value)
    return device("cuda", 0) if d.type == "cuda" and d.index is None else d
