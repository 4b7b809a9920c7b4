"""`tudui stats` (exact per-channel statistics, sizes, modes, unreadable files) and `tudui preview` (a labelled
grid of augmented samples as PNG and in TensorBoard), plus the augmentation presets they show."""
from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tudui.cli import main
from tudui.data import load_source
from tudui.data.images import to_mode
from tudui.data.stats import dataset_stats, stats

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _noise(rng, size, mode):
    w, h = size
    im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    return im if mode == "RGB" else im.convert(mode)


def _direct(paths, gray: bool):
    """The reference: every pixel of every image, converted as the spec says, in one big array."""
    arrs = [np.asarray(to_mode(Image.open(p), 1 if gray else 3), dtype=np.float64).reshape(-1, 1 if gray else 3)
            for p in paths]
    x = np.concatenate(arrs) / 255
    return x.mean(0), x.std(0)


def test_stats_exact_over_mixed_sizes_and_modes(tmp_path, capsys):
    rng = np.random.default_rng(0)
    specs = {"a": [((13, 7), "RGB", "png"), ((20, 31), "L", "png"), ((9, 9), "P", "gif"), ((16, 12), "RGBA", "png")],
             "b": [((11, 5), "CMYK", "jpg"), ((30, 20), "RGB", "webp"), ((8, 8), "RGB", "bmp"), ((13, 7), "LA", "png")]}
    paths = {"train": [], "val": []}
    for split in paths:
        for cls, items in specs.items():
            for k, (size, mode, ext) in enumerate(items):
                p = tmp_path / split / cls / f"{k}.{ext}"
                p.parent.mkdir(parents=True, exist_ok=True)
                _noise(rng, size, mode).save(p)
                paths[split].append(p)
    bad = tmp_path / "train" / "a" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = stats(str(tmp_path), workers=2)
    tr = r["splits"]["train"]
    assert r["channels"] == "RGB" and tr["num_images"] == 8 and tr["classes"] == {"a": 4, "b": 4}
    mean, std = _direct(paths["train"], gray=False)
    assert np.allclose(tr["mean"], mean, atol=1e-4) and np.allclose(tr["std"], std, atol=1e-4)
    assert tr["modes"] == {"RGB": 3, "L": 1, "P": 1, "RGBA": 1, "CMYK": 1, "LA": 1}
    assert tr["sizes"]["distinct"] == 7 and tr["sizes"]["width"] == [8, 30] and tr["sizes"]["most_common"]["13x7"] == 2
    assert r["unreadable"] == [str(bad)]
    assert np.allclose(r["splits"]["val"]["mean"], _direct(paths["val"], gray=False)[0], atol=1e-4)
    # the CLI: --json prints only that JSON on stdout, in the documented shape
    assert main(["stats", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"splits", "unreadable"} and set(out["splits"]["val"]) >= {
        "num_images", "classes", "mean", "std", "sizes", "modes"}


def test_stats_all_grayscale_is_one_channel(tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for cls, mode in (("x", "L"), ("y", "L"), ("y", "I;16")):
        for k in range(2):
            p = tmp_path / cls / f"{mode.replace(';', '')}{k}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            if mode == "I;16":
                Image.fromarray(rng.integers(0, 65536, (6, 9), dtype=np.uint16)).save(p)
            else:
                _noise(rng, (9 + k, 6), mode).save(p)
            paths.append(p)
    src = load_source(str(tmp_path), val_split=0.5)
    r = dataset_stats(src, workers=1)
    assert r["channels"] == "L"
    tr = r["splits"]["train"]
    assert len(tr["mean"]) == 1 and len(tr["std"]) == 1
    train_paths = [Path(p) for p in src.train.paths]
    mean, std = _direct(train_paths, gray=True)
    assert abs(tr["mean"][0] - mean[0]) < 1e-4 and abs(tr["std"][0] - std[0]) < 1e-4


def _write_idx(path, arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    path.write_bytes(gzip.compress(header + arr.tobytes()))


def test_stats_of_an_idx_dataset_match_numpy(tmp_path, capsys):
    rng = np.random.default_rng(2)
    raw = tmp_path / "MNIST" / "raw"
    data = {}
    for prefix, n in (("train", 30), ("t10k", 10)):
        x = rng.integers(0, 256, (n, 28, 28))
        y = np.arange(n) % 10
        _write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", x)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", y)
        data[prefix] = x / 255
    assert main(["stats", "mnist", "--data-dir", str(tmp_path), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["channels"] == "L" and r["splits"]["train"]["num_images"] == 30
    assert r["splits"]["train"]["classes"]["3"] == 3
    assert abs(r["splits"]["train"]["mean"][0] - data["train"].mean()) < 1e-4
    assert abs(r["splits"]["val"]["std"][0] - data["t10k"].std()) < 1e-4
    assert r["splits"]["val"]["sizes"]["most_common"] == {"28x28": 10} and r["splits"]["val"]["modes"] == {"L": 10}


@pytest.mark.skipif(not (SHARED / "MNIST" / "raw").is_dir(), reason="../shared/datasets is absent")
def test_stats_of_real_mnist_are_the_known_values():
    r = stats("mnist", data_dir=str(SHARED))
    tr = r["splits"]["train"]
    assert tr["num_images"] == 60000 and r["splits"]["val"]["num_images"] == 10000
    assert abs(tr["mean"][0] - 0.1307) < 1e-4 and abs(tr["std"][0] - 0.3081) < 1e-4  # the course's Normalize


def test_human_readable_stats(tmp_path, capsys):
    for cls in ("ants", "蜜蜂"):
        for k in range(2):
            p = tmp_path / cls / f"{k}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (5, 4), (255, 0, 0)).save(p)
    assert main(["stats", str(tmp_path), "--val-split", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "split train: 2 images" in out and "蜜蜂" in out and "mean 1.0000 0.0000 0.0000" in out
    assert "unreadable: 0" in out


# ---------------------------------------------------------------- preview and the presets it shows

def _folder(root: Path, n=6, size=(40, 40)):
    rng = np.random.default_rng(3)
    for cls in ("ants", "蚂蚁"):
        for k in range(n):
            p = root / cls / f"{k}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            _noise(rng, size, "RGB").save(p)


def test_preview_writes_a_labelled_png_and_tensorboard(tmp_path, capsys):
    _folder(tmp_path / "d")
    out = tmp_path / "grid.png"
    rc = main(["preview", str(tmp_path / "d"), "--augment", "strong", "--img-size", "32", "--num", "10",
               "--out", str(out), "--logdir", str(tmp_path / "tb")])
    assert rc == 0 and "wrote" in capsys.readouterr().err
    im = Image.open(out)
    assert im.format == "PNG" and im.width > 8 * 96 and im.height > 2 * 96  # 10 tiles: 8 + 2, upscaled
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = acc.Tags()["images"]
    assert tags and acc.Images(tags[0])[0].width == im.width


def test_preview_of_augment_none_shows_the_images_themselves(tmp_path):
    from tudui.report.preview import preview
    _folder(tmp_path / "d", n=2, size=(24, 24))
    p_none = preview(str(tmp_path / "d"), out=str(tmp_path / "none.png"), n=4, logdir=None, augment="none",
                     img_size=24, val_split=0.5)
    p_basic = preview(str(tmp_path / "d"), out=str(tmp_path / "basic.png"), n=4, logdir=None, augment="basic",
                      img_size=24, val_split=0.5)
    a, b = np.asarray(Image.open(p_none)), np.asarray(Image.open(p_basic))
    assert a.shape == b.shape and not np.array_equal(a, b)
    # augment none: the first tile is exactly a training image, upscaled 4x (96 / 24)
    src = load_source(str(tmp_path / "d"), val_split=0.5)
    order = torch.randperm(len(src.train), generator=torch.Generator().manual_seed(0)).tolist()
    first = np.asarray(Image.open(src.train.paths[order[0]]).convert("RGB"))
    assert np.array_equal(a[4:4 + 96:4, 4:4 + 96:4], first)


def test_preview_uses_config_transforms(tmp_path):
    from tudui.report.preview import preview
    _folder(tmp_path / "d", n=3)  # 4 training images after the hold-out
    cfg = tmp_path / "c.yaml"
    cfg.write_text("transforms:\n  train: [{name: RandomCrop, size: 20}, ToTensor, "
                   "{name: Normalize, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}]\n")
    path = preview(str(tmp_path / "d"), out=str(tmp_path / "t.png"), n=3, logdir=None, config=str(cfg))
    im = Image.open(path)
    assert im.width == 3 * (100 + 4) + 4  # 20 px crops shown 5x (100 px) each, 3 in a row


def test_presets_by_image_size_and_flip():
    from tudui.config import TrainConfig
    from tudui.data.augment import AugmentSpec
    small = AugmentSpec.from_config(TrainConfig(augment="basic"), (28, 28), hflip=False)
    assert small.pad > 0 and not small.flip  # random crop with padding; digits are never mirrored
    big = AugmentSpec.from_config(TrainConfig(augment="basic"), (128, 128), hflip=True)
    assert big.pad == 0 and big.flip  # random resized crop above 64 px
    strong = AugmentSpec.from_config(TrainConfig(augment="strong"), (32, 32))
    assert strong.preset == "strong" and strong.cutout > 0  # TrivialAugment + random erasing
    assert AugmentSpec.from_config(TrainConfig(augment="none"), (32, 32)).preset == "none"


def test_stats_of_a_python_dataset(tmp_path):
    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            img = Image.new("RGB", (4, 3), (255, 0, 0)) if i % 2 else torch.zeros(3, 5, 5)
            return img, "red" if i % 2 else "black"

    r = stats(Pairs(), val_split=0.25)
    tr = r["splits"]["train"]
    assert r["classes"] == ["black", "red"] and tr["classes"] == {"black": 3, "red": 3}
    n_red, n_black = 3 * 12, 3 * 25  # pixels: three 4x3 red images, three 5x5 black tensors
    assert abs(tr["mean"][0] - n_red / (n_red + n_black)) < 1e-4 and tr["mean"][1] == 0
    assert tr["modes"] == {"RGB": 6} and tr["sizes"]["distinct"] == 2
