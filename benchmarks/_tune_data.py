"""Small image-folder subsets (train / val / test, stratified by class) for the tune benchmarks, written once
under --work (outside the repository). val is what a study tunes on; test is never seen by a search.

MNIST comes from the shared idx files (Fashion-MNIST is not among /work/shared/datasets, so MNIST stands in
for it); CIFAR-10 from the shared JPEG tarball (its train/ folder is split three ways)."""
from __future__ import annotations

import os
import random
import shutil
import tarfile

SHARED = os.environ.get("TUDUI_SHARED_DATASETS", "/work/shared/datasets")


def _take(labels: list, per_class: int, rng: random.Random, skip=frozenset()) -> list:
    by = {}
    for i, y in enumerate(labels):
        if i not in skip:
            by.setdefault(y, []).append(i)
    out = []
    for y in sorted(by):
        idx = by[y]
        rng.shuffle(idx)
        out += idx[:per_class]
    return sorted(out)


def mnist_subset(work: str, n_train: int, n_val: int, n_test: int) -> str:
    root = os.path.join(work, f"mnist-{n_train}-{n_val}-{n_test}")
    if os.path.isdir(os.path.join(root, "test")):
        return root
    from PIL import Image

    from tudui.data.builtin import load_builtin
    src = load_builtin("mnist", data_dir=SHARED)
    rng = random.Random(0)
    tmp = root + ".part"
    shutil.rmtree(tmp, ignore_errors=True)
    train_x, train_y = src.train.images.numpy(), list(src.train.targets)
    test_x, test_y = src.val.images.numpy(), list(src.val.targets)
    tr = _take(train_y, n_train // 10, rng)
    va = _take(train_y, n_val // 10, rng, skip=set(tr))
    te = _take(test_y, n_test // 10, rng)
    for split, xs, ys, idx in (("train", train_x, train_y, tr), ("val", train_x, train_y, va),
                               ("test", test_x, test_y, te)):
        for i in idx:
            d = os.path.join(tmp, split, str(ys[i]))
            os.makedirs(d, exist_ok=True)
            Image.fromarray(xs[i].squeeze()).save(os.path.join(d, f"{i:05d}.png"))
    os.replace(tmp, root)
    return root


def cifar_subset(work: str, n_train: int, n_val: int, n_test: int) -> str:
    root = os.path.join(work, f"cifar10-{n_train}-{n_val}-{n_test}")
    if os.path.isdir(os.path.join(root, "test")):
        return root
    rng = random.Random(0)
    per = {"train": n_train // 10, "val": n_val // 10, "test": n_test // 10}
    want = sum(per.values())
    picked = {}
    with tarfile.open(os.path.join(SHARED, "cifar10-jpeg.tar.gz")) as tar:
        names = [m for m in tar.getmembers() if m.isfile() and m.name.startswith("train/")]
        by = {}
        for m in names:
            by.setdefault(m.name.split("/")[1], []).append(m)
        for cls, members in sorted(by.items()):
            rng.shuffle(members)
            picked[cls] = members[:want]
        tmp = root + ".part"
        shutil.rmtree(tmp, ignore_errors=True)
        for cls, members in picked.items():
            start = 0
            for split in ("train", "val", "test"):
                d = os.path.join(tmp, split, cls)
                os.makedirs(d, exist_ok=True)
                for m in members[start:start + per[split]]:
                    with tar.extractfile(m) as fh, open(os.path.join(d, os.path.basename(m.name)), "wb") as out:
                        out.write(fh.read())
                start += per[split]
    os.replace(tmp, root)
    return root


def subset(name: str, work: str, n_train: int, n_val: int, n_test: int) -> str:
    os.makedirs(work, exist_ok=True)
    return (mnist_subset if name == "mnist" else cifar_subset)(work, n_train, n_val, n_test)
