"""Folders of images: ImageFolder with splits (`ROOT/train/<class>/*`, `ROOT/val|valid|validation|test/...`)
or a single folder of class folders (a seeded, stratified hold-out is made)."""
from __future__ import annotations

import os

from ..errors import DataError
from .images import is_image_file
from .splits import DataSource, FileSplit, stratified_split

HELDOUT_NAMES = ("val", "valid", "validation", "test")


def _class_dirs(root: str) -> list:
    return sorted(d for d in os.listdir(root) if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))


def _list_images(folder: str) -> list:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [os.path.join(dirpath, f) for f in sorted(filenames) if is_image_file(f)]
    return out


def scan_class_folders(root: str, classes: list | None = None):
    """-> (paths, targets, classes). Class folders are sorted; an empty class folder is an error naming it."""
    found = _class_dirs(root)
    classes = classes or found
    paths, targets = [], []
    for ci, c in enumerate(classes):
        d = os.path.join(root, c)
        if not os.path.isdir(d):
            continue
        files = _list_images(d)
        if not files:
            raise DataError(f"class folder {d} has no images")
        paths += files
        targets += [ci] * len(files)
    present = {targets[i] for i in range(len(targets))}
    if len(present) < 2:
        raise DataError(f"{root} needs at least two class folders with images, found {len(present)}")
    return paths, targets, classes


def load_folder(root: str, seed: int = 0, val_split: float = 0.2, **_) -> DataSource:
    if not os.path.isdir(root):
        raise DataError(f"data folder not found: {root}")
    subdirs = _class_dirs(root)
    if "train" in subdirs:
        held = [d for d in HELDOUT_NAMES if d in subdirs]
        train_root = os.path.join(root, "train")
        paths, targets, classes = scan_class_folders(train_root)
        splits = {"train": FileSplit(paths, targets)}
        notes = []
        if held:
            vp, vt, _ = scan_class_folders(os.path.join(root, held[0]), classes)
            splits["val"] = FileSplit(vp, vt)
            notes.append(f"held-out split: {held[0]}/ ({len(vp)} images)")
            if "test" in held and held[0] != "test":
                tp, tt, _ = scan_class_folders(os.path.join(root, "test"), classes)
                splits["test"] = FileSplit(tp, tt)
            return DataSource(name=root, classes=classes, splits=splits, notes=notes)
        return _holdout(root, paths, targets, classes, seed, val_split)
    paths, targets, classes = scan_class_folders(root)
    return _holdout(root, paths, targets, classes, seed, val_split)


def _holdout(root, paths, targets, classes, seed, val_split) -> DataSource:
    tr, va = stratified_split(targets, val_split, seed)
    full = FileSplit(paths, targets)
    holdout = {"train": [os.path.relpath(paths[i], root) for i in tr],
               "val": [os.path.relpath(paths[i], root) for i in va]}
    return DataSource(name=root, classes=classes, splits={"train": full.subset(tr), "val": full.subset(va)},
                      holdout=holdout,
                      notes=[f"no held-out split in {root}: held out a seeded stratified {val_split:.0%} "
                             f"({len(va)} images) as val"])
