"""The in-memory fast path and the streaming DataLoader path: same batches, same augmentation, and the
choice between them (memory budget, --loader)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tudui.config import TrainConfig
from tudui.data.augment import AugmentSpec, BatchAugment, random_flip, random_translate
from tudui.data.pipeline import channel_stats, choose_loader, image_size, prepare
from tudui.data.splits import DataSource, FileSplit

SIDE = 16  # 16x16 images: pixel (r, c) can carry the unique value r * 16 + c in a uint8


def write_images(folder, n, side=SIDE, seed=0, fmt="png"):
    """n small RGB images in two classes; returns (paths, labels)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths, labels = [], []
    for i in range(n):
        p = folder / f"img{i:03d}.{fmt}"
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
        labels.append(i % 2)
    return paths, labels


def source_of(tmp_path, n_train=40, n_val=12):
    tr = FileSplit(*write_images(tmp_path / "train", n_train, seed=1))
    va = FileSplit(*write_images(tmp_path / "val", n_val, seed=2))
    return DataSource(name="tiny", classes=["a", "b"], splits={"train": tr, "val": va}, native_size=(SIDE, SIDE))


def cfg_for(tmp_path, **kw):
    base = dict(batch_size=8, seed=3, cache_dir=str(tmp_path / "cache"), augment="basic")
    return TrainConfig(**{**base, **kw})


def batches(loader, epoch):
    return [(x.clone(), y.clone()) for x, y in loader.iterate(epoch)]


@pytest.mark.parametrize("augment,cutout", [("none", 0), ("basic", 0), ("basic", 5)])
def test_memory_and_stream_give_identical_batches(tmp_path, augment, cutout):
    """Stronger than matching statistics: with the same seed both paths yield the same tensors, because
    both decode with the same function and augment the uint8 batch with a generator seeded per batch."""
    src = source_of(tmp_path)
    mem = prepare(src, cfg_for(tmp_path, loader="memory", augment=augment, cutout=cutout), "cpu")
    stream = prepare(src, cfg_for(tmp_path, loader="stream", augment=augment, cutout=cutout), "cpu")
    assert (mem.train.kind, stream.train.kind) == ("memory", "stream")
    assert mem.pre["mean"] == pytest.approx(stream.pre["mean"], abs=0.02)  # exact vs sampled statistics
    stream.train.mean, stream.train.std = mem.train.mean, mem.train.std  # compare with one normalization
    for epoch in (0, 1):
        a, b = batches(mem.train, epoch), batches(stream.train, epoch)
        assert len(a) == len(b) == 5
        for (xa, ya), (xb, yb) in zip(a, b):
            assert torch.equal(ya, yb)
            assert torch.equal(xa, xb)
    # evaluation batches too, in order and unaugmented
    for (xa, ya), (xb, yb) in zip(mem.val.iterate(0), stream.val.iterate(0)):
        assert torch.equal(ya, yb)
        assert torch.allclose(xa, (xb * stream.val.std.view(1, -1, 1, 1) + stream.val.mean.view(1, -1, 1, 1)
                                   - mem.val.mean.view(1, -1, 1, 1)) / mem.val.std.view(1, -1, 1, 1), atol=1e-5)
    # epochs differ from each other, and augmentation changes the images
    x0, x1 = batches(mem.train, 0)[0][0], batches(mem.train, 1)[0][0]
    assert not torch.equal(x0, x1)


