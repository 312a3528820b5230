"""Frontend: how tensors print, matching PyTorch character for character.

``format_tensor`` turns a tensor's values (a numpy array) into the text that
PyTorch 2.x gives for ``repr(tensor)`` / ``str(tensor)``, with ``fusegrad`` in
place of ``torch`` in dtype names.  It follows the rules of PyTorch's
``torch/_tensor_str.py``: one shared element width per tensor, "int mode" for
integral floats (``1.``), scientific notation for wide value ranges,
summarisation with ``...`` past ``threshold`` elements, wrapping of 1-D rows
at ``linewidth``, and the ``key=value`` suffixes after the values.

``set_printoptions`` / ``get_printoptions`` mirror ``torch.set_printoptions`` /
``torch._tensor_str.get_printoptions``.  This module depends on numpy only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy

MODULE_NAME = "fusegrad"
# Layout (where suffixes wrap) is decided with torch's spelling of dtype names,
# which is renamed afterwards, so the output is torch's with the name swapped.
_TORCH_DTYPE_PREFIX = "dtype=torch."

_NUMPY_DTYPES = {
    "float32": numpy.float32,
    "float64": numpy.float64,
    "float16": numpy.float32,     # torch formats 16-bit floats as float32 (_tensor_str)
    "bfloat16": numpy.float32,
    "int32": numpy.int32,
    "int64": numpy.int64,
    "uint8": numpy.uint8,
    "bool": numpy.bool_,
}
# The dtype torch prints no ``dtype=`` for: the default float dtype for floats,
# int64 for integers, bool for bools.
_DEFAULT_FLOAT_DTYPE = "float32"
_INFERRED_DTYPES = frozenset({_DEFAULT_FLOAT_DTYPE, "int64", "bool"})


@dataclasses.dataclass
class _PrintOptions:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool | None = None


_OPTIONS = _PrintOptions()

_PROFILES: dict[str, dict[str, float]] = {
    "default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
    "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
    "full": dict(precision=4, threshold=math.inf, edgeitems=3, linewidth=80),
}


def set_printoptions(precision: int | None = None, threshold: float | None = None, edgeitems: int | None = None,
                     linewidth: int | None = None, profile: str | None = None,
                     sci_mode: bool | None = None) -> None:
    """Set the print options, like ``torch.set_printoptions``.

    A ``profile`` ("default", "short" or "full") is applied first, then any
    explicit option overrides it.  ``sci_mode`` is always assigned, so leaving
    it out resets it to automatic, as in torch.
    """
    if profile is not None:
        for name, value in _PROFILES[profile].items():
            setattr(_OPTIONS, name, value)
    explicit: dict[str, float | None] = {"precision": precision, "threshold": threshold,
                                         "edgeitems": edgeitems, "linewidth": linewidth}
    for name, given in explicit.items():
        if given is not None:
            setattr(_OPTIONS, name, given)
    _OPTIONS.sci_mode = sci_mode


def get_printoptions() -> dict[str, Any]:
    """The current print options, as keyword arguments for ``set_printoptions``."""
    return dataclasses.asdict(_OPTIONS)


class _ElementFormatter:
    """Formats single elements of one tensor to a common width.

    Built from the values that will be shown (the summarised ones when the
    tensor is summarised), it decides between plain, int and scientific
    notation for floats and finds the widest element.
    """

    def __init__(self, shown_values: numpy.ndarray):
        self.is_float = shown_values.dtype.kind == "f"
        self.int_mode = True
        self.sci_mode = False
        self.width = 1
        flat = shown_values.reshape(-1)
        if not self.is_float:
            self.width = max([self.width] + [len(str(v)) for v in flat.tolist()])
            return
        nonzero_finite = flat[numpy.isfinite(flat) & (flat != 0)]
        if nonzero_finite.size == 0:
            return
        magnitudes = numpy.abs(nonzero_finite)
        smallest, largest = float(magnitudes.min()), float(magnitudes.max())
        self.int_mode = bool(numpy.all(nonzero_finite == numpy.ceil(nonzero_finite)))
        if _OPTIONS.sci_mode is None:
            self.sci_mode = largest / smallest > 1000.0 or largest > 1.0e8 or smallest < 1.0e-4
        else:
            self.sci_mode = _OPTIONS.sci_mode
        self.width = max([self.width] + [self._measure(v) for v in nonzero_finite.tolist()])

    def _measure(self, value: float) -> int:
        """The width of one nonzero finite float in the chosen notation."""
        if self.sci_mode:
            return len(f"{value:.{_OPTIONS.precision}e}")
        if self.int_mode:
            return len(f"{value:.0f}") + 1  # room for the trailing "."
        return len(f"{value:.{_OPTIONS.precision}f}")

    def format(self, value: float) -> str:
        """One element (a Python scalar), right-aligned to the common width."""
        if not self.is_float:
            text = str(value)
        elif self.sci_mode:
            text = f"{value:{self.width}.{_OPTIONS.precision}e}"
        elif self.int_mode:
            text = f"{value:.0f}"
            if math.isfinite(value):
                text += "."
        else:
            text = f"{value:.{_OPTIONS.precision}f}"
        return text.rjust(self.width)


def _summary_indices(length: int, edgeitems: int) -> list[int]:
    """Indices kept along one dimension when summarising: the edges, or all."""
    if length > 2 * edgeitems:
        return list(range(edgeitems)) + list(range(length - edgeitems, length))
    return list(range(length))


def _summarized_values(values: numpy.ndarray) -> numpy.ndarray:
    """The elements a summarised tensor shows, for choosing the notation and width.

    Mirrors torch's ``get_summarized_data``, including its quirks with
    ``edgeitems=0``: a 1-D tensor then keeps every element (``t[-0:]`` is the
    whole tensor) while a higher-dimensional one keeps none.
    """
    edgeitems = _OPTIONS.edgeitems
    if values.ndim == 0:
        return values
    if values.ndim == 1:
        if values.shape[0] > 2 * edgeitems:
            return numpy.concatenate((values[:edgeitems], values[-edgeitems:]))
        return values
    if not edgeitems:
        return values[(slice(0, 0),) * values.ndim]
    return values[numpy.ix_(*(_summary_indices(n, edgeitems) for n in values.shape))]


def _format_vector(values: numpy.ndarray, indent: int, summarize: bool,
                   formatter: _ElementFormatter) -> str:
    """A 1-D tensor: its elements, wrapped so each line fits ``linewidth``."""
    edgeitems = _OPTIONS.edgeitems
    if summarize and not edgeitems:
        elements = ["..."]
    elif summarize and values.shape[0] > 2 * edgeitems:
        elements = ([formatter.format(v) for v in values[:edgeitems].tolist()] + [" ..."]
                    + [formatter.format(v) for v in values[-edgeitems:].tolist()])
    else:
        elements = [formatter.format(v) for v in values.tolist()]
    per_line = max(1, math.floor((_OPTIONS.linewidth - indent) / (formatter.width + 2)))
    lines = [", ".join(elements[i:i + per_line]) for i in range(0, len(elements), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _format_nested(values: numpy.ndarray, indent: int, summarize: bool,
                   formatter: _ElementFormatter) -> str:
    """Any tensor with elements: brackets within brackets down to 1-D rows.

    Slices of an N-D tensor are separated by N-1 newlines, so 3-D and higher
    tensors get blank lines between their matrices.
    """
    if values.ndim == 0:
        return formatter.format(values.item())
    if values.ndim == 1:
        return _format_vector(values, indent, summarize, formatter)
    edgeitems = _OPTIONS.edgeitems
    length = values.shape[0]
    if summarize and length > 2 * edgeitems:
        slices = ([_format_nested(values[i], indent + 1, summarize, formatter)
                   for i in range(edgeitems)] + ["..."]
                  + [_format_nested(values[i], indent + 1, summarize, formatter)
                     for i in range(length - edgeitems, length)])
    else:
        slices = [_format_nested(values[i], indent + 1, summarize, formatter)
                  for i in range(length)]
    separator = "," + "\n" * (values.ndim - 1) + " " * (indent + 1)
    return "[" + separator.join(slices) + "]"


def _format_body(values: numpy.ndarray, indent: int) -> str:
    """The bracketed values of a tensor; ``indent`` is the column it starts at."""
    if values.size == 0:
        return "[]"
    summarize = values.size > _OPTIONS.threshold
    formatter = _ElementFormatter(_summarized_values(values) if summarize else values)
    return _format_nested(values, indent, summarize, formatter)


def _shape_suffix(shape: tuple[int, ...]) -> str:
    return "size=" + str(tuple(shape))


def _dtype_suffix(dtype_name: str) -> str:
    return _TORCH_DTYPE_PREFIX + dtype_name


def _metadata_suffixes(values: numpy.ndarray, dtype_name: str, device: str | None) -> list[str]:
    """The ``device=``, ``size=`` and ``dtype=`` suffixes torch adds, in its order."""
    suffixes = []
    if device is not None:
        suffixes.append(f"device='{device}'")
    if values.size == 0:
        # Nothing to infer the dtype from: anything but the default float shows it.
        if values.ndim != 1:
            suffixes.append(_shape_suffix(values.shape))
        if dtype_name != _DEFAULT_FLOAT_DTYPE:
            suffixes.append(_dtype_suffix(dtype_name))
    else:
        if not _OPTIONS.edgeitems:
            suffixes.append(_shape_suffix(values.shape))
        if dtype_name not in _INFERRED_DTYPES:
            suffixes.append(_dtype_suffix(dtype_name))
    return suffixes


def _append_suffixes(text: str, suffixes: Sequence[str], indent: int) -> str:
    """Close the repr, adding each suffix on the last line or, if it would pass
    ``linewidth``, on a new line at ``indent``."""
    parts = [text]
    # torch's measure of the last line (two more than its length with no newline).
    last_line_length = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line_length + len(suffix) + 2 > _OPTIONS.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last_line_length = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line_length += len(suffix) + 2
    parts.append(")")
    return "".join(parts)


def format_tensor(values: numpy.ndarray, *, dtype_name: str, suffixes: Sequence[str] = (),
                  device: str | None = None, prefix: str = "tensor(") -> str:
    """The repr of a tensor, exactly as PyTorch prints it.

    ``values`` holds the tensor's elements (cast to ``dtype_name``, one of
    float32 float64 float16 bfloat16 int32 int64 uint8 bool); ``device`` is None for cpu or a
    name such as "cuda:0"; ``suffixes`` such as "requires_grad=True" or
    "grad_fn=<AddBackward0>" come last, after device, size and dtype.
    """
    values = numpy.asarray(values, dtype=_NUMPY_DTYPES[dtype_name])
    indent = len(prefix)
    all_suffixes = _metadata_suffixes(values, dtype_name, device) + list(suffixes)
    text = _append_suffixes(prefix + _format_body(values, indent), all_suffixes, indent)
    return text.replace(_TORCH_DTYPE_PREFIX, f"dtype={MODULE_NAME}.")
