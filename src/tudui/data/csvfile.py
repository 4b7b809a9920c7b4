"""A CSV of `path,label` rows (`--data labels.csv`), paths relative to the CSV's folder (or absolute).

Paths must stay inside the CSV's folder: `../`, absolute paths and symlinks that lead out are refused unless
`allow_outside` (`--allow-outside`), so a CSV from elsewhere cannot make tudui read arbitrary files. The file
must be UTF-8 text; otherwise the error names the first line that is not.

An optional header row names the columns (`path,label[,split]`). An optional third column `split`
(train | val | valid | validation | test) places each row; without it (or with no val/test rows) a seeded,
stratified validation split is held out and recorded. Class order is sorted: numerically when every label
is an integer (so label 3 is class index 3), by name otherwise.
"""
from __future__ import annotations

import csv
import io
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


def decode_text(raw: bytes, what: str) -> str:
    """UTF-8 (with or without BOM) or UTF-16 with its BOM -> str; else DataError naming the first bad line."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    if b"\x00" in raw:
        line = raw[:raw.index(b"\x00")].count(b"\n") + 1
        raise DataError(f"{what} line {line} is not UTF-8 text (NUL bytes: UTF-16 without a byte-order "
                        "mark?); save the file as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataError(f"{what} line {line} is not UTF-8 text (byte 0x{raw[e.start]:02x}); "
                        "save the file as UTF-8") from None


def read_rows(csv_path: str) -> list:
    """-> [(line number, absolute path, label, split or None)]."""
    with open(csv_path, "rb") as fh:
        text = decode_text(fh.read(), csv_path)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    try:
        for r in reader:
            rows.append((reader.line_num, r))
    except csv.Error as e:
        raise DataError(f"{csv_path} line {reader.line_num + 1} is not valid CSV: {e}") from None
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


def check_inside(csv_path: str, rows: list) -> None:
    """DataError when a listed path is absolute or resolves (`..`, symlinks) outside the CSV's folder."""
    base = os.path.realpath(os.path.dirname(os.path.abspath(csv_path)))

    def inside(p) -> bool:
        try:
            return os.path.commonpath([base, os.path.realpath(p)]) == base
        except ValueError:  # Windows: another drive
            return False
    outside = [(n, p) for n, p, _, _ in rows if not inside(p)]
    if outside:
        n, p = outside[0]
        raise DataError(f"{csv_path} line {n}: {p} is outside the CSV's folder {base} ({len(outside)} such rows); "
                        "pass --allow-outside (config: allow_outside: true) if you mean it")


def load_csv(csv_path: str, seed: int = 0, val_split: float = 0.2, allow_outside: bool = False,
             **_) -> DataSource:
    rows = read_rows(csv_path)
    if not allow_outside:
        check_inside(csv_path, rows)
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
