"""Built-in datasets, read from their real on-disk formats. Nothing is downloaded unless asked."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from .splits import ArraySplit, DataSource, stratified_split


def load_digits(seed: int = 0, val_split: float = 0.2, **_) -> DataSource:
    """scikit-learn's bundled handwritten digits: 1,797 real 8x8 grayscale images (values 0-16), 10 classes.
    It has no official test split, so a fixed stratified 20% is held out (seeded by 0, not the run's seed,
    so every run is evaluated on the same images)."""
    from sklearn.datasets import load_digits as _load

    bunch = _load()
    images = torch.from_numpy(np.round(bunch.images / 16.0 * 255.0).astype(np.uint8))[:, None]
    targets = bunch.target.tolist()
    tr, va = stratified_split(targets, val_split, seed=0)
    full = ArraySplit(images, targets, "digits")
    return DataSource(name="digits", classes=[str(i) for i in range(10)],
                      splits={"train": full.subset(tr), "val": full.subset(va)},
                      channels=1, native_size=(8, 8), hflip=False,
                      notes=[f"digits: held out a fixed stratified {val_split:.0%} as val ({len(va)} images)"])


BUILTINS = {
    "digits": load_digits,
}


def load_builtin(name: str, **kwargs) -> DataSource:
    key = name.lower()
    if key not in BUILTINS:
        raise DataError(f"unknown dataset '{name}'; built-in names: {', '.join(sorted(BUILTINS))}, or give a folder/CSV path")
    return BUILTINS[key](**kwargs)
