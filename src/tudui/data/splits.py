"""A split is a list of samples with integer labels that can be decoded one by one to uint8 (C, H, W).

Three kinds cover every source: images already decoded in an array (built-in datasets), image files on
disk (folders, CSV), and a user's own map-style torch Dataset. Everything downstream (in-memory tensor,
streaming DataLoader, statistics) only calls `decode(i, channels, size)`.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from .images import open_image, pil_to_uint8, tensor_to_uint8


class Split:
    targets: list

    def __len__(self) -> int:
        return len(self.targets)

    def decode(self, i: int, channels: int, size: Optional[tuple]) -> torch.Tensor:
        raise NotImplementedError

    def fingerprint(self) -> Optional[str]:
        """A string that changes whenever the samples change; None means 'do not cache'."""
        return None

    def describe(self, i: int) -> str:
        return f"sample {i}"

    def subset(self, indices: Sequence[int]) -> "Split":
        raise NotImplementedError


class ArraySplit(Split):
    """Decoded images held as a uint8 tensor (N, C, H, W)."""

    def __init__(self, images: torch.Tensor, targets, name: str = "array"):
        if images.ndim == 3:
            images = images[:, None]
        self.images = images
        self.targets = [int(t) for t in targets]
        self.name = name

    def decode(self, i, channels, size):
        return tensor_to_uint8(self.images[i], channels, size)

    def decode_all(self, channels, size) -> Optional[torch.Tensor]:
        """Fast path: the whole array at once when no per-image work is needed."""
        if self.images.shape[1] == channels and (size is None or tuple(self.images.shape[-2:]) == tuple(size)):
            return self.images
        return None

    def fingerprint(self):
        return None  # already in memory: nothing to cache

    def subset(self, indices):
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return ArraySplit(self.images[idx], [self.targets[i] for i in indices], self.name)


class FileSplit(Split):
    """Image files on disk with their labels. `root` (the split's folder or file) and `class_where`
    (class index -> 'class folder PATH') only serve error messages that name what the user must fix."""

    def __init__(self, paths: list, targets, root: Optional[str] = None, class_where: Optional[dict] = None):
        self.paths = [str(p) for p in paths]
        self.targets = [int(t) for t in targets]
        self.root = root
        self.class_where = dict(class_where or {})

    def decode(self, i, channels, size):
        return pil_to_uint8(open_image(self.paths[i]), channels, size)

    def describe(self, i):
        return self.paths[i]

    def fingerprint(self):
        h = hashlib.sha256()
        for p, t in zip(self.paths, self.targets):
            try:
                st = os.stat(p)
                key = f"{st.st_size}\0{st.st_mtime_ns}"
            except OSError as e:  # a dangling symlink or a loop: unreadable, which the decode reports
                key = f"unreadable {e.errno}"
            h.update(f"{os.path.abspath(p)}\0{key}\0{t}\n".encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    def subset(self, indices):
        return FileSplit([self.paths[i] for i in indices], [self.targets[i] for i in indices], self.root,
                         self.class_where)


class DatasetSplit(Split):
    """A user's map-style Dataset returning (image, label): image a PIL image, tensor or HxW(xC) array;
    `targets` are the class indices of `indices` (labels may be names, mapped by the caller)."""

    def __init__(self, dataset, indices: Sequence[int], targets: Sequence[int]):
        self.dataset = dataset
        self.indices = list(indices)
        self.targets = [int(t) for t in targets]

    def item(self, i):
        """The dataset's own image for sample i (PIL, tensor or array), as the user's __getitem__ returns it."""
        return self.dataset[self.indices[i]][0]

    def decode(self, i, channels, size):
        img = self.item(i)
        if isinstance(img, np.ndarray):
            img = Image.fromarray(img if img.ndim == 2 or img.shape[-1] != 1 else img[..., 0])
        if isinstance(img, Image.Image):
            return pil_to_uint8(img, channels, size)
        if isinstance(img, torch.Tensor):
            return tensor_to_uint8(img, channels, size)
        raise DataError(f"dataset item {self.indices[i]} is a {type(img).__name__}; "
                        "expected a PIL image, a tensor or a numpy array")

    def subset(self, indices):
        return DatasetSplit(self.dataset, [self.indices[i] for i in indices], [self.targets[i] for i in indices])


@dataclass
class DataSource:
    """Everything known about a dataset before any decoding: its splits, classes and native format."""
    name: str
    classes: list
    splits: dict  # split name ('train', 'val', ...) -> Split
    channels: int = 3  # native channels: 1 for an all-grayscale dataset
    native_size: Optional[tuple] = None  # (H, W) when every image has the same size
    skipped: list = field(default_factory=list)  # unreadable files left out
    notes: list = field(default_factory=list)  # things the run log should say (e.g. how val was made)
    holdout: Optional[dict] = None  # which files went to which split, when we made the split
    hflip: bool = True  # whether mirrored images are still the same class (not for digits and letters)
    default_size: Optional[tuple] = None  # size to train at when --img-size is not given (default: native)
    decisions: Optional[dict] = None  # what --exclude / --relabel / --decisions changed (data.decisions)

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def val(self) -> Split:
        return self.splits["val"]

    def split(self, name: str) -> Split:
        name = {"valid": "val", "validation": "val"}.get(name, name)
        if name == "test" and "test" not in self.splits:
            name = "val"
        if name not in self.splits:
            raise DataError(f"dataset '{self.name}' has no split '{name}'; it has: {', '.join(self.splits)}")
        return self.splits[name]


def stratified_split(targets, fraction: float, seed: int):
    """Seeded, stratified hold-out: returns (train_indices, val_indices), each class split by `fraction`."""
    g = torch.Generator().manual_seed(int(seed))
    by_class: dict = {}
    for i, t in enumerate(targets):
        by_class.setdefault(int(t), []).append(i)
    train_idx, val_idx = [], []
    for c in sorted(by_class):
        idx = by_class[c]
        perm = torch.randperm(len(idx), generator=g).tolist()
        n_val = int(round(len(idx) * fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        else:
            n_val = 0
        val_idx += [idx[j] for j in perm[:n_val]]
        train_idx += [idx[j] for j in perm[n_val:]]
    return sorted(train_idx), sorted(val_idx)


def check_after_skips(before: Split, after: Split) -> None:
    """After unreadable files were left out: a class folder with no readable image, or a split with fewer
    than two classes, is the user's to fix, so say which folder."""
    lost = sorted(set(before.targets) - set(after.targets))
    if lost:
        what = getattr(before, "class_where", {}).get(lost[0], f"class {lost[0]}")
        raise DataError(f"{what} has no readable images")
    if len(set(after.targets)) < 2 <= len(set(before.targets)):
        where = getattr(before, "root", None) or "the split"
        raise DataError(f"{where} has readable images of fewer than two classes")
