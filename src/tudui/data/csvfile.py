"""A CSV of `path,label` rows (`--data labels.csv`), paths relative to the CSV's folder (or absolute).

An optional header row names the columns (`path,label[,split]`). An optional third column `split`
(train | val | valid | validation | test) places each row; without it (or with no val/test rows) a seeded,
stratified validation split is held out and recorded. Class order is sorted: numerically when every label
is an integer (so label 3 is class index 3), by name otherwise.
"""
from __future__ import annotations

import csv
import os

from ..errors import DataError
from .splits import DataSource, FileSplit, stratified_split

PATH_NAMES = {"path", "file", "filename", "filepath", "image", "img", "image_path"}
LABEL_NAMES = {"label", "class", "category", "target", "class_name"}
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _class_order(names) -> list:
    names = set(names)
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def read_rows(csv_path: str) -> list:
    """-> [(line number, absolute path, label, split or None)]."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            rows = list(enumerate(csv.reader(fh), 1))
    except UnicodeDecodeError:
        raise DataError(f"{csv_path} is not UTF-8 text; save it as UTF-8 CSV") from None
    except csv.Error as e:
        raise DataError(f"{csv_path} is not a valid CSV: {e}") from None
    rows = [(n, [c.strip() for c in r]) for n, r in rows if any(c.strip() for c in r) and not r[0].startswith("#")]
    if rows and rows[0][1][0].lower() in PATH_NAMES and len(rows[0][1]) > 1 and rows[0][1][1].lower() in LABEL_NAMES:
        rows = rows[1:]  # header
    if not rows:
        raise DataError(f"{csv_path} has no rows; expected lines of path,label[,split]")
    base = os.path.dirname(os.path.abspath(csv_path))
    out = []
    for n, cells in rows:
        if len(cells) not in (2, 3) or not cells[0] or not cells[1]:
            raise DataError(f"{csv_path} line {n}: expected path,label[,split], got {','.join(cells)!r}")
        split = None
        if len(cells) == 3:
            split = SPLIT_NAMES.get(cells[2].lower())
            if split is None:
                raise DataError(f"{csv_path} line {n}: split must be train, val or test, got '{cells[2]}'")
        out.append((n, os.path.join(base, cells[0]), cells[1], split))
    return out


def load_csv(csv_path: str, seed: int = 0, val_split: float = 0.2, **_) -> DataSource:
    rows = read_rows(csv_path)
    missing = [(n, p) for n, p, _, _ in rows if not os.path.isfile(p)]
    if missing:
        n, p = missing[0]
        raise DataError(f"{csv_path}: {len(missing)} listed file(s) do not exist (first: line {n}: {p})")
    by_split: dict = {}
    for _, p, label, split in rows:
        by_split.setdefault(split or "train", []).append((p, label))
    if "train" not in by_split:
        raise DataError(f"{csv_path} has no training rows (split column 'train', or no split column)")
    classes = _class_order(label for _, label in by_split["train"])
    if len(classes) < 2:
        raise DataError(f"{csv_path}: the training rows need at least two classes, found only '{classes[0]}'")
    index = {c: i for i, c in enumerate(classes)}
    name = os.path.basename(csv_path)
    where = {i: f"class '{c}' of {name}" for i, c in enumerate(classes)}

    def split_of(key):
        items = by_split[key]
        unknown = [label for _, label in items if label not in index]
        if unknown:
            raise DataError(f"{csv_path}: label '{unknown[0]}' of the {key} rows never occurs in the training rows")
        return FileSplit([p for p, _ in items], [index[label] for _, label in items],
                         root=f"{csv_path} ({key} rows)", class_where=where)

    train = split_of("train")
    held = "val" if "val" in by_split else "test" if "test" in by_split else None
    if held is None:
        tr, va = stratified_split(train.targets, val_split, seed)
        base = os.path.dirname(os.path.abspath(csv_path))
        holdout = {"train": [os.path.relpath(train.paths[i], base) for i in tr],
                   "val": [os.path.relpath(train.paths[i], base) for i in va]}
        return DataSource(name=csv_path, classes=classes, holdout=holdout,
                          splits={"train": train.subset(tr), "val": train.subset(va)},
                          notes=[f"{name} marks no val rows: held out a seeded stratified {val_split:.0%} "
                                 f"({len(va)} images) as val; the file lists are in split.json"])
    splits = {"train": train, "val": split_of(held)}
    if held == "val" and "test" in by_split:
        splits["test"] = split_of("test")
    return DataSource(name=csv_path, classes=classes, splits=splits,
                      notes=[f"{name}: held-out split from its {held} rows ({len(splits['val'])} images)"])
