"""Every dataset form, written in its real on-disk format inside the tests: idx files, CIFAR pickle batches,
ImageFolder with splits, the course's label-file layout, one folder with a hold-out, CSV, odd image modes,
corrupt and truncated files, a user's own Dataset; and the real shared sets when they are present."""
from __future__ import annotations

import gzip
import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tudui
from tudui.data import load_source
from tudui.data import builtin as builtin_mod
from tudui.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
FAST = dict(epochs=1, batch_size=8, progress=False, device="cpu", threads=1)


# ---------------------------------------------------------------- writers of the real formats

def write_idx(path: Path, arr: np.ndarray, gz: bool = True) -> Path:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    data = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()
    path = Path(str(path) + (".gz" if gz else ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_mnist(root: Path, folder="MNIST", n_train=40, n_test=20, gz=True, seed=0):
    """Tiny idx files in torchvision's layout: digit k is a bright square at a k-dependent place."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 30, (n, 28, 28))
        for i, k in enumerate(labels):
            images[i, 2 * k:2 * k + 6, 4:10] = 250
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, gz)
        out[prefix] = (images.astype(np.uint8), labels)
    return out


def write_cifar(root: Path, hundred=False, n=20, seed=0):
    """CIFAR python batches (pickled dicts of a uint8 (N, 3072) array and labels) in torchvision's layout."""
    rng = np.random.default_rng(seed)
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True, exist_ok=True)
    n_cls = 100 if hundred else 10
    key = "fine_labels" if hundred else "labels"
    train_files = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    test_files = ["test"] if hundred else ["test_batch"]
    data = {}
    for f in train_files + test_files:
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, n_cls, n)]
        d = {"data": x, key: y, "batch_label": f}
        if hundred:
            d["coarse_labels"] = [v // 5 for v in y]
        (folder / f).write_bytes(pickle.dumps(d, protocol=2))
        data[f] = (x, y)
    names = [f"class{i}" for i in range(n_cls)]
    meta = {"fine_label_names": names, "coarse_label_names": names[:20]} if hundred else {"label_names": names}
    (folder / ("meta" if hundred else "batches.meta")).write_bytes(pickle.dumps(meta, protocol=2))
    return folder, data, names


def save_image(path: Path, color=(200, 30, 30), size=(12, 10), mode="RGB", fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", size, color)
    if mode != "RGB":
        im = im.convert(mode)
    im.save(path, format=fmt)
    return path


def make_classes(root: Path, classes=("ants", "bees"), n=4, size=(12, 10)):
    colors = [(220, 40, 40), (40, 40, 220), (40, 200, 40)]
    for ci, c in enumerate(classes):
        for i in range(n):
            save_image(root / c / f"{i}.png", colors[ci % 3], size)


# ---------------------------------------------------------------- MNIST / Fashion-MNIST idx files

@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_files_load_as_uint8_arrays(tmp_path, gz):
    written = write_mnist(tmp_path, gz=gz)
    src = load_source("mnist", data_dir=str(tmp_path))
    assert src.classes == [str(i) for i in range(10)]
    assert src.channels == 1 and src.native_size == (28, 28) and src.hflip is False
    assert src.train.images.dtype == torch.uint8 and src.train.images.shape == (40, 1, 28, 28)
    assert torch.equal(src.train.images[:, 0], torch.from_numpy(written["train"][0]))
    assert src.train.targets == written["train"][1].tolist()
    assert len(src.val) == 20 and src.split("test") is src.val  # the official test set is held out


def test_fashion_mnist_reads_its_own_folder_and_names(tmp_path):
    write_mnist(tmp_path, folder="FashionMNIST")
    src = load_source("fashion-mnist", data_dir=str(tmp_path))
    assert src.classes[0] == "T-shirt/top" and src.classes[9] == "Ankle boot" and len(src.train) == 40
    with pytest.raises(DataError, match="FashionMNIST"):
        load_source("fashion-mnist", data_dir=str(tmp_path / "elsewhere"))


def test_checksum_mismatch_warns_once_and_still_loads(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(builtin_mod, "_checked", set())
    write_mnist(tmp_path)
    load_source("mnist", data_dir=str(tmp_path))
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "md5" in err and "train-images-idx3-ubyte.gz" in err
    load_source("mnist", data_dir=str(tmp_path))
    assert "warning" not in capsys.readouterr().err  # once per process, not on every load


def test_missing_files_say_what_where_and_download(tmp_path):
    with pytest.raises(DataError) as e:
        load_source("mnist", data_dir=str(tmp_path))
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and str(tmp_path / "MNIST" / "raw") in msg and "--download" in msg
    assert "\n" not in msg
    with pytest.raises(DataError, match="cifar-10-batches-py.*--download"):
        load_source("cifar10", data_dir=str(tmp_path))


def test_download_uses_torchvision_into_the_data_dir(tmp_path, monkeypatch):
    import sys
    import types

    import torchvision
    calls = []

    class FakeMNIST:  # stands in for torchvision's downloader: writes what it would
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_mnist(Path(root))

    fake = types.SimpleNamespace(MNIST=FakeMNIST)  # (importing the real torchvision.datasets takes seconds)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    monkeypatch.setattr(torchvision, "datasets", fake, raising=False)
    src = load_source("mnist", data_dir=str(tmp_path), download=True)
    assert calls and calls[0] == (str(tmp_path), True, True) and len(src.train) == 40


@pytest.mark.parametrize("damage,expect", [
    (lambda p: p.write_bytes(b"this is no idx file at all"), "not a readable gzip idx"),
    (lambda p: p.write_bytes(p.read_bytes()[:60]), "not a readable gzip idx"),  # truncated archive
    (lambda p: p.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">III", 40, 28, 28) + b"\x00" * 99)),
     "truncated"),
    (lambda p: p.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + b"\x00" * 20)), "magic"),
])
def test_broken_idx_file_is_named(tmp_path, damage, expect):
    write_mnist(tmp_path)
    bad = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    damage(bad)
    with pytest.raises(DataError, match=expect) as e:
        load_source("mnist", data_dir=str(tmp_path))
    assert str(bad) in str(e.value)


