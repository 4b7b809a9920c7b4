"""Progressive resizing (`--progressive-resize N`): early epochs train on batches downscaled to N px, the side
growing linearly to the full size by `--progressive-end` of the run; the rest, and evaluation, use full size.
A convolution's cost scales with the pixel count, so the early epochs, which learn coarse features anyway, cost
a fraction of a full-size epoch. Needs a model that accepts any input size (global pooling before the head)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def train_side(epoch: int, cfg, full: int) -> Optional[int]:
    """Side (px) to train epoch `epoch` (0-based) at, or None for the full size."""
    start = cfg.progressive_resize
    if not start or start >= full:
        return None
    ramp = cfg.progressive_end * cfg.epochs  # epochs before the full size is reached
    if epoch >= ramp:
        return None
    side = round(start + (full - start) * epoch / ramp)
    return side if side < full else None


def resize_batch(x: torch.Tensor, side: int) -> torch.Tensor:
    """Antialiased bilinear downscale of a normalized float batch to side x side, keeping its memory layout."""
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    out = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return out.contiguous(memory_format=fmt)