def test_augmentation_statistics_match_between_paths_and_the_course_recipe(tmp_path):
    """Images whose pixels carry their own coordinates: every output reveals its crop offset and flip."""
    side, n = SIDE, 64
    coords = (torch.arange(side).view(side, 1) * side + torch.arange(side).view(1, side)).to(torch.uint8)
    img = coords.expand(3, side, side).numpy().transpose(1, 2, 0).copy()
    (tmp_path / "c").mkdir()
    paths = []
    for i in range(n):
        p = tmp_path / "c" / f"{i:03d}.png"
        Image.fromarray(img).save(p)
        paths.append(str(p))
    split = FileSplit(paths, [i % 2 for i in range(n)])
    src = DataSource(name="coords", classes=["a", "b"], splits={"train": split, "val": split},
                     native_size=(side, side))
    kw = dict(batch_size=16, mean=[0.0, 0.0, 0.0], std=[1 / 255] * 3)  # normalized value == pixel value
    stats = {}
    for kind in ("memory", "stream"):
        data = prepare(src, cfg_for(tmp_path, loader=kind, **kw), "cpu")
        offsets, flips = [], []
        for epoch in range(8):
            for x, _ in data.train.iterate(epoch):
                v = x[:, 0].round().long()
                centre = v[:, side // 2, side // 2]
                dy = centre // side - side // 2
                flip = (v[:, side // 2, side // 2 + 1] - v[:, side // 2, side // 2]) < 0
                col = centre % side
                dx = torch.where(flip, col - (side - 1 - side // 2), col - side // 2)
                offsets += list(zip(dy.tolist(), dx.tolist()))
                flips += flip.tolist()
        stats[kind] = (offsets, flips)
    assert stats["memory"] == stats["stream"]
    offsets, flips = stats["memory"]
    pad = round(side / 8)
    assert 0.4 < np.mean(flips) < 0.6  # RandomHorizontalFlip(p=0.5)
    dys, dxs = np.array(offsets).T
    assert dys.min() == dxs.min() == -pad and dys.max() == dxs.max() == pad
    counts = np.bincount(dys + pad, minlength=2 * pad + 1)  # RandomCrop(padding=pad): uniform offsets
    assert counts.min() > 0.5 * len(dys) / (2 * pad + 1)


def test_translate_matches_reflect_pad_and_crop():
    x = torch.randint(0, 256, (32, 3, 10, 12), dtype=torch.uint8)
    pad = 3
    out = random_translate(x, pad, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    dy = torch.randint(-pad, pad + 1, (32, 1), generator=g)[:, 0]
    dx = torch.randint(-pad, pad + 1, (32, 1), generator=g)[:, 0]
    xp = F.pad(x.float(), (pad,) * 4, mode="reflect")
    ref = torch.stack([xp[i, :, pad + dy[i]:pad + dy[i] + 10, pad + dx[i]:pad + dx[i] + 12] for i in range(32)])
    assert torch.equal(out, ref.to(torch.uint8))
    # the fused translate+flip of BatchAugment draws the same numbers as the two steps one after the other
    fused = BatchAugment(AugmentSpec(pad=pad, flip=True))(x, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    assert torch.equal(fused, random_flip(random_translate(x, pad, g), g))


def test_resume_mid_epoch_replays_the_same_batches(tmp_path):
    data = prepare(source_of(tmp_path), cfg_for(tmp_path, loader="memory"), "cpu")
    full = batches(data.train, 2)
    tail = [(x, y) for x, y in data.train.iterate(2, start=3)]
    assert len(tail) == len(full) - 3
    for (xa, ya), (xb, yb) in zip(full[3:], tail):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_channels_last_batches(tmp_path):
    src = source_of(tmp_path)
    a = prepare(src, cfg_for(tmp_path, loader="memory"), "cpu")
    b = prepare(src, cfg_for(tmp_path, loader="memory", channels_last=True), "cpu")
    xa, xb = next(a.train.iterate(0))[0], next(b.train.iterate(0))[0]
    assert xb.is_contiguous(memory_format=torch.channels_last) and not xa.is_contiguous(
        memory_format=torch.channels_last)
    assert torch.equal(xa, xb)


def test_budget_check_falls_back_to_streaming(tmp_path):
    src = source_of(tmp_path)
    n_bytes = 52 * 3 * SIDE * SIDE
    kind, reason = choose_loader(cfg_for(tmp_path, memory_budget=(n_bytes - 1) / 2 ** 30), 52, 3, (SIDE, SIDE), "cpu")
    assert kind == "stream" and "exceeds the memory budget" in reason
    kind, reason = choose_loader(cfg_for(tmp_path, memory_budget=n_bytes / 2 ** 30), 52, 3, (SIDE, SIDE), "cpu")
    assert kind == "memory" and "fits the memory budget" in reason
    data = prepare(src, cfg_for(tmp_path, memory_budget=1e-6), "cpu")  # auto + a tiny budget
    assert data.loader_kind == data.train.kind == data.val.kind == "stream"
    assert data.train.images is None and "exceeds" in data.loader_reason
    forced = prepare(src, cfg_for(tmp_path, loader="memory", memory_budget=1e-6), "cpu")
    assert forced.train.kind == "memory" and forced.train.images.shape == (40, 3, SIDE, SIDE)
    assert prepare(src, cfg_for(tmp_path), "cpu").loader_kind == "memory"  # default budget: plenty


def test_folder_of_small_same_size_images_trains_at_its_own_size(tmp_path):
    same = FileSplit(*write_images(tmp_path / "same", 6, side=24, fmt="jpg"))
    src = DataSource(name="s", classes=["a", "b"], splits={"train": same, "val": same})
    assert image_size(TrainConfig(), src) == (24, 24)
    assert image_size(TrainConfig(img_size=20), src) == (20, 20)
    tiny = FileSplit(*write_images(tmp_path / "tiny", 4, side=10))  # too small for some models: default
    assert image_size(TrainConfig(), DataSource(name="t", classes=["a", "b"],
                                                splits={"train": tiny, "val": tiny})) == (64, 64)
    mixed_paths, labels = write_images(tmp_path / "mixed", 4, side=24)
    mixed_paths.append(write_images(tmp_path / "other", 1, side=20)[0][0])
    mixed = FileSplit(mixed_paths, labels + [1])
    assert image_size(TrainConfig(), DataSource(name="m", classes=["a", "b"],
                                                splits={"train": mixed, "val": mixed})) == (64, 64)


def test_channel_stats_are_exact():
    x = torch.randint(0, 256, (50, 3, 9, 7), dtype=torch.uint8)
    mean, std = channel_stats(x)
    f = x.double().div(255).transpose(0, 1).reshape(3, -1)
    assert mean == pytest.approx(f.mean(1).tolist(), abs=1e-12)
    assert std == pytest.approx(f.std(1, unbiased=False).tolist(), abs=1e-12)