# ---------------------------------------------------------------- CIFAR pickles

def test_cifar10_batches(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(builtin_mod, "_checked", set())
    folder, data, names = write_cifar(tmp_path)
    src = load_source("cifar10", data_dir=str(tmp_path))
    assert src.classes == names and src.channels == 3 and src.native_size == (32, 32) and src.hflip
    assert src.train.images.shape == (100, 3, 32, 32) and len(src.val) == 20
    x, y = data["data_batch_2"]
    assert torch.equal(src.train.images[20:40], torch.from_numpy(x.reshape(-1, 3, 32, 32)))
    assert src.train.targets[20:40] == y
    assert capsys.readouterr().err.count("md5") == 1  # one line for all differing files


def test_cifar100_uses_fine_labels(tmp_path):
    folder, data, names = write_cifar(tmp_path, hundred=True)
    src = load_source("cifar100", data_dir=str(tmp_path))
    assert len(src.classes) == 100 and src.train.targets == data["train"][1]


def test_cifar_file_not_in_the_format_is_named(tmp_path):
    folder, _, _ = write_cifar(tmp_path)
    (folder / "data_batch_3").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataError, match="data_batch_3 is not a CIFAR python batch"):
        load_source("cifar10", data_dir=str(tmp_path))
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": np.zeros((4, 100), np.uint8), "labels": [0] * 4}))
    with pytest.raises(DataError, match=r"data_batch_3.*\(N, 3072\)"):
        load_source("cifar10", data_dir=str(tmp_path))


