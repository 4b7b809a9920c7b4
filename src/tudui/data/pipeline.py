"""From a data source and a config to ready loaders: pick the size and channels, decide memory vs stream,
decode (with the disk cache), compute normalization statistics, and build the preprocessing value."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

import torch

from ..console import say
from ..errors import DataError
from .augment import AugmentSpec, BatchAugment
from .cache import cached_decode, checked_files
from .images import check_file, describe_failure, open_header, open_image
from .loader import _TransformDataset, BatchLoader, TransformLoader
from .preprocess import build_transforms, make_preprocess
from .splits import ArraySplit, check_after_skips, DataSource, FileSplit, Split

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


def ram_bytes() -> tuple:
    """(total, available) bytes of RAM."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    avail = total
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return total, avail


def memory_budget_bytes(cfg, device: torch.device) -> int:
    """--memory-budget GiB, or a share of the training device's memory: 25% of RAM (at most half of what is
    free now) on CPU; 40% of the GPU's memory (at most 70% of what is free) on a GPU."""
    if cfg.memory_budget is not None:
        return int(cfg.memory_budget * (1 << 30))
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return int(min(0.4 * total, 0.7 * free))
    total, avail = ram_bytes()
    return int(min(0.25 * total, 0.5 * avail))


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
    native = probe_native_size(source.splits.get("train"))
    if native and 16 <= min(native) and max(native) <= DEFAULT_FOLDER_SIZE:
        return native  # smaller ones are upsampled: not every model takes a 10x10 input
    return (DEFAULT_FOLDER_SIZE, DEFAULT_FOLDER_SIZE)


def probe_native_size(split, probe: int = 32) -> Optional[tuple]:
    """(H, W) shared by a sample of a file split's images (headers only), or None. A folder of small
    same-size images (CIFAR as JPEGs, 28x28 MNIST PNGs) then trains at its own size instead of being
    upsampled to the folder default."""
    if not isinstance(split, FileSplit) or len(split) == 0:
        return None
    n = len(split)
    k = min(probe, n)
    sizes = set()
    for i in sorted({round(j * (n - 1) / max(1, k - 1)) for j in range(k)}):  # spread over the split
        try:
            check_file(split.paths[i])  # a FIFO named .jpg would block Image.open
            with open_header(split.paths[i], split.paths[i]) as im:
                sizes.add((im.height, im.width))
        except Exception:  # unreadable files are reported by the decode; here they only don't count
            continue
        if len(sizes) > 1:
            return None
    return sizes.pop() if sizes else None


def transformed_size(cfg, source: DataSource, channels: int) -> tuple:
    """With config transforms the model sees what they produce: the (H, W) of a training image after the
    eval transforms (or the train ones when there are no eval ones)."""
    spec = cfg.transforms.get("eval") or cfg.transforms.get("train")
    ds = _TransformDataset(source.train, build_transforms(spec), channels)
    for i in range(min(len(ds), 20)):
        try:
            return tuple(ds[i].shape[-2:])
        except (DataError, OSError, ValueError):
            continue  # unreadable: try the next one
    return image_size(cfg, source)


def _report_skipped(bad: list) -> None:
    """Every unreadable file once, with its reason."""
    if bad:
        say(f"skipped {len(bad)} unreadable files:\n" + "\n".join(f"  {b}" for b in bad))


def _scan_readable(split: FileSplit) -> tuple:
    """Open every file once (threads; decoding releases the GIL) -> (readable indices, 'path: reason' lines)."""
    def check(p):
        try:
            open_image(p).close()
            return None
        except Exception as e:
            return describe_failure(p, e)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(check, split.paths, chunksize=64))
    return [i for i, r in enumerate(results) if r is None], [r for r in results if r is not None]


def _check_readable(split: Split, cache_dir=None) -> tuple:
    """Stream path: a broken file is skipped up front with its reason instead of stopping training when its
    batch comes. The answer is remembered under the split's cache key, so a folder is scanned once, not at
    every run (data.cache.checked_files)."""
    if not isinstance(split, FileSplit):
        return split, []
    kept, bad, _ = checked_files(split, cache_dir, _scan_readable)
    return (split.subset(kept) if bad else split), bad


