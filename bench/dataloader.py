"""DataLoader throughput: fusegrad.utils.data against torch.utils.data, with the same code.

One epoch over the digits data (sklearn's `load_digits`: 1797 x 64 float32 features, int64
labels) as a TensorDataset, batch_size=64, shuffle=True: 29 batches. The epoch is timed
from `iter(loader)` to its last batch, so with workers it includes starting them (what a
default DataLoader pays every epoch); the persistent-workers rows keep them between epochs.
The rows with workers fork two worker processes (the machine's core count limits what they
can gain on a dataset this cheap to read).

Every number is a median over several epochs of this one run; `vs torch` is PyTorch's
median epoch time over fusegrad's (> 1: fusegrad faster), i.e. fusegrad's batches per second
over PyTorch's.

Run: python bench/dataloader.py
"""
from __future__ import annotations

import importlib
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import Row, machine, median_time, table, time_peers  # noqa: E402

BATCH = 64
CONFIGS = [  # (label, DataLoader keywords, epochs timed)
    ("workers=0", dict(num_workers=0), 25),
    ("workers=2", dict(num_workers=2), 7),
    ("workers=2 persistent", dict(num_workers=2, persistent_workers=True), 15),
]


def _digits():
    from sklearn.datasets import load_digits
    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y.astype(np.int64)


def _epoch(m, x, y, **kw):
    """One epoch of the digits loader for `m` (fusegrad or torch), as a function of no arguments
    (the loader is built once: persistent workers then serve every epoch)."""
    data = importlib.import_module(f"{m.__name__}.utils.data")
    loader = data.DataLoader(data.TensorDataset(m.from_numpy(x), m.from_numpy(y)), batch_size=BATCH, shuffle=True,
                             **kw)

    def epoch():
        n, last = 0, None
        for batch in loader:
            n, last = n + 1, batch
        assert n == len(loader) and tuple(last[0].shape)[1:] == (64,) and last[1].dtype == m.int64
        return n
    return epoch, len(loader)


def rows() -> list:
    import fusegrad
    x, y = _digits()
    out = []
    for label, kw, repeat in CONFIGS:
        epoch, batches = _epoch(fusegrad, x, y, **kw)
        t = median_time(epoch, repeat=repeat, warmup=2)
        peers: dict = {}
        notes: list = []
        time_peers(peers, {"torch": lambda torch, kw=kw: _epoch(torch, x, y, **kw)[0]}, repeat=repeat, notes=notes)
        note = f"{batches / t:,.0f} batches/s"
        if "torch" in peers:
            note += f", torch {batches / peers['torch']:,.0f} batches/s"
        out.append(Row(f"DataLoader digits epoch, batch {BATCH}, shuffle, {label}", t, peers,
                       note="; ".join([note] + notes)))
    return out


if __name__ == "__main__":
    print(machine())
    print(table(rows()))
