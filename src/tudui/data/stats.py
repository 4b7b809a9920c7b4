"""Dataset statistics (`tudui stats`): per split, images per class, sizes and modes, and the exact per-channel
mean and std on a 0-1 scale over every pixel of every readable image at its native size.

One streaming pass: each image is reduced to a 256-bin histogram per channel (integer counts, so the sums
are exact and the order does not matter), then dropped. Images are converted to RGB; a grayscale image
counts its gray value in all three channels, so when every image of the dataset is grayscale the statistics
of one channel are exactly those of the images converted to L.
"""
from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from ..console import progress_bar
from . import load_source
from .images import failure_reason, open_image, to_mode
from .splits import ArraySplit, DatasetSplit, DataSource, FileSplit, Split

GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
CHUNK = 4096  # images per step for in-memory arrays


class _Acc:
    """Running totals of one split."""
    def __init__(self, n_classes: int):
        self.hist = np.zeros((3, 256), dtype=np.int64)
        self.counts = np.zeros(n_classes, dtype=np.int64)
        self.sizes: Counter = Counter()
        self.modes: Counter = Counter()
        self.gray = True  # every image so far was grayscale

    def add(self, hist3, label, size, mode, gray, n=1):
        self.hist += hist3
        self.counts[label] += n
        self.sizes[size] += n
        self.modes[mode] += n
        self.gray &= gray

    def summary(self, classes, gray_dataset: bool) -> dict:
        n = int(self.counts.sum())
        out = {"num_images": n, "classes": {c: int(k) for c, k in zip(classes, self.counts)}}
        hist = self.hist[:1] if gray_dataset else self.hist
        values = np.arange(256, dtype=np.float64)
        total = hist.sum(1)
        if n and total.min() > 0:
            s = hist @ values  # exact: integer counts times small integers, well inside float64's 2**53
            ss = hist @ (values * values)
            mean = s / total
            var = np.maximum(ss / total - mean * mean, 0.0)
            out["mean"] = [round(float(m) / 255, 6) for m in mean]
            out["std"] = [round(float(v) / 255, 6) for v in np.sqrt(var)]
        else:
            out["mean"] = out["std"] = None
        out["sizes"] = _size_summary(self.sizes)
        out["modes"] = dict(self.modes.most_common())
        return out


def _size_summary(sizes: Counter) -> dict:
    if not sizes:
        return {"distinct": 0}
    ws = [w for w, _ in sizes]
    hs = [h for _, h in sizes]
    return {"distinct": len(sizes), "width": [min(ws), max(ws)], "height": [min(hs), max(hs)],
            "most_common": {f"{w}x{h}": k for (w, h), k in sizes.most_common(5)}}


def _pil_stats(im: Image.Image) -> tuple:
    """-> (histograms (3, 256), (W, H), original mode, grayscale?)"""
    gray = im.mode in GRAY_MODES
    arr = np.asarray(to_mode(im, 1 if gray else 3))
    if gray:
        h = np.bincount(arr.ravel(), minlength=256)
        return np.stack([h, h, h]), im.size, im.mode, True
    return np.stack([np.bincount(arr[..., c].ravel(), minlength=256) for c in range(3)]), im.size, im.mode, False


def _tensor_stats(x: torch.Tensor) -> tuple:
    """uint8 (C, H, W) -> the same as _pil_stats; 1-channel tensors count as grayscale."""
    gray = x.shape[0] == 1
    hs = [torch.bincount(x[0 if gray else c].reshape(-1), minlength=256).numpy() for c in range(3)]
    return np.stack(hs), (int(x.shape[2]), int(x.shape[1])), "L" if gray else "RGB", gray


def _one(split: Split, i: int, channels: int):
    """Stats of sample i, or the reason (str) it cannot be read."""
    try:
        if isinstance(split, FileSplit):
            return _pil_stats(open_image(split.paths[i]))
        if isinstance(split, DatasetSplit):
            img = split.item(i)
            if isinstance(img, Image.Image):
                return _pil_stats(img)
        return _tensor_stats(split.decode(i, channels, None))
    except Exception as e:  # any failure is that file's: reported with its reason, never fatal
        return failure_reason(e)


