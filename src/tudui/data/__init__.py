"""Data: sources (what the samples are), preprocessing (how they become tensors) and loaders (batches)."""
from __future__ import annotations

import os

import numpy as np
import torch

from ..errors import DataError
from .builtin import BUILTINS, builtin_key, load_builtin
from .csvfile import load_csv
from .folder import load_folder
from .splits import ArraySplit, DatasetSplit, DataSource, FileSplit, Split, stratified_split


def load_source(data, *, data_dir: str | None = None, download: bool = False, seed: int = 0,
                val_split: float = 0.2, classes=None, val_data=None, allow_outside: bool = False) -> DataSource:
    """Resolve a data spec: a built-in name, a folder or CSV path, or a map-style torch Dataset.
    allow_outside: accept CSV rows whose paths lead outside the CSV's folder.
    A bare built-in name always means the built-in set; write `./mnist` for a folder of that name."""
    if isinstance(data, DataSource):
        return data
    if not isinstance(data, (str, os.PathLike)):
        return _from_dataset(data, classes=classes, val_data=val_data, seed=seed, val_split=val_split)
    spec = os.fspath(data)
    key = builtin_key(spec)
    if key is not None:
        return load_builtin(key, data_dir=data_dir, download=download, seed=seed, val_split=val_split)
    expanded = os.path.expanduser(spec)
    if os.path.isfile(expanded):
        if expanded.lower().endswith(".csv"):
            return load_csv(expanded, seed=seed, val_split=val_split, allow_outside=allow_outside)
        raise DataError(f"--data {spec} is a file; give a folder of images, a .csv of path,label, or a built-in name")
    if os.path.isdir(expanded):
        return load_folder(expanded, seed=seed, val_split=val_split)
    if os.sep in spec or "/" in spec or spec.startswith(".") or spec.lower().endswith(".csv"):
        raise DataError(f"data path not found: {spec}")
    raise DataError(f"unknown dataset '{spec}': not a built-in name ({', '.join(BUILTINS)}) "
                    "and no such file or folder")


# ---------------------------------------------------------------- a user's own Dataset

def _raw_label(dataset, i: int, targets):
    label = targets[i] if targets is not None else _item(dataset, i)[1]
    if hasattr(label, "item") and not isinstance(label, str):  # one-element tensor, numpy scalar
        try:
            label = label.item()
        except (ValueError, RuntimeError):
            pass
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    if isinstance(label, bool) or not isinstance(label, (int, str)):
        raise DataError(f"dataset item {i}: the label must be a class index or a class name, "
                        f"got {type(label).__name__} {label!r}")
    return label


def _item(dataset, i: int):
    item = dataset[i]
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise DataError(f"dataset item {i} must be (image, label), got {type(item).__name__}")
    return item


def _labels(dataset) -> list:
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise DataError(f"data must be a dataset name, a path or a map-style Dataset (with __getitem__ and "
                        f"__len__), got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise DataError(f"the dataset {type(dataset).__name__} is empty")
    targets = getattr(dataset, "targets", None)  # torchvision datasets: labels without loading images
    if targets is None or isinstance(targets, str) or len(targets) != len(dataset):
        targets = None
    return [_raw_label(dataset, i, targets) for i in range(len(dataset))]


def _class_indices(labels: list, classes: list) -> tuple:
    """Raw labels (indices or names) -> (classes, indices). Names are sorted when no classes are given."""
    kinds = {type(t) for t in labels}
    if len(kinds) > 1:
        raise DataError("the dataset's labels mix class indices and class names; use one kind")
    if kinds == {str}:
        classes = classes or sorted(set(labels))
        index = {c: i for i, c in enumerate(classes)}
        unknown = [t for t in labels if t not in index]
        if unknown:
            raise DataError(f"label '{unknown[0]}' is not one of the classes ({', '.join(map(str, classes))})")
        return classes, [index[t] for t in labels]
    classes = classes or [str(i) for i in range(max(labels) + 1)]
    bad = [t for t in labels if not 0 <= t < len(classes)]
    if bad:
        raise DataError(f"label {bad[0]} is out of range for {len(classes)} classes")
    return classes, labels


def _from_dataset(dataset, classes, val_data, seed, val_split) -> DataSource:
    classes = [str(c) for c in (classes or getattr(dataset, "classes", None) or [])]
    labels = _labels(dataset)
    val_labels = _labels(val_data) if val_data is not None else []
    classes, indices = _class_indices(labels + val_labels, classes)
    if len(classes) < 2:
        raise DataError("the dataset needs at least two classes")
    train = DatasetSplit(dataset, range(len(labels)), indices[:len(labels)])
    if val_data is not None:
        splits = {"train": train, "val": DatasetSplit(val_data, range(len(val_labels)), indices[len(labels):])}
        notes = []
    else:
        tr, va = stratified_split(train.targets, val_split, seed)
        splits = {"train": train.subset(tr), "val": train.subset(va)}
        notes = [f"held out a seeded stratified {val_split:.0%} of the dataset ({len(va)} items) as val"]
    channels, size = _native_format(train)
    return DataSource(name=type(dataset).__name__, classes=classes, splits=splits, channels=channels,
                      native_size=size, notes=notes)


def _native_format(split: DatasetSplit, probe: int = 16):
    """(channels, (H, W) or None) from a few items spread over the dataset: 1 channel only if all are
    grayscale; a native size only if all have the same size (otherwise the default training size is used)."""
    from PIL import Image  # import-time cost: Pillow, only when images are decoded

    n = len(split)
    picks = sorted({round(k * (n - 1) / max(1, probe - 1)) for k in range(min(probe, n))})
    gray, sizes = True, set()
    for i in picks:
        img = split.item(i)
        if isinstance(img, Image.Image):
            gray &= img.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
            sizes.add((img.height, img.width))
        elif isinstance(img, torch.Tensor) and img.ndim in (2, 3):
            gray &= img.ndim == 2 or img.shape[0] == 1
            sizes.add(tuple(img.shape[-2:]))
        elif isinstance(img, np.ndarray) and img.ndim in (2, 3):
            gray &= img.ndim == 2 or img.shape[-1] == 1
            sizes.add(tuple(img.shape[:2]))
        else:
            raise DataError(f"dataset items must be (image, label) with a PIL image, a tensor (C, H, W) or an "
                            f"array (H, W, C), got {type(img).__name__}")
    return (1 if gray else 3), (sizes.pop() if len(sizes) == 1 else None)


__all__ = ["load_source", "DataSource", "Split", "ArraySplit", "FileSplit", "DatasetSplit"]
