"""How bright the training images are, kept in the checkpoint, and a one-line warning when an image to classify
is far outside that: a digit drawn black on white, given to a model trained on white-on-black digits, gets a
confident wrong answer and nothing else would say why.

Measured on the uint8 images the model sees (resized, before normalization): each image's mean brightness and
its border's mean brightness (the background, for centred subjects)."""
from __future__ import annotations

from typing import Optional

import torch

SAMPLE = 1024  # training images measured (evenly spaced through the split) when they are in memory
DECODED = 128  # ... when each must be decoded from its file
FAR = 0.25  # how far (0-1 brightness) outside the training range counts as "far outside"


def per_image(x: torch.Tensor) -> tuple:
    """uint8 (N, C, H, W) -> (mean brightness, border mean brightness), each (N,) in 0-1."""
    g = x.float().mean(1) / 255.0  # (N, H, W)
    h, w = g.shape[-2:]
    b = max(1, min(h, w) // 8)
    border = torch.cat([g[:, :b, :].flatten(1), g[:, -b:, :].flatten(1),
                        g[:, b:-b, :b].flatten(1), g[:, b:-b, -b:].flatten(1)], 1)
    return g.flatten(1).mean(1), border.mean(1)


def summarize(x: torch.Tensor) -> dict:
    """The statistics a checkpoint records, from a uint8 (N, C, H, W) sample of the training images."""
    mean, border = per_image(x)
    q = torch.tensor([0.01, 0.99])
    lo, hi = torch.quantile(mean, q).tolist()
    blo, bhi = torch.quantile(border, q).tolist()
    m, bm = float(mean.mean()), float(border.mean())
    polarity = "light on dark" if m - bm > 0.05 else "dark on light" if bm - m > 0.05 else None
    return {"images": int(len(mean)), "mean": m, "std": float(mean.std()) if len(mean) > 1 else 0.0,
            "low": lo, "high": hi, "border_mean": bm, "border_low": blo, "border_high": bhi, "polarity": polarity}


def training_stats(loader) -> Optional[dict]:
    """Statistics of an evenly spaced sample of a BatchLoader's split (None when it has no images)."""
    n = len(loader.split) if hasattr(loader, "split") else 0
    if not n:
        return None
    images = getattr(loader, "images", None)
    idx = torch.linspace(0, n - 1, min(n, SAMPLE if images is not None else DECODED)).round().long().unique()
    if images is not None:
        x = images[idx.to(images.device)].cpu()
    else:
        pre = loader.pre
        x = torch.stack([loader.split.decode(int(i), pre["channels"], tuple(pre["size"])) for i in idx])
    return summarize(x)


def note(stats: Optional[dict], x: torch.Tensor) -> Optional[str]:
    """One line when a uint8 (C, H, W) image is far outside the training images' brightness, else None."""
    if not stats or not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 3:
        return None
    mean, border = (float(v[0]) for v in per_image(x[None]))
    polarity = stats.get("polarity")
    flipped = polarity is not None and (
        (polarity == "light on dark" and border > stats["border_high"] + FAR and border > mean)
        or (polarity == "dark on light" and border < stats["border_low"] - FAR and border < mean))
    if mean > stats["high"] + FAR or (flipped and mean > stats["mean"]):
        how = "brighter"
    elif mean < stats["low"] - FAR or (flipped and mean < stats["mean"]):
        how = "darker"
    else:
        return None
    line = f"this image is much {how} than the training images"
    if polarity:
        line += f"; the training images are {polarity}" + (" (try --invert)" if flipped else "")
    return line
