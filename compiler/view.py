"""Views: how movement ops (reshape, permute, expand, slice, pad, window) map an index to memory.

A `View` maps an index vector of its `shape` to a linear offset, `offset + sum(i*stride)`,
and says where the index is valid (`mask`: per-dim half-open ranges; outside them the value
reads as 0, which is how `pad` is free). A `ViewStack` composes views: when a reshape cannot
be written with strides (reshaping a permuted view, say), a new view is pushed whose offsets
are row-major positions in the view below. Fusion uses views to decide what a kernel can read
in place; both backends turn them into index arithmetic. The idea is tinygrad's ShapeTracker.
"""
from __future__ import annotations

from dataclasses import dataclass


def row_major_strides(shape) -> tuple:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc if d != 1 else 0)
        acc *= d
    return tuple(reversed(strides))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class View:
    shape: tuple
    strides: tuple
    offset: int = 0
    mask: tuple | None = None      # ((lo, hi), ...) per dim, or None for "all valid"

    @staticmethod
    def contiguous(shape) -> "View":
        return View(tuple(shape), row_major_strides(shape))

    @property
    def is_contiguous(self) -> bool:
        return self.offset == 0 and self.mask is None and self.strides == row_major_strides(self.shape)

    def dim_mask(self, d: int) -> tuple:
        return self.mask[d] if self.mask else (0, self.shape[d])

    @property
    def is_empty(self) -> bool:
        """True when no index is valid (a pad region sliced on its own, say)."""
        return self.mask is not None and any(hi <= lo for lo, hi in self.mask)

    def _with(self, shape, strides, offset, mask) -> "View":
        if mask is not None and any(hi <= lo for lo, hi in mask):
            mask = [(0, 0)] * len(shape)   # nothing valid: say so in every dim
        elif mask is not None and all(m == (0, s) for m, s in zip(mask, shape)):
            mask = None
        return View(tuple(shape), tuple(strides), offset, tuple(mask) if mask is not None else None)

    def permute(self, perm) -> "View":
        return self._with([self.shape[p] for p in perm], [self.strides[p] for p in perm], self.offset,
                          [self.mask[p] for p in perm] if self.mask else None)

    def expand(self, shape) -> "View":
        extra = len(shape) - len(self.shape)
        src_shape = (1,) * extra + self.shape
        src_strides = (0,) * extra + self.strides
        src_mask = ((0, 1),) * extra + self.mask if self.mask else None
        strides, mask = [], []
        for d, (s, t) in enumerate(zip(src_shape, shape)):
            lo, hi = src_mask[d] if src_mask else (0, s)
            if s == t:
                strides.append(src_strides[d])
                mask.append((lo, hi))
            else:  # broadcast a size-1 dim
                strides.append(0)
                mask.append((0, t) if hi > lo else (0, 0))
        return self._with(shape, strides, self.offset, mask)

    def slice(self, starts, stops, steps) -> "View":
        shape, strides, mask, offset = [], [], [], self.offset
        for d, (a, b, s) in enumerate(zip(starts, stops, steps)):
            size = _ceil_div(b - a, s)
            offset += a * self.strides[d]
            lo, hi = self.dim_mask(d)
            shape.append(size)
            strides.append(self.strides[d] * s)
            mask.append((min(size, max(0, _ceil_div(lo - a, s))), max(0, min(size, _ceil_div(hi - a, s)))))
        return self._with(shape, strides, offset, mask)

    def pad(self, low, high) -> "View":
        shape = [d + a + b for d, a, b in zip(self.shape, low, high)]
        offset = self.offset - sum(a * t for a, t in zip(low, self.strides))
        mask = []
        for d, a in enumerate(low):
            lo, hi = self.dim_mask(d)
            mask.append((lo + a, hi + a))
        return self._with(shape, self.strides, offset, mask)

    def window(self, kernel, strides, dilations) -> "View | None":
        """The sliding windows of the trailing len(kernel) dims, [..., H..] -> [..., O.., K..]:
        index (o, k) reads o*s + k*d, one strided view. None when a windowed dim is masked
        (validity of o*s + k*d is no per-dim range): the caller stacks a view instead."""
        k = len(kernel)
        lead = len(self.shape) - k
        if self.mask is not None and any(self.mask[d] != (0, self.shape[d]) for d in range(lead, len(self.shape))):
            return None
        sizes, base = self.shape[lead:], self.strides[lead:]
        outs = tuple((h - d * (kk - 1) - 1) // s + 1 for h, kk, s, d in zip(sizes, kernel, strides, dilations))
        shape = self.shape[:lead] + outs + tuple(kernel)
        win_strides = self.strides[:lead] + tuple(t * s for t, s in zip(base, strides)) + \
            tuple(t * d for t, d in zip(base, dilations))
        mask = None
        if self.mask is not None:
            mask = list(self.mask[:lead]) + [(0, n) for n in shape[lead:]]
        return self._with(shape, win_strides, self.offset, mask)

    def reshape(self, shape) -> "View | None":
        """The same elements in row-major order under a new shape, as one view, or None."""
        shape = tuple(shape)
        if shape == self.shape:
            return self
        if self.mask is not None:
            return self._reshape_masked(shape)
        old = [(d, t) for d, t in zip(self.shape, self.strides) if d != 1]
        i = 0
        new_real = [j for j, d in enumerate(shape) if d != 1]
        out = [0] * len(shape)
        j = 0
        while j < len(new_real) or i < len(old):
            if j >= len(new_real) or i >= len(old):
                return None
            # grow a group of old dims and a group of new dims until their products agree
            gi, gj = [i], [new_real[j]]
            po, pn = old[i][0], shape[new_real[j]]
            while po != pn:
                if po < pn:
                    i += 1
                    if i >= len(old):
                        return None
                    gi.append(i)
                    po *= old[i][0]
                else:
                    j += 1
                    if j >= len(new_real):
                        return None
                    gj.append(new_real[j])
                    pn *= shape[new_real[j]]
            for a, b in zip(gi, gi[1:]):  # the old group must be contiguous within itself
                if old[a][1] != old[b][1] * old[b][0]:
                    return None
            stride = old[gi[-1]][1]
            for k in reversed(gj):
                out[k] = stride
                stride *= shape[k]
            i += 1
            j += 1
        return self._with(shape, out, self.offset, None)

    def _reshape_masked(self, shape) -> "View | None":
        """Reshapes that only add or drop size-1 dims keep the mask; others need a new view."""
        if self.is_empty:
            if not shape:      # rank 0 has no dim to mark invalid: the caller stacks a view instead
                return None
            return self._with(shape, [0] * len(shape), 0, [(0, 0)] * len(shape))
        if [d for d in shape if d != 1] != [d for d in self.shape if d != 1]:
            return None
        assert self.mask is not None
        real = [(t, m) for d, t, m in zip(self.shape, self.strides, self.mask) if d != 1]
        strides, mask, k = [], [], 0
        for d in shape:
            if d == 1:
                strides.append(0)
                mask.append((0, 1))
            else:
                strides.append(real[k][0])
                mask.append(real[k][1])
                k += 1
        return self._with(shape, strides, self.offset, mask)


@dataclass(frozen=True)
class ViewStack:
    views: tuple          # views[-1] is indexed by the consumer; views[0] gives memory offsets

    @staticmethod
    def contiguous(shape) -> "ViewStack":
        return ViewStack((View.contiguous(shape),))

    @property
    def shape(self) -> tuple:
        return self.views[-1].shape

    @property
    def single(self) -> View | None:
        """The one view, when the stack is a plain strided view."""
        return self.views[0] if len(self.views) == 1 else None

    @property
    def is_empty(self) -> bool:
        """True when no index is valid at some level, so every read through the stack is 0."""
        return any(v.is_empty for v in self.views)

    def _top(self, view: View) -> "ViewStack":
        return ViewStack(self.views[:-1] + (view,))

    def permute(self, perm):
        return self._top(self.views[-1].permute(perm))

    def expand(self, shape):
        return self._top(self.views[-1].expand(shape))

    def slice(self, starts, stops, steps):
        return self._top(self.views[-1].slice(starts, stops, steps))

    def pad(self, low, high):
        return self._top(self.views[-1].pad(low, high))

    def window(self, kernel, strides, dilations):
        top = self.views[-1]
        windowed = top.window(kernel, strides, dilations)
        if windowed is not None:
            return self._top(windowed)
        under = View.contiguous(top.shape).window(kernel, strides, dilations)
        assert under is not None
        return ViewStack(self.views + (under,))

    def reshape(self, shape):
        merged = self.views[-1].reshape(shape)
        if merged is not None:
            return self._top(merged)
        return ViewStack(self.views + (View.contiguous(shape),))

    def apply(self, op: str, attrs: dict) -> "ViewStack":
        """The stack after one movement op (concat is not a view; codegen splits it)."""
        if op == "reshape":
            return self.reshape(attrs["shape"])
        if op == "permute":
            return self.permute(attrs["perm"])
        if op == "expand":
            return self.expand(attrs["shape"])
        if op == "slice":
            return self.slice(attrs["starts"], attrs["stops"], attrs["steps"])
        if op == "pad":
            return self.pad(attrs["low"], attrs["high"])
        if op == "window":
            return self.window(attrs["kernel"], attrs["strides"], attrs["dilations"])
        raise ValueError(f"{op} is not a view op")