def _array_pass(split: ArraySplit, acc: _Acc) -> None:
    """Whole chunks at once: per-class bincounts of (label, channel, value)."""
    imgs, targets = split.images, torch.tensor(split.targets, dtype=torch.long)
    C, H, W = imgs.shape[1:]
    gray = C == 1
    for start in range(0, len(imgs), CHUNK):
        x = imgs[start:start + CHUNK]
        y = targets[start:start + CHUNK]
        flat = x.transpose(0, 1).reshape(C, -1).long()
        hist = torch.stack([torch.bincount(flat[c], minlength=256) for c in range(C)]).numpy()
        if gray:
            hist = np.concatenate([hist] * 3)
        acc.hist += hist
        acc.counts += np.bincount(y.numpy(), minlength=len(acc.counts))
        acc.sizes[(int(W), int(H))] += len(x)
        acc.modes["L" if gray else "RGB"] += len(x)
    acc.gray &= gray


def split_stats(split: Split, n_classes: int, channels: int, workers: int, desc: str = "") -> tuple:
    """-> (_Acc, unreadable: [(file, reason)])."""
    acc = _Acc(n_classes)
    if isinstance(split, ArraySplit):
        _array_pass(split, acc)
        return acc, []
    bad = []
    bar = progress_bar(len(split), desc, len(split) >= 500, unit="img", leave=False)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # decoding releases the GIL
        for start in range(0, len(split), 256):  # bounded: results never pile up in memory
            idx = range(start, min(start + 256, len(split)))
            for i, r in zip(idx, pool.map(lambda k: _one(split, k, channels), idx)):
                if isinstance(r, str):
                    bad.append((split.describe(i), r))
                else:
                    acc.add(r[0], split.targets[i], *r[1:])
            bar.update(len(idx))
    bar.close()
    return acc, bad


def dataset_stats(source: DataSource, workers: int | None = None) -> dict:
    """{"dataset", "classes", "channels", "splits": {name: {...}}, "unreadable": [files], "unreadable_reasons":
    {file: reason}} (see module doc); each unreadable file is listed once."""
    workers = workers or min(8, os.cpu_count() or 1)
    accs, unreadable = {}, []
    for name, split in source.splits.items():
        accs[name], bad = split_stats(split, len(source.classes), source.channels, workers, desc=f"stats {name}")
        unreadable += bad
    gray = all(a.gray for a in accs.values())
    return {"dataset": source.name, "classes": list(source.classes), "channels": "L" if gray else "RGB",
            "splits": {name: acc.summary(source.classes, gray) for name, acc in accs.items()},
            "unreadable": [f for f, _ in unreadable], "unreadable_reasons": dict(unreadable)}


def format_stats(r: dict) -> str:
    """The human-readable report."""
    lines = [f"dataset: {r['dataset']}  ({len(r['classes'])} classes; statistics in {r['channels']}, 0-1 scale)"]
    w = max([8] + [len(c) for c in r["classes"]])
    for name, s in r["splits"].items():
        lines.append(f"split {name}: {s['num_images']} images")
        for c, k in s["classes"].items():
            lines.append(f"  {c:<{w}}  {k:7d}")
        if s["mean"] is not None:
            lines.append("  mean " + " ".join(f"{m:.4f}" for m in s["mean"]) +
                         "   std " + " ".join(f"{v:.4f}" for v in s["std"]))
        z = s["sizes"]
        if z.get("distinct"):
            common = ", ".join(f"{k} ({n})" for k, n in z["most_common"].items())
            lines.append(f"  sizes: {z['distinct']} distinct, width {z['width'][0]}-{z['width'][1]}, "
                         f"height {z['height'][0]}-{z['height'][1]}; most common: {common}")
        lines.append("  modes: " + ", ".join(f"{m} {n}" for m, n in s["modes"].items()))
    bad, why = r["unreadable"], r.get("unreadable_reasons", {})
    lines.append(f"unreadable: {len(bad)}")
    lines += [f"  {f}: {why.get(f, '?')}" for f in bad]
    return "\n".join(lines)


def stats(data, *, data_dir: str | None = None, download: bool = False, val_split: float = 0.2,
          seed: int = 0, workers: int | None = None, allow_outside: bool = False) -> dict:
    """Statistics of a data spec (built-in name, folder, CSV, Dataset), as `tudui stats --json` prints them."""
    return dataset_stats(load_source(data, data_dir=data_dir, download=download, seed=seed, val_split=val_split,
                                     allow_outside=allow_outside),
                         workers=workers)
