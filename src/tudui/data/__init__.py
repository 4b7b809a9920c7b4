"""Data: sources (what the samples are), preprocessing (how they become tensors) and loaders (batches)."""
from __future__ import annotations

import os

from ..errors import DataError
from .splits import ArraySplit, DataSource, DatasetSplit, FileSplit, Split


def load_source(data, *, data_dir: str = "~/.cache/tudui/data", download: bool = False, seed: int = 0,
                val_split: float = 0.2, classes=None, val_data=None) -> DataSource:
    """Resolve a data spec: a built-in name, a folder or CSV path, or a map-style torch Dataset."""
    if isinstance(data, DataSource):
        return data
    if not isinstance(data, (str, os.PathLike)):
        return _from_dataset(data, classes=classes, val_data=val_data, seed=seed, val_split=val_split)
    spec = os.fspath(data)
    expanded = os.path.expanduser(spec)
    if os.path.exists(expanded):
        if os.path.isfile(expanded):
            if expanded.lower().endswith(".csv"):
                from .csvfile import load_csv
                return load_csv(expanded, seed=seed, val_split=val_split)
            raise DataError(f"--data {spec} is a file; give a folder of images, a .csv of path,label, or a built-in name")
        from .folder import load_folder
        return load_folder(expanded, seed=seed, val_split=val_split)
    from .builtin import BUILTINS, load_builtin
    if spec.lower() in BUILTINS:
        return load_builtin(spec, data_dir=os.path.expanduser(data_dir), download=download,
                            seed=seed, val_split=val_split)
    if os.sep in spec or spec.startswith(".") or spec.lower().endswith(".csv"):
        raise DataError(f"data path not found: {spec}")
    raise DataError(f"unknown dataset '{spec}': not a built-in name ({', '.join(sorted(BUILTINS))}) "
                    "and no such file or folder")


def _from_dataset(dataset, classes, val_data, seed, val_split) -> DataSource:
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise DataError(f"data must be a dataset name, a path or a map-style Dataset, got {type(dataset).__name__}")
    classes = list(classes or getattr(dataset, "classes", None) or [])
    train = DatasetSplit(dataset)
    if not classes:
        classes = [str(i) for i in range(max(train.targets) + 1)]
    if val_data is not None:
        splits = {"train": train, "val": DatasetSplit(val_data)}
    else:
        from .splits import stratified_split
        tr, va = stratified_split(train.targets, val_split, seed)
        splits = {"train": train.subset(tr), "val": train.subset(va)}
    channels, size = _native_format(dataset[train.indices[0]][0])
    return DataSource(name=type(dataset).__name__, classes=classes, splits=splits, channels=channels,
                      native_size=size)


def _native_format(img):
    """(channels, (H, W)) of a user's sample: grayscale stays 1-channel."""
    import torch
    from PIL import Image
    if isinstance(img, Image.Image):
        return (1 if img.mode in ("L", "I", "I;16", "F", "1") else 3), (img.height, img.width)
    if isinstance(img, torch.Tensor):
        c = 1 if img.ndim == 2 or img.shape[0] == 1 else 3
        return c, tuple(img.shape[-2:])
    raise DataError(f"dataset items must be (image, label) with a PIL image or tensor, got {type(img).__name__}")


__all__ = ["load_source", "DataSource", "Split", "ArraySplit", "FileSplit", "DatasetSplit"]