def _materialize(split: Split, kind: str, channels, size, cfg, desc):
    """-> (split, images or None, targets tensor, unreadable, how the images were obtained or None)."""
    if kind == "memory":
        t0 = time.perf_counter()
        images, kept, bad, status = cached_decode(split, channels, size, cfg.cache_dir, workers=cfg.workers,
                                                  desc=desc)
        how = None  # already decoded (a built-in array): nothing worth saying
        if status == "hit":
            how = "read from the decode cache"
        elif not isinstance(split, ArraySplit):
            how = f"decoded {len(split)} images in {time.perf_counter() - t0:.1f}s" + (
                " (cached for the next run)" if status == "written" else "")
        if bad:
            split, before = split.subset(kept), split
            check_after_skips(before, split)
        return split, images, torch.tensor(split.targets, dtype=torch.long), bad, how
    before = split
    split, bad = _check_readable(split, cfg.cache_dir)
    if bad:
        check_after_skips(before, split)
    return split, None, torch.tensor(split.targets, dtype=torch.long), bad, None


def channel_stats(images: torch.Tensor) -> tuple:
    """Per-channel mean and std on a 0-1 scale of a uint8 (N, C, H, W) tensor, every pixel weighted equally.
    Exact, from a 256-bin histogram per channel: one pass over the bytes, no float copy of the data."""
    values = torch.arange(256, dtype=torch.float64)
    mean, std = [], []
    for c in range(images.shape[1]):
        hist = torch.zeros(256, dtype=torch.float64)
        for chunk in images.split(8192):
            hist += torch.bincount(chunk[:, c].reshape(-1), minlength=256).to(torch.float64)
        n = hist.sum()
        m = (hist * values).sum() / n
        var = ((hist * (values - m) ** 2).sum() / n).clamp(min=0)
        mean.append(float(m) / 255)
        std.append(max(float(var.sqrt()) / 255, 1e-3))
    return mean, std


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
    if pre is None and cfg.transforms and not cfg.img_size:
        size = transformed_size(cfg, source, channels)
    train_split = source.train if train else None
    eval_split_obj = source.split(eval_split)
    n_total = len(eval_split_obj) + (len(train_split) if train_split is not None else 0)
    kind, reason = choose_loader(cfg, n_total, channels, size, device)
    if pre and pre.get("custom"):
        kind, reason = "stream", "the checkpoint's custom transforms run per image"
    skipped = list(source.skipped)
    out = PreparedData(source=source, pre=pre or {}, classes=list(source.classes), loader_kind=kind,
                       loader_reason=reason)

    hows = []
    if train_split is not None:
        train_split, train_imgs, train_targets, bad, how = _materialize(train_split, kind, channels, size, cfg,
                                                                        "decode train")
        skipped += bad
        hows.append(how)
    vsplit, val_imgs, val_targets, bad, how = _materialize(eval_split_obj, kind, channels, size, cfg,
                                                           f"decode {eval_split}")
    skipped += bad
    hows.append(how)
    hows = list(dict.fromkeys(h for h in hows if h))  # train and val usually say the same
    if hows:
        out.loader_reason += "; " + ", ".join(hows)
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
    # evaluation batch: big on accelerators; on a CPU 64 keeps activations in cache (the course network's
    # forward pass runs ~20% faster per image at 64 than at 256 on a 2-core EPYC)
    eval_bs = max(cfg.batch_size, 256) if device.type != "cpu" else 64
    if pre.get("custom"):
        out.val = TransformLoader(split=vsplit, transform_spec=pre["eval_transforms"], channels=channels,
                                  targets=val_targets, batch_size=eval_bs, **common)
    else:
        out.val = BatchLoader(targets=val_targets, batch_size=eval_bs, images=val_imgs, split=vsplit, **common)
    return out
