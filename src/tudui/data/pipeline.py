"""From a data source and a config to ready loaders: pick the size and channels, decide memory vs stream,
decode (with the disk cache), compute normalization statistics, and build the preprocessing value."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Optional

import torch

from ..errors import DataError
from .augment import AugmentSpec, BatchAugment
from .loader import BatchLoader, TransformLoader
from .preprocess import make_preprocess
from .splits import DataSource, FileSplit, Split

DEFAULT_FOLDER_SIZE = 64


@dataclass
class PreparedData:
    source: DataSource
    pre: dict
    classes: list
    train: Optional[BatchLoader] = None
    val: Optional[BatchLoader] = None
    loader_kind: str = ""
    loader_reason: str = ""
    skipped: list = field(default_factory=list)
    train_counts: list = field(default_factory=list)


def ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def memory_budget_bytes(cfg, device: torch.device) -> int:
    if cfg.memory_budget is not None:
        return int(cfg.memory_budget * (1 << 30))
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return int(0.4 * total)
    return int(0.25 * ram_bytes())


def choose_loader(cfg, n_images: int, channels: int, size, device) -> tuple:
    """-> ('memory' | 'stream', reason)."""
    need = n_images * channels * size[0] * size[1]
    budget = memory_budget_bytes(cfg, device)
    gib = lambda b: f"{b / (1 << 30):.2f} GiB"
    if cfg.transforms:
        return "stream", "explicit transforms in the config run per image"
    if cfg.loader == "memory":
        return "memory", f"--loader memory ({gib(need)} decoded)"
    if cfg.loader == "stream":
        return "stream", "--loader stream"
    if need <= budget:
        return "memory", f"decoded data ({gib(need)}) fits the memory budget ({gib(budget)})"
    return "stream", f"decoded data ({gib(need)}) exceeds the memory budget ({gib(budget)})"


def image_size(cfg, source: DataSource) -> tuple:
    if cfg.img_size:
        return (int(cfg.img_size), int(cfg.img_size))
    if source.default_size:
        return tuple(source.default_size)
    if source.native_size:
        return tuple(source.native_size)
    return (DEFAULT_FOLDER_SIZE, DEFAULT_FOLDER_SIZE)


def _report_skipped(bad: list) -> None:
    if bad:
        first = ", ".join(bad[:3])
        print(f"skipped {len(bad)} unreadable files (first: {first})", file=sys.stderr, flush=True)


def _check_readable(split: Split) -> tuple:
    """Stream path: open every file's header once so broken files are skipped up front."""
    if not isinstance(split, FileSplit):
        return split, []
    from PIL import Image
    good, bad = [], []
    for i, p in enumerate(split.paths):
        try:
            with Image.open(p) as im:
                im.size  # noqa: B018 - reading the header is the check
            good.append(i)
        except Exception:
            bad.append(p)
    return (split.subset(good) if bad else split), bad


def _materialize(split: Split, kind: str, channels, size, cfg, desc):
    """-> (split, images or None, targets tensor, unreadable)."""
    if kind == "memory":
        from .cache import cached_decode
        images, kept, bad, _hit = cached_decode(split, channels, size, cfg.cache_dir, workers=cfg.workers, desc=desc)
        if bad:
            split = split.subset(kept)
        return split, images, torch.tensor(split.targets, dtype=torch.long), bad
    split, bad = _check_readable(split)
    return split, None, torch.tensor(split.targets, dtype=torch.long), bad


def channel_stats(images: torch.Tensor) -> tuple:
    """Per-channel mean and std on a 0-1 scale of a uint8 (N, C, H, W) tensor, every pixel weighted equally."""
    C = images.shape[1]
    s = torch.zeros(C, dtype=torch.float64)
    ss = torch.zeros(C, dtype=torch.float64)
    n = 0
    for chunk in images.split(4096):
        f = chunk.to(torch.float64).transpose(0, 1).reshape(C, -1)
        s += f.sum(1)
        ss += (f * f).sum(1)
        n += f.shape[1]
    mean = s / n
    var = (ss / n - mean * mean).clamp(min=0)
    return (mean / 255).tolist(), (var.sqrt() / 255).clamp(min=1e-3).tolist()


