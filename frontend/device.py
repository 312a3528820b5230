"""`fusegrad.device`: where a tensor lives, printed as PyTorch prints it."""
from __future__ import annotations


class device:
    __slots__ = ("type", "index")

    type: str
    index: int | None

    def __init__(self, type: str | device, index: int | None = None) -> None:   # PyTorch's signature
        if isinstance(type, device):
            kind, index = type.type, type.index
        else:
            kind = str(type)
            if ":" in kind:
                kind, _, idx = kind.partition(":")
                index = int(idx)
        if kind not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device string: {kind}")
        self.type, self.index = kind, index

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = device(other)
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and (self.index or 0) == (other.index or 0)

    def __hash__(self) -> int:
        return hash((self.type, self.index or 0))


CPU = device("cpu")


def as_device(value: str | int | device | None) -> device:
    if value is None:
        return CPU
    if isinstance(value, int):
        return device("cuda", value)
    d = device(value)
    return device("cuda", 0) if d.type == "cuda" and d.index is None else d
