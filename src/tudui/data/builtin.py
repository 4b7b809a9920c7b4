"""Built-in datasets, read from their real on-disk formats in torchvision's layout under --data-dir.

MNIST / Fashion-MNIST: idx files (gzipped or not) in `<root>/MNIST/raw/` or `<root>/FashionMNIST/raw/`.
CIFAR-10 / CIFAR-100: the python pickle batches in `<root>/cifar-10-batches-py/` or `<root>/cifar-100-python/`.
Everything is decoded straight into uint8 tensors (no per-image work). Nothing is downloaded unless asked.
For these sets the official test split is the held-out split, as in the course.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from dataclasses import dataclass

import numpy as np
import torch

from ..console import say, warn
from ..dirs import data_dir as resolve_data_dir
from ..errors import DataError
from .splits import ArraySplit, DataSource, stratified_split


def load_digits(seed: int = 0, val_split: float = 0.2, **_) -> DataSource:
    """scikit-learn's bundled handwritten digits: 1,797 real 8x8 grayscale images (values 0-16), 10 classes.
    It has no official test split, so a fixed stratified 20% is held out (seeded by 0, not the run's seed,
    so every run is evaluated on the same images)."""
    from sklearn.datasets import load_digits as _load  # import-time cost: scikit-learn, only for the digits set

    bunch = _load()
    images = torch.from_numpy(np.round(bunch.images / 16.0 * 255.0).astype(np.uint8))[:, None]
    targets = bunch.target.tolist()
    tr, va = stratified_split(targets, val_split, seed=0)
    full = ArraySplit(images, targets, "digits")
    return DataSource(name="digits", classes=[str(i) for i in range(10)],
                      splits={"train": full.subset(tr), "val": full.subset(va)},
                      channels=1, native_size=(8, 8), hflip=False,
                      notes=[f"digits: held out a fixed stratified {val_split:.0%} as val ({len(va)} images)"])


# ---------------------------------------------------------------- checksums

_checked: set = set()  # files already checked in this process: warn once, not on every load


def _md5(path: str) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_checksums(name: str, files: list) -> None:
    """files: [(path, official md5)]. A copy that differs from the official file may still be valid
    (recompressed, re-pickled), so differing files get one warning and are read anyway; whether a file
    really is in the format is decided by its parser, which names the file if not."""
    todo = [(p, m) for p, m in files if os.path.abspath(p) not in _checked]
    _checked.update(os.path.abspath(p) for p, _ in todo)
    differ = [p for p, m in todo if _md5(p) != m]
    if differ:
        names = ", ".join(os.path.basename(p) for p in differ)
        warn(f"{names} in {os.path.dirname(differ[0])} differ from the official {name} files "
             "(md5 mismatch); reading them anyway")


# ---------------------------------------------------------------- MNIST-style idx files

@dataclass
class IdxSet:
    name: str
    folder: str  # torchvision's folder name under the root
    files: dict  # base name -> md5 of the official .gz
    classes: list
    hflip: bool


MNIST = IdxSet("mnist", "MNIST", {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}, [str(i) for i in range(10)], hflip=False)  # a mirrored digit is not the same digit

FASHION = IdxSet("fashion-mnist", "FashionMNIST", {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}, ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    hflip=True)  # a mirrored shoe or shirt is still a shoe or shirt


def read_idx(path: str, ndim: int) -> np.ndarray:
    """An unsigned-byte idx file (gzipped or not) with `ndim` dimensions -> uint8 array. DataError names the file."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as e:  # bad gzip stream, truncated archive
        raise DataError(f"{path} is not a readable {'gzip ' if path.endswith('.gz') else ''}idx file: {e}") from None
    header = 4 + 4 * ndim
    if len(data) < header or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] != ndim:
        raise DataError(f"{path} is not an idx file of unsigned bytes with {ndim} dimension(s) "
                        f"(bad magic number {data[:4].hex() or 'empty'})")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims)) if dims else 0
    if len(data) - header != expected:
        raise DataError(f"{path} is truncated or padded: the header says {'x'.join(map(str, dims))} "
                        f"({expected} bytes) but it holds {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(raw: str, base: str):
    """The .gz (checksummable) if present, else the uncompressed file, else None."""
    for name in (base + ".gz", base):
        p = os.path.join(raw, name)
        if os.path.isfile(p):
            return p
    return None


def _idx_pair(raw: str, spec: IdxSet, prefix: str) -> ArraySplit:
    img_base, lab_base = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
    img_path, lab_path = _find_idx(raw, img_base), _find_idx(raw, lab_base)
    images, labels = read_idx(img_path, 3), read_idx(lab_path, 1)
    if len(images) != len(labels):
        raise DataError(f"{img_path} holds {len(images)} images but {lab_path} holds {len(labels)} labels")
    if labels.size and labels.max() >= len(spec.classes):
        raise DataError(f"{lab_path} has label {int(labels.max())}; {spec.name} has {len(spec.classes)} classes")
    return ArraySplit(torch.from_numpy(images.copy())[:, None], labels.tolist(), spec.name)


def _load_idx_set(spec: IdxSet, data_dir: str, download: bool) -> DataSource:
    raw = os.path.join(data_dir, spec.folder, "raw")
    missing = [b for b in spec.files if _find_idx(raw, b) is None]
    if missing and download:
        _download(spec.name, data_dir)
        missing = [b for b in spec.files if _find_idx(raw, b) is None]
    if missing:
        _missing(spec.name, [b + "[.gz]" for b in missing], raw)
    found = [(_find_idx(raw, b), md5) for b, md5 in spec.files.items()]
    check_checksums(spec.name, [(p, md5) for p, md5 in found if p.endswith(".gz")])  # md5s are of the .gz
    train, test = _idx_pair(raw, spec, "train"), _idx_pair(raw, spec, "t10k")
    h, w = train.images.shape[-2:]
    return DataSource(name=spec.name, classes=list(spec.classes), splits={"train": train, "val": test},
                      channels=1, native_size=(int(h), int(w)), hflip=spec.hflip,
                      notes=[f"{spec.name}: the official test set ({len(test)} images) is the held-out split",
                             CLIP_NOTE.format(spec.name)])


def load_mnist(data_dir: str, download: bool = False, **_) -> DataSource:
    return _load_idx_set(MNIST, data_dir, download)


def load_fashion_mnist(data_dir: str, download: bool = False, **_) -> DataSource:
    return _load_idx_set(FASHION, data_dir, download)


# ---------------------------------------------------------------- CIFAR python pickles

@dataclass
class CifarSet:
    name: str
    folder: str
    train: dict  # batch file -> md5
    test: dict
    meta: tuple  # (file, md5, key of the class names)
    label_key: str


CIFAR10 = CifarSet("cifar10", "cifar-10-batches-py",
                   {"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
                    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
                    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb"},
                   {"test_batch": "40351d587109b95175f43aff81a1287e"},
                   ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888", "label_names"), "labels")
CIFAR100 = CifarSet("cifar100", "cifar-100-python",
                    {"train": "16019d7e3df5f24257cddd939b257f8d"},
                    {"test": "f0ef6b0ae62326f3e7ffdfab6717acfc"},
                    ("meta", "7973b15100ade9c7d40fb424638fde48", "fine_label_names"), "fine_labels")


class _SafeUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles; unpickling runs code, so only numpy arrays and plain values are allowed."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("__builtin__", "bytes"), ("builtins", "bytes")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR batch never does")


def read_pickle(path: str) -> dict:
    try:
        with open(path, "rb") as fh:
            obj = _SafeUnpickler(fh, encoding="latin1").load()
    except Exception as e:  # any failure here means: not a CIFAR pickle
        raise DataError(f"{path} is not a CIFAR python batch (a pickled dict): {type(e).__name__}: {e}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR python batch: it holds a {type(obj).__name__}, not a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _cifar_batch(path: str, label_key: str, n_classes: int) -> tuple:
    d = read_pickle(path)
    if "data" not in d or label_key not in d:
        raise DataError(f"{path} is not a CIFAR batch of this dataset: it lacks 'data' or '{label_key}' "
                        f"(keys: {', '.join(map(str, d))})")
    data, labels = d["data"], np.asarray(d[label_key])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), got "
                        f"{getattr(data, 'dtype', type(data).__name__)} {shape}")
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{path} holds {len(data)} images but {labels.size} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{path} has labels outside 0..{n_classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _load_cifar(spec: CifarSet, data_dir: str, download: bool) -> DataSource:
    folder = os.path.join(data_dir, spec.folder)
    meta_file, meta_md5, meta_key = spec.meta
    needed = [*spec.train, *spec.test, meta_file]
    missing = [f for f in needed if not os.path.isfile(os.path.join(folder, f))]
    if missing and download:
        _download(spec.name, data_dir)
        missing = [f for f in needed if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        _missing(spec.name, missing, folder)
    check_checksums(spec.name, [(os.path.join(folder, f), md5)
                                for f, md5 in [*spec.train.items(), *spec.test.items(), (meta_file, meta_md5)]])
    meta_path = os.path.join(folder, meta_file)
    names = read_pickle(meta_path).get(meta_key)
    if not isinstance(names, list) or not names:
        raise DataError(f"{meta_path} has no '{meta_key}' list of class names")
    classes = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]

    def split(files):
        parts = [_cifar_batch(os.path.join(folder, f), spec.label_key, len(classes)) for f in files]
        images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        return ArraySplit(images, np.concatenate([p[1] for p in parts]).tolist(), spec.name)

    train, test = split(spec.train), split(spec.test)
    return DataSource(name=spec.name, classes=classes, splits={"train": train, "val": test}, channels=3,
                      native_size=(32, 32), hflip=True,
                      notes=[f"{spec.name}: the official test set ({len(test)} images) is the held-out split",
                             CLIP_NOTE.format(spec.name)])


def load_cifar10(data_dir: str, download: bool = False, **_) -> DataSource:
    return _load_cifar(CIFAR10, data_dir, download)


def load_cifar100(data_dir: str, download: bool = False, **_) -> DataSource:
    return _load_cifar(CIFAR100, data_dir, download)


# ---------------------------------------------------------------- missing files, downloads

def _missing(name: str, files: list, where: str):
    raise DataError(f"{name} is not in {where}: expected {', '.join(files)}; add --download to fetch it "
                    f"there, or point --data-dir at the folder that holds it")


def _download(name: str, data_dir: str) -> None:
    """torchvision's downloaders write exactly the layout read above (and check the official md5s)."""
    import torchvision.datasets as tvd  # import-time cost: torchvision takes seconds to import

    cls = getattr(tvd, {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}[name])
    say(f"downloading {name} into {data_dir} ...")
    try:
        os.makedirs(data_dir, exist_ok=True)
        for train in (True, False):
            cls(data_dir, train=train, download=True)
    except Exception as e:  # network errors come in many types; the message is what the user needs
        raise DataError(f"downloading {name} into {data_dir} failed: {type(e).__name__}: "
                        f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from None


BUILTINS = {
    "digits": load_digits,
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
}


ALIASES = {"fashionmnist": "fashion-mnist", "fashion_mnist": "fashion-mnist", "cifar-10": "cifar10",
           "cifar-100": "cifar100"}


def builtin_key(name: str):
    """The canonical built-in name for `name` (case and common spellings forgiven), or None."""
    key = name.lower()
    key = ALIASES.get(key, key)
    return key if key in BUILTINS else None


CLIP_NOTE = ("{}: gradients are clipped at norm 2 unless --clip-grad says otherwise (this dataset's default: "
             "the course's network can diverge at the default lr without it)")


def load_builtin(name: str, data_dir: str | None = None, **kwargs) -> DataSource:
    key = builtin_key(name)
    if key is None:
        raise DataError(f"unknown dataset '{name}'; built-in names: {', '.join(sorted(BUILTINS))}, or give a folder/CSV path")
    return BUILTINS[key](data_dir=resolve_data_dir(data_dir), **kwargs)
