"""Folders of images, in the layouts people actually have:

- ImageFolder with splits: `ROOT/train/<class>/*` and a held-out `ROOT/val|valid|validation|test/<class>/*`;
- the course's label-file layout, detected per split: `ROOT/train/ants_image/x.jpg` with its class name in
  `ROOT/train/ants_label/x.txt` (or `x.jpg.txt`), next to plain class folders such as `ROOT/val/ants/`;
- one folder of class folders with no split: a seeded, stratified hold-out is made and recorded.

Class names are sorted (as torchvision's ImageFolder does). Hidden files and non-images are ignored;
unreadable images are found when decoding and skipped there.
"""
from __future__ import annotations

import os

from ..errors import DataError
from .images import is_image_file
from .splits import DataSource, FileSplit, stratified_split

HELDOUT_NAMES = ("val", "valid", "validation", "test")
IGNORED_DIRS = {"__MACOSX"}  # resource forks left by macOS zip files
IMAGE_SUFFIX, LABEL_SUFFIX = "_image", "_label"


def subdirs(root: str) -> list:
    return sorted(d for d in os.listdir(root)
                  if not d.startswith(".") and d not in IGNORED_DIRS and os.path.isdir(os.path.join(root, d)))


def list_images(folder: str) -> list:
    """Image files under `folder`, recursively, in sorted order; hidden files and folders are skipped."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in IGNORED_DIRS)
        out += [os.path.join(dirpath, f) for f in sorted(filenames) if is_image_file(f)]
    return out


# ---------------------------------------------------------------- one split folder

def _label_pairs(split_dir: str, dirs: list) -> list:
    """[(image folder, label folder)] when `split_dir` uses the course's X_image / X_label layout."""
    return [(os.path.join(split_dir, d), os.path.join(split_dir, d[:-len(IMAGE_SUFFIX)] + LABEL_SUFFIX))
            for d in dirs if d.endswith(IMAGE_SUFFIX) and d[:-len(IMAGE_SUFFIX)] + LABEL_SUFFIX in dirs]


def read_label(path: str) -> str:
    """The class name in a label file: its first non-empty line (a trailing newline is optional)."""
    with open(path, "rb") as fh:
        raw = fh.read(1 << 16)  # a class name; a huge file is not a label file
    text = None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # Windows Notepad's "Unicode"
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    for enc in ("utf-8-sig", "gb18030"):  # label files written on Chinese Windows are often GBK
        if text is not None:
            break
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError:
            continue
    if text is None or "\x00" in text:
        line = 1
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw[:e.start].count(b"\n") + 1
        raise DataError(f"label file {path} line {line} is not text in UTF-8, UTF-16 or GBK; "
                        "save it as UTF-8 holding the class name")
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    raise DataError(f"label file {path} is empty; it should hold the image's class name")


def label_file_for(image: str, image_dir: str, label_dir: str):
    """`x.jpg` -> `x.txt` or `x.jpg.txt` in the mirrored place under label_dir; None if neither exists."""
    rel = os.path.relpath(image, image_dir)
    stem, ext = os.path.splitext(rel)
    names = [stem + ".txt", rel + ".txt"]
    if ext.lower() != ".jpg":
        names.reverse()  # the course names non-.jpg label files after the whole file name
    for n in names:
        p = os.path.join(label_dir, n)
        if os.path.isfile(p):
            return p
    return None


def _scan_label_layout(pairs: list) -> list:
    """-> [(path, class name, the image folder it came from)]."""
    items = []
    for image_dir, label_dir in pairs:
        images = list_images(image_dir)
        missing = []
        for p in images:
            lf = label_file_for(p, image_dir, label_dir)
            if lf is None:
                missing.append(p)
            else:
                items.append((p, read_label(lf), image_dir))
        if missing:
            stem = os.path.splitext(os.path.basename(missing[0]))[0]
            raise DataError(f"{len(missing)} image(s) in {image_dir} have no label file in {label_dir} "
                            f"(first: {os.path.basename(missing[0])}, expected {stem}.txt)")
        if not images:
            raise DataError(f"class folder {image_dir} has no images")
    return items


def _scan_class_folders(split_dir: str, dirs: list) -> list:
    items = []
    for d in dirs:
        folder = os.path.join(split_dir, d)
        files = list_images(folder)
        if not files:
            raise DataError(f"class folder {folder} has no images")
        items += [(p, d, folder) for p in files]
    return items


def scan_split(split_dir: str, classes: list | None = None):
    """One split folder -> (FileSplit, classes). With `classes` (the training split's), names must be among them."""
    dirs = subdirs(split_dir)
    pairs = _label_pairs(split_dir, dirs)
    items = _scan_label_layout(pairs) if pairs else _scan_class_folders(split_dir, dirs)
    found = sorted({name for _, name, _ in items})
    if classes is None:
        classes = found
    else:
        unknown = [n for n in found if n not in classes]
        if unknown:
            where = next(f for _, n, f in items if n == unknown[0])
            raise DataError(f"{where}: class '{unknown[0]}' is not one of the training classes ({', '.join(classes)})")
    if len(found) < 2:
        got = f"only '{found[0]}'" if found else "no images"
        raise DataError(f"{split_dir} needs images of at least two classes (in class folders), found {got}")
    index = {c: i for i, c in enumerate(classes)}
    where: dict = {}
    for _, name, folder in items:
        where.setdefault(index[name], f"class folder {folder}")
    split = FileSplit([p for p, _, _ in items], [index[n] for _, n, _ in items], root=split_dir, class_where=where)
    return split, classes


# ---------------------------------------------------------------- a dataset root

def load_folder(root: str, seed: int = 0, val_split: float = 0.2, **_) -> DataSource:
    if not os.path.isdir(root):
        raise DataError(f"data folder not found: {root}")
    dirs = subdirs(root)
    by_lower = {d.lower(): d for d in dirs}
    if "train" not in by_lower:
        split, classes = scan_split(root)
        return _holdout(root, split, classes, seed, val_split)
    train, classes = scan_split(os.path.join(root, by_lower["train"]))
    held = [by_lower[n] for n in HELDOUT_NAMES if n in by_lower]
    if not held:
        return _holdout(root, train, classes, seed, val_split)
    val, _ = scan_split(os.path.join(root, held[0]), classes)
    splits = {"train": train, "val": val}
    if held[0].lower() != "test" and "test" in by_lower:
        splits["test"], _ = scan_split(os.path.join(root, by_lower["test"]), classes)
    return DataSource(name=root, classes=classes, splits=splits,
                      notes=[f"held-out split: {held[0]}/ ({len(val)} images)"])


def _holdout(root, split: FileSplit, classes, seed, val_split) -> DataSource:
    """No held-out split on disk: hold out a seeded stratified fraction, and say which files went where."""
    tr, va = stratified_split(split.targets, val_split, seed)
    holdout = {"train": [os.path.relpath(split.paths[i], root) for i in tr],
               "val": [os.path.relpath(split.paths[i], root) for i in va]}
    return DataSource(name=root, classes=classes, splits={"train": split.subset(tr), "val": split.subset(va)},
                      holdout=holdout,
                      notes=[f"no held-out split in {root}: held out a seeded stratified {val_split:.0%} "
                             f"({len(va)} images) as val; the file lists are in split.json"])
