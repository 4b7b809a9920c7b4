"""`tudui preview`: a labelled grid of augmented training samples, as a PNG and in TensorBoard, made by the
very augmentation code training uses (the batched presets, or the config file's `transforms: train`)."""
from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

from .. import board
from ..config import resolve
from ..data import load_source
from ..data.augment import AugmentSpec, BatchAugment, batch_seed
from ..data.images import open_image, to_mode
from ..data.pipeline import image_size
from ..data.preprocess import _parse_item, build_transforms
from ..data.splits import DatasetSplit, FileSplit, Split
from ..errors import DataError
from .fonts import label
from .grids import tile_grid, to_array

TILE = 96  # samples are shown at least this large (nearest-neighbour upscaling keeps the pixels visible)


def _augmented_presets(split, order, n, cfg, source, size) -> tuple:
    """The training presets on a uint8 batch, exactly as the loaders call them for batch 0 of epoch 0."""
    imgs, idx = [], []
    for i in order:
        try:
            imgs.append(split.decode(i, source.channels, size))
            idx.append(i)
        except (DataError, OSError, ValueError):
            continue  # unreadable: training skips it too
        if len(imgs) == n:
            break
    if not imgs:
        raise DataError(f"no readable training images in {source.name}")
    aug = BatchAugment(AugmentSpec.from_config(cfg, size, hflip=source.hflip), flip_seed=cfg.seed)
    x = torch.stack(imgs)
    if aug.active:
        g = torch.Generator().manual_seed(batch_seed(cfg.seed, 0, 0))
        x = aug(x, g, epoch=0, indices=torch.tensor(idx))
    return x, idx


def _pil_of(split: Split, i: int, channels: int) -> Image.Image:
    if isinstance(split, FileSplit):
        return to_mode(open_image(split.paths[i]), channels)
    if isinstance(split, DatasetSplit) and isinstance(split.item(i), Image.Image):
        return to_mode(split.item(i), channels)
    t = split.decode(i, channels, None)
    return Image.fromarray(t.permute(1, 2, 0).squeeze(-1).numpy())


def _augmented_transforms(split, order, n, spec, channels, seed) -> tuple:
    """The config file's torchvision transforms; a final Normalize is undone for display."""
    tf = build_transforms(spec)
    norm = [args for name, args in map(_parse_item, spec) if name == "Normalize"]
    with torch.random.fork_rng(devices=[]):  # torchvision draws from the global RNG
        torch.manual_seed(seed)
        return _apply(tf, norm, split, order, n, channels)


def _apply(tf, norm, split, order, n, channels) -> tuple:
    imgs, idx = [], []
    for i in order:
        try:
            out = tf(_pil_of(split, i, channels))
        except (DataError, OSError, ValueError):
            continue
        if not isinstance(out, torch.Tensor):
            raise DataError("the configured train transforms must end with ToTensor (or produce a tensor)")
        if norm:
            c = out.shape[0]
            mean = torch.tensor(norm[-1].get("mean", [0.0] * c), dtype=torch.float32).view(-1, 1, 1)
            std = torch.tensor(norm[-1].get("std", [1.0] * c), dtype=torch.float32).view(-1, 1, 1)
            out = out * std + mean
        imgs.append((out.clamp(0, 1) * 255).round().to(torch.uint8))
        idx.append(i)
        if len(imgs) == n:
            break
    if not imgs:
        raise DataError("no readable training images")
    sizes = {tuple(t.shape) for t in imgs}
    if len(sizes) > 1:  # transforms without a fixed output size: show each at the first one's size
        h, w = imgs[0].shape[-2:]
        imgs = [torch.nn.functional.interpolate(t[None].float(), size=(h, w), mode="nearest")[0].to(torch.uint8)
                for t in imgs]
    return torch.stack(imgs), idx


def make_grid(x: torch.Tensor, labels: list, cols: int = 8) -> Image.Image:
    """uint8 (N, C, H, W) + one caption each -> an RGB grid image with the caption under each sample
    (drawn by matplotlib, tudui's one plotting code; tiles upscaled to at least TILE px)."""
    return Image.fromarray(to_array(tile_grid(x, labels, cols=cols, tile=TILE)))


def preview(data=None, *, out: str = "preview.png", n: int = 32, logdir: str | None = "runs/preview",
            config: str | None = None, **options) -> str:
    """Write a grid of `n` augmented training samples with their class names to `out` (PNG) and, unless
    logdir is None, to TensorBoard under `logdir`. Options are training config keys (augment, img_size,
    seed, data_dir, transforms via the config file...). Returns the PNG's path."""
    own_dataset = data is not None and not isinstance(data, (str, os.PathLike))
    if data is not None and not own_dataset:
        options["data"] = os.fspath(data)
    cfg = resolve(options, config_file=config)
    source = load_source(data if own_dataset else cfg.data, data_dir=cfg.data_dir, download=cfg.download,
                         allow_outside=cfg.allow_outside,
                         seed=cfg.seed, val_split=cfg.val_split)
    split = source.train
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    train_spec = (cfg.transforms or {}).get("train")
    if train_spec:
        x, idx = _augmented_transforms(split, order, n, train_spec, source.channels, cfg.seed)
        how = "config transforms"
    else:
        x, idx = _augmented_presets(split, order, n, cfg, source, image_size(cfg, source))
        how = f"--augment {cfg.augment}"
    labels = [source.classes[split.targets[i]] for i in idx]
    grid = make_grid(x, [label(n, split.targets[i]) for n, i in zip(labels, idx)])
    out = os.path.expanduser(out)
    if os.path.dirname(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
    grid.save(out, format="PNG")
    if logdir:
        tb = board.open_writer(logdir)
        if tb is not None:
            with tb:
                board.rgb_image(tb, f"preview/{how}", np.asarray(grid))
                tb.add_text("preview/classes", ", ".join(sorted(set(labels))), 0)
    return out