def _sample_stats(split: Split, channels, size, limit=2000, seed=0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(split), generator=g)[:limit].tolist()
    imgs = torch.stack([split.decode(i, channels, size) for i in idx])
    return channel_stats(imgs)


def prepare(source: DataSource, cfg, device, *, pre: Optional[dict] = None, train: bool = True,
            eval_split: str = "val") -> PreparedData:
    """Build loaders. With `pre` (from a checkpoint) only the evaluation split is prepared, with that preprocessing."""
    device = torch.device(device)
    channels = pre["channels"] if pre else source.channels
    size = tuple(pre["size"]) if pre else image_size(cfg, source)
    train_split = source.train if train else None
    eval_split_obj = source.split(eval_split)
    n_total = len(eval_split_obj) + (len(train_split) if train_split is not None else 0)
    kind, reason = choose_loader(cfg, n_total, channels, size, device)
    if pre and pre.get("custom"):
        kind, reason = "stream", "the checkpoint's custom transforms run per image"
    skipped = list(source.skipped)
    out = PreparedData(source=source, pre=pre or {}, classes=list(source.classes), loader_kind=kind,
                       loader_reason=reason)

    if train_split is not None:
        train_split, train_imgs, train_targets, bad = _materialize(train_split, kind, channels, size, cfg, "decode train")
        skipped += bad
    vsplit, val_imgs, val_targets, bad = _materialize(eval_split_obj, kind, channels, size, cfg, f"decode {eval_split}")
    skipped += bad
    _report_skipped(skipped)
    out.skipped = skipped

    if pre is None:
        if cfg.mean is not None and cfg.std is not None:
            mean, std = cfg.mean, cfg.std
        elif train_imgs is not None:
            mean, std = channel_stats(train_imgs)
        else:
            mean, std = _sample_stats(train_split, channels, size, seed=cfg.seed)
        eval_tf = cfg.transforms.get("eval") if cfg.transforms else None
        pre = make_preprocess(size, channels, mean, std, eval_transforms=eval_tf)
        out.pre = pre

    common = dict(pre=pre, device=device, channels_last=cfg.channels_last, workers=cfg.workers)
    if train_split is not None:
        n_classes = len(source.classes)
        counts = torch.bincount(train_targets, minlength=n_classes)
        out.train_counts = counts.tolist()
        missing = [source.classes[c] for c in range(n_classes) if counts[c] == 0]
        if len(missing) == n_classes - 1 or n_classes < 2:
            raise DataError(f"the training split of {source.name} needs images of at least two classes")
        weights = None
        if cfg.sampler == "balanced":
            weights = (1.0 / counts.clamp(min=1).double())[train_targets]
        if cfg.transforms and cfg.transforms.get("train"):
            out.train = TransformLoader(split=train_split, transform_spec=cfg.transforms["train"], channels=channels,
                                        targets=train_targets, batch_size=cfg.batch_size, seed=cfg.seed, shuffle=True,
                                        sample_weights=weights, drop_last=len(train_targets) % cfg.batch_size == 1,
                                        **common)
        else:
            aug = BatchAugment(AugmentSpec.from_config(cfg, size, hflip=source.hflip), flip_seed=cfg.seed)
            out.train = BatchLoader(targets=train_targets, batch_size=cfg.batch_size, seed=cfg.seed, shuffle=True,
                                    augment=aug, sample_weights=weights, images=train_imgs, split=train_split,
                                    drop_last=len(train_targets) % cfg.batch_size == 1, **common)
    eval_bs = max(cfg.batch_size, 256)
    if pre.get("custom"):
        out.val = TransformLoader(split=vsplit, transform_spec=pre["eval_transforms"], channels=channels,
                                  targets=val_targets, batch_size=eval_bs, **common)
    else:
        out.val = BatchLoader(targets=val_targets, batch_size=eval_bs, images=val_imgs, split=vsplit, **common)
    return out
