"""scikit-learn's digits (1797 8x8 images, `load_digits`), read from the data file sklearn ships
without importing sklearn (whose import takes seconds, per rank)."""
from __future__ import annotations

import importlib.util
import os

import numpy as np


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images as float32 in [0, 1], shape (1797, 64); labels as int64), as load_digits gives them."""
    spec = importlib.util.find_spec("sklearn")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = os.path.join(folder, "datasets", "data", "digits.csv.gz")
        if os.path.exists(path):
            data = np.loadtxt(path, delimiter=",")
            break
    else:
        from sklearn.datasets import load_digits as sklearn_digits
        bunch = sklearn_digits()
        data = np.column_stack([bunch.data, bunch.target])
    return (data[:, :-1] / 16.0).astype(np.float32), data[:, -1].astype(np.int64)