def test_cifar_pickle_cannot_run_code(tmp_path):
    folder, _, _ = write_cifar(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    (folder / "test_batch").write_bytes(pickle.dumps({"data": Evil(), "labels": []}, protocol=2))
    with pytest.raises(DataError, match="test_batch"):
        load_source("cifar10", data_dir=str(tmp_path))
    assert not marker.exists()


# ---------------------------------------------------------------- folders

def test_image_folder_with_splits_unicode_hidden_and_non_images(tmp_path):
    root = tmp_path / "数据"
    make_classes(root / "train", ("蜜蜂", "蚂蚁", "ants"))
    make_classes(root / "validation", ("蜜蜂", "蚂蚁", "ants"), n=2)
    (root / "train" / "ants" / ".DS_Store").write_bytes(b"\x00\x01")
    (root / "train" / "ants" / "._0.png").write_bytes(b"resource fork")  # hidden
    (root / "train" / "ants" / "notes.txt").write_text("not an image")
    (root / "train" / ".hidden_class").mkdir()
    src = load_source(str(root))
    assert src.classes == sorted(["蜜蜂", "蚂蚁", "ants"])
    assert len(src.train) == 12 and len(src.val) == 6
    assert all(p.endswith(".png") and "/._" not in p for p in src.train.paths)
    assert src.holdout is None


def test_test_split_is_held_out_when_there_is_no_val(tmp_path):
    make_classes(tmp_path / "train")
    make_classes(tmp_path / "test", n=2)
    src = load_source(str(tmp_path))
    assert len(src.val) == 4 and src.split("test") is src.val


def test_val_class_unknown_to_train_is_an_error(tmp_path):
    make_classes(tmp_path / "train")
    make_classes(tmp_path / "val", ("ants", "wasps"), n=2)
    with pytest.raises(DataError, match="wasps"):
        load_source(str(tmp_path))


def test_empty_class_folder_and_single_class_are_named(tmp_path):
    make_classes(tmp_path / "a" / "train")
    (tmp_path / "a" / "train" / "empty").mkdir()
    with pytest.raises(DataError, match=r"class folder .*empty has no images"):
        load_source(str(tmp_path / "a"))
    make_classes(tmp_path / "b", ("only",))
    with pytest.raises(DataError, match=f"{tmp_path / 'b'}.*two classes"):
        load_source(str(tmp_path / "b"))


def test_course_label_file_layout(tmp_path):
    """train/ants_image/*.jpg + train/ants_label/<name>.txt ('ants', no trailing newline); val as class folders."""
    for cls, color in (("ants", (200, 20, 20)), ("bees", (20, 20, 200))):
        for i in range(3):
            save_image(tmp_path / "train" / f"{cls}_image" / f"{cls}{i}.jpg", color)
            (tmp_path / "train" / f"{cls}_label").mkdir(parents=True, exist_ok=True)
            (tmp_path / "train" / f"{cls}_label" / f"{cls}{i}.txt").write_text(cls)  # no newline
        save_image(tmp_path / "val" / cls / "v.jpg", color)
    # a .jpeg labelled after its whole file name, with a trailing newline and a BOM
    save_image(tmp_path / "train" / "ants_image" / "formica.jpeg", (200, 20, 20), fmt="JPEG")
    (tmp_path / "train" / "ants_label" / "formica.jpeg.txt").write_text("\ufeffants\n", encoding="utf-8")
    # a .jpg may also be labelled after its whole name
    save_image(tmp_path / "train" / "bees_image" / "apis.jpg", (20, 20, 200))
    (tmp_path / "train" / "bees_label" / "apis.jpg.txt").write_text("bees")
    src = load_source(str(tmp_path))
    assert src.classes == ["ants", "bees"]
    labels = {os.path.basename(p): src.classes[t] for p, t in zip(src.train.paths, src.train.targets)}
    assert labels["formica.jpeg"] == "ants" and labels["apis.jpg"] == "bees" and len(labels) == 8
    assert sorted(src.classes[t] for t in src.val.targets) == ["ants", "bees"]


def test_label_file_layout_class_names_come_from_the_files(tmp_path):
    for folder, label in (("x", "cat"), ("y", "dog")):
        for i in range(2):
            save_image(tmp_path / "train" / f"{folder}_image" / f"{i}.jpg")
            (tmp_path / "train" / f"{folder}_label").mkdir(parents=True, exist_ok=True)
            (tmp_path / "train" / f"{folder}_label" / f"{i}.txt").write_text(label + "\n")
    src = load_source(str(tmp_path))
    assert src.classes == ["cat", "dog"] and src.holdout is not None
    (tmp_path / "train" / "y_label" / "1.txt").unlink()
    with pytest.raises(DataError, match=r"y_image have no label file .*1\.txt"):
        load_source(str(tmp_path))


def test_single_folder_holdout_is_seeded_and_stratified(tmp_path):
    make_classes(tmp_path, ("a", "b", "c"), n=10)
    s1 = load_source(str(tmp_path), seed=1, val_split=0.2)
    s1b = load_source(str(tmp_path), seed=1, val_split=0.2)
    s2 = load_source(str(tmp_path), seed=2, val_split=0.2)
    assert s1.holdout == s1b.holdout and s1.holdout != s2.holdout
    assert sorted(s1.val.targets) == [0, 0, 1, 1, 2, 2]  # 20% of each class
    assert set(s1.holdout["train"]).isdisjoint(s1.holdout["val"]) and len(s1.holdout["train"]) == 24
    assert all(not os.path.isabs(p) for p in s1.holdout["val"])


# ---------------------------------------------------------------- CSV

def test_csv_relative_paths_and_holdout(tmp_path):
    make_classes(tmp_path / "imgs", ("x", "y"), n=5)
    rows = [f"imgs/{c}/{i}.png,{'cat' if c == 'x' else 'dog'}" for c in "xy" for i in range(5)]
    (tmp_path / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n\n")
    src = load_source(str(tmp_path / "labels.csv"), seed=0, val_split=0.2)
    assert src.classes == ["cat", "dog"] and len(src.train) == 8 and sorted(src.val.targets) == [0, 1]
    assert src.holdout["val"][0].startswith("imgs/")


def test_csv_split_column_and_numeric_labels(tmp_path):
    make_classes(tmp_path, ("a", "b", "c"), n=3)
    rows = []
    for ci, c in enumerate("abc"):
        label = [2, 10, 1][ci]  # numeric labels sort as numbers: 1, 2, 10
        rows += [f"{c}/0.png,{label},train", f"{c}/1.png,{label},TRAIN", f"{c}/2.png,{label},val"]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    src = load_source(str(tmp_path / "d.csv"))
    assert src.classes == ["1", "2", "10"] and len(src.train) == 6 and len(src.val) == 3
    assert src.holdout is None
    (tmp_path / "bad.csv").write_text("a/0.png,1,training\n")
    with pytest.raises(DataError, match="line 1: split must be"):
        load_source(str(tmp_path / "bad.csv"))
    (tmp_path / "missing.csv").write_text("a/0.png,1\nnope/9.png,2\n")
    with pytest.raises(DataError, match=r"1 listed file.*line 2"):
        load_source(str(tmp_path / "missing.csv"))


# ---------------------------------------------------------------- image files of every kind

def test_every_common_format_and_mode_decodes(tmp_path):
    d = tmp_path / "m"
    files = [save_image(d / "rgb.jpg"), save_image(d / "gray.png", mode="L"), save_image(d / "pal.gif", mode="P"),
             save_image(d / "rgba.png", mode="RGBA"), save_image(d / "cmyk.jpg", mode="CMYK"),
             save_image(d / "x.bmp"), save_image(d / "x.webp"), save_image(d / "la.png", mode="LA")]
    p16 = d / "deep.png"
    Image.fromarray(np.full((10, 12), 65535, dtype=np.uint16)).save(p16)  # 16-bit grayscale
    files.append(p16)
    transparent = d / "clear.png"
    Image.new("RGBA", (12, 10), (0, 0, 0, 0)).save(transparent)
    files.append(transparent)
    from tudui.data.splits import FileSplit
    split = FileSplit(files, [0] * len(files))
    for i in range(len(files)):
        x = split.decode(i, 3, (8, 8))
        assert x.dtype == torch.uint8 and x.shape == (3, 8, 8), files[i]
    assert split.decode(files.index(p16), 1, None).min() == 255  # full 16-bit scale -> white
    assert split.decode(len(files) - 1, 3, None).min() == 255  # transparency on white


def _tiny_two_class_folder(root: Path, n=6):
    for ci, (c, color) in enumerate((("ants", (230, 30, 30)), ("bees", (30, 30, 230)))):
        for i in range(n):
            save_image(root / "train" / c / f"{i}.png", color, (16, 16))
        for i in range(2):
            save_image(root / "val" / c / f"{i}.png", color, (16, 16))


def test_unreadable_files_are_skipped_and_reported_once(tmp_path, capsys):
    _tiny_two_class_folder(tmp_path / "d")
    (tmp_path / "d" / "train" / "ants" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    good = (tmp_path / "d" / "train" / "bees" / "0.png").read_bytes()
    (tmp_path / "d" / "train" / "bees" / "truncated.png").write_bytes(good[: len(good) // 2])
    r = tudui.train(str(tmp_path / "d"), out=str(tmp_path / "runs"), img_size=16, cache_dir=str(tmp_path / "c"), **FAST)
    err = capsys.readouterr().err
    assert err.count("skipped 2 unreadable files") == 1 and "corrupt.jpg" in err and "truncated.png" in err
    assert r.classes == ["ants", "bees"]
    ck = torch.load(r.best_path, weights_only=True)
    assert ck["classes"] == ["ants", "bees"]


def test_class_with_only_unreadable_images_names_its_folder(tmp_path):
    _tiny_two_class_folder(tmp_path / "d")
    for p in (tmp_path / "d" / "train" / "bees").iterdir():
        p.write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"class folder .*train/bees has no readable images"):
        tudui.train(str(tmp_path / "d"), out=str(tmp_path / "runs"), img_size=16, cache_dir=str(tmp_path / "c"), **FAST)


def test_single_folder_run_records_split_json(tmp_path):
    make_classes(tmp_path / "d", ("a", "b"), n=5, size=(16, 16))
    r = tudui.train(str(tmp_path / "d"), out=str(tmp_path / "runs"), img_size=16, cache_dir=str(tmp_path / "c"),
                    val_split=0.2, **FAST)
    split = json.loads((Path(r.run_dir) / "split.json").read_text())
    assert len(split["val"]) == 2 and len(split["train"]) == 8
    assert sorted(split["train"] + split["val"]) == sorted(f"{c}/{i}.png" for c in "ab" for i in range(5))


# ---------------------------------------------------------------- your own Dataset

class MyData(torch.utils.data.Dataset):
    """The course's own Dataset: PIL images, the folder name as the label."""

    def __init__(self, root_dir, label_dir):
        self.root_dir, self.label_dir = root_dir, label_dir
        self.path = os.path.join(root_dir, label_dir)
        self.img_path = sorted(os.listdir(self.path))

    def __getitem__(self, idx):
        img = Image.open(os.path.join(self.path, self.img_path[idx]))
        return img, self.label_dir

    def __len__(self):
        return len(self.img_path)


def test_course_dataset_with_name_labels_trains(tmp_path):
    _tiny_two_class_folder(tmp_path / "d")
    train = MyData(str(tmp_path / "d" / "train"), "bees") + MyData(str(tmp_path / "d" / "train"), "ants")
    src = load_source(train)
    assert src.classes == ["ants", "bees"] and len(src.train) + len(src.val) == 12
    assert src.native_size == (16, 16) and src.channels == 3
    val = MyData(str(tmp_path / "d" / "val"), "ants") + MyData(str(tmp_path / "d" / "val"), "bees")
    r = tudui.train(train, val_data=val, out=str(tmp_path / "runs"), **FAST)
    assert r.classes == ["ants", "bees"] and r.final["val_acc"] is not None


def test_tensor_dataset_with_classes_attribute(tmp_path):
    class Tensors(torch.utils.data.Dataset):
        classes = ["zero", "one"]

        def __len__(self):
            return 10

        def __getitem__(self, i):
            return torch.full((1, 8, 8), float(i % 2)), torch.tensor(i % 2)

    src = load_source(Tensors())
    assert src.classes == ["zero", "one"] and src.channels == 1 and src.native_size == (8, 8)
    assert src.train.decode(0, 1, None).dtype == torch.uint8
    with pytest.raises(DataError, match="out of range"):
        load_source(Tensors(), classes=["only"])


# ---------------------------------------------------------------- config-file transforms reach predict

def test_config_transforms_are_used_and_stored_for_predict(tmp_path):
    _tiny_two_class_folder(tmp_path / "d")
    cfg = tmp_path / "t.yaml"
    cfg.write_text(
        "transforms:\n"
        "  train: [{name: Resize, size: [20, 20]}, {name: RandomCrop, size: 16}, ToTensor,\n"
        "          {name: Normalize, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}]\n"
        "  eval: [{name: Resize, size: [16, 16]}, ToTensor, {name: Normalize, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}]\n")
    r = tudui.train(str(tmp_path / "d"), config=str(cfg), out=str(tmp_path / "runs"), **FAST)
    clf = tudui.load(r.best_path)
    assert clf.preprocess["custom"] and clf.preprocess["eval_transforms"][0]["name"] == "Resize"
    import torchvision.transforms as T
    img = Image.open(tmp_path / "d" / "val" / "ants" / "0.png").convert("RGB")
    expect = T.Compose([T.Resize((16, 16)), T.ToTensor(), T.Normalize([0.5] * 3, [0.25] * 3)])(img)
    from tudui.data.preprocess import preprocess_image
    assert torch.allclose(preprocess_image(img, clf.preprocess), expect)
    with torch.no_grad():
        want = clf.model(expect[None]).softmax(1)[0]
    got = tudui.predict(r.best_path, [str(tmp_path / "d" / "val" / "ants" / "0.png")], topk=2)[0]["topk"]
    assert abs(got[0]["prob"] - float(want.max())) < 1e-5


# ---------------------------------------------------------------- the real shared datasets

@pytest.mark.skipif(not (SHARED / "hymenoptera_data").is_dir(), reason="../shared/datasets is absent")
def test_hymenoptera_one_epoch_end_to_end(tmp_path):
    r = tudui.train(str(SHARED / "hymenoptera_data"), out=str(tmp_path / "runs"), img_size=64,
                    cache_dir=str(tmp_path / "c"), epochs=1, progress=False, device="cpu")
    assert r.classes == ["ants", "bees"] and 0 <= r.final["val_acc"] <= 1
    pred = tudui.predict(r.best_path, [str(SHARED / "hymenoptera_data" / "val" / "bees")], topk=1)
    assert len(pred) == 83 and pred[0]["topk"][0]["label"] in ("ants", "bees")


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "MNIST" / "raw").is_dir(), reason="../shared/datasets is absent")
def test_mnist_one_epoch_default_settings_reaches_95(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(builtin_mod, "_checked", set())  # whatever loaded it before in this process
    r = tudui.train("mnist", data_dir=str(SHARED), epochs=1, out=str(tmp_path / "runs"), progress=False, device="cpu")
    err = capsys.readouterr().err
    assert err.count("md5 mismatch") == 1 and "train-images-idx3-ubyte.gz" in err  # the recompressed copy
    assert r.final["val_acc"] >= 0.95


def test_gradient_clipping_default_and_overrides(tmp_path):
    from tudui.config import resolve
    assert resolve({"data": "mnist"}).clip_grad == 2.0  # keeps the course net stable at lr 0.05
    assert resolve({"data": "mnist", "clip_grad": 5}).clip_grad == 5.0
    assert resolve({"data": "mnist", "clip_grad": None}).clip_grad is None
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: fashion-mnist\nclip_grad: 1.5\n")
    assert resolve({}, config_file=str(cfg)).clip_grad == 1.5

def test_unknown_names_and_paths_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'mnst'.*mnist"):
        load_source("mnst")
    with pytest.raises(DataError, match="data path not found"):
        load_source(str(tmp_path / "nope"))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="is a file"):
        load_source(str(tmp_path / "x.txt"))
