"""Augmentation of whole uint8 batches (B, C, H, W) with tensor operations, on whatever device holds them.

Both loaders (in-memory and streaming) call the same `BatchAugment` with a generator seeded from
(seed, epoch, batch index), so the two paths produce the same images and a resumed run replays exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SMALL_IMAGE = 64  # up to this side: pad-and-crop (translate); above it: random resized crop


@dataclass
class AugmentSpec:
    preset: str = "basic"  # none | basic | strong
    pad: int = 4  # translate by up to `pad` pixels (pad-and-crop), for small images
    flip: bool = True
    alt_flip: bool = False  # flip every other epoch per image, instead of a coin per image per epoch
    cutout: int = 0
    rrc_scale: tuple = (0.35, 1.0)  # random resized crop area range, for large images

    @classmethod
    def from_config(cls, cfg, size, hflip: bool = True) -> "AugmentSpec":
        pad = max(1, round(size[0] / 8)) if size[0] <= SMALL_IMAGE else 0
        if getattr(cfg, "translate", None) is not None and size[0] <= SMALL_IMAGE:
            pad = int(cfg.translate)
        if cfg.augment == "none":
            return cls(preset="none", pad=0, flip=False, cutout=0)
        return cls(preset=cfg.augment, pad=pad, flip=hflip, alt_flip=cfg.alt_flip,
                   cutout=int(cfg.cutout) or (max(1, size[0] // 4) if cfg.augment == "strong" else 0))


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """A distinct, reproducible 63-bit seed for each (run seed, epoch, batch)."""
    return (int(seed) * 1_000_003 + int(epoch) * 10_007 + int(batch) * 7_919 + 0x5DEECE66D) % (2 ** 63)


class BatchAugment:
    def __init__(self, spec: AugmentSpec, flip_seed: int = 0):
        self.spec = spec
        self.flip_seed = flip_seed

    @property
    def active(self) -> bool:
        s = self.spec
        return s.preset != "none" and (s.pad > 0 or s.flip or s.cutout > 0 or s.preset == "strong")

    def __call__(self, x: torch.Tensor, g: torch.Generator, epoch: int = 0, indices: torch.Tensor | None = None):
        """x: uint8 (B, C, H, W). g: generator on x's device. indices: dataset indices (for alternating flips)."""
        s = self.spec
        if s.preset == "none":
            return x
        if s.preset == "strong":
            x = strong_per_sample(x, g)
        B, _, H, W = x.shape
        if H <= SMALL_IMAGE:
            # translate and flip fused into one gather (same random draws, same result as one after the other)
            rows, cols = _shift_indices(B, H, W, s.pad, g, x.device)
            if s.flip:
                cols = torch.where(self._flip_mask(x, g, epoch, indices).view(B, 1), cols.flip(1), cols)
            if s.pad > 0 or s.flip:
                x = gather_pixels(x, rows, cols)
        else:
            x = random_resized_crop(x, s.rrc_scale, g)
            if s.flip:
                x = _where_flip(x, self._flip_mask(x, g, epoch, indices))
        if s.cutout > 0:
            x = cutout(x, s.cutout, g)
        return x

    def _flip_mask(self, x, g, epoch, indices):
        if self.spec.alt_flip and indices is not None:
            return alternating_flip_mask(indices.to(x.device), epoch, self.flip_seed)
        return _rand(x.shape[0], g, x.device) < 0.5


def _rand(n, g, device):
    return torch.rand(n, generator=g, device=device)


def _where_flip(x, mask):
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def random_flip(x, g):
    """Mirror each image with probability 1/2."""
    return _where_flip(x, _rand(x.shape[0], g, x.device) < 0.5)


def alternating_flip_mask(indices, epoch, flip_seed):
    """Each image gets a fixed random first flip, then flips every other epoch: over any two epochs
    it is seen once each way (airbench's alternating flip), instead of by a coin per epoch."""
    idx = indices.long()
    first = ((idx * 2_654_435_761 + flip_seed * 97) >> 7) & 1  # cheap fixed pseudo-random bit per image
    return (first + epoch) % 2 == 1


def alternating_flip(x, indices, epoch, flip_seed):
    return _where_flip(x, alternating_flip_mask(indices.to(x.device), epoch, flip_seed))


def random_translate(x, pad, g):
    """Reflect-pad by `pad` and crop back at a random offset per image (RandomCrop(size, padding,
    padding_mode='reflect')), as one gather."""
    B, _, H, W = x.shape
    rows, cols = _shift_indices(B, H, W, pad, g, x.device)
    return gather_pixels(x, rows, cols)


def _shift_indices(B, H, W, pad, g, device):
    """Source row (B, H) and column (B, W) of every output pixel after a random shift by up to `pad`,
    reflecting at the borders. pad=0: the identity, and no random numbers are drawn."""
    rows = torch.arange(H, device=device).expand(B, H)
    cols = torch.arange(W, device=device).expand(B, W)
    if pad <= 0:
        return rows, cols
    dy = torch.randint(-pad, pad + 1, (B, 1), generator=g, device=device)
    dx = torch.randint(-pad, pad + 1, (B, 1), generator=g, device=device)
    return _reflect(rows + dy, H), _reflect(cols + dx, W)


def _reflect(i, n):
    """Mirror out-of-range indices back into [0, n) without repeating the edge (torch's 'reflect' padding),
    for shifts of any size."""
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i.remainder(period)
    return torch.where(i >= n, period - i, i)


def gather_pixels(x, rows, cols):
    """out[b, c, i, j] = x[b, c, rows[b, i], cols[b, j]], as one gather over the flattened pixels."""
    B, C, H, W = x.shape
    idx = (rows.unsqueeze(2) * W + cols.unsqueeze(1)).view(B, 1, -1).expand(B, C, -1)
    return x.reshape(B, C, H * W).gather(2, idx).view(B, C, rows.shape[1], cols.shape[1])


def random_resized_crop(x, scale, g, ratio=(3 / 4, 4 / 3)):
    """Per-image random area/aspect crop resized back to (H, W), as one batched grid_sample."""
    B, C, H, W = x.shape
    dev = x.device
    area = scale[0] + (scale[1] - scale[0]) * _rand(B, g, dev)
    logr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * _rand(B, g, dev)
    r = torch.exp(logr)
    sw = torch.sqrt(area * r).clamp(max=1.0)  # crop width as a fraction of W
    sh = torch.sqrt(area / r).clamp(max=1.0)
    cx = (1 - sw) * (2 * _rand(B, g, dev) - 1)  # centre in [-1+sw, 1-sw]
    cy = (1 - sh) * (2 * _rand(B, g, dev) - 1)
    theta = torch.zeros(B, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = sw, cx
    theta[:, 1, 1], theta[:, 1, 2] = sh, cy
    grid = F.affine_grid(theta, (B, C, H, W), align_corners=False)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.round().clamp(0, 255).to(x.dtype)


def cutout(x, size, g):
    """Zero a size x size square at a random centre per image (it may fall partly outside)."""
    B, C, H, W = x.shape
    cy = torch.randint(0, H, (B,), generator=g, device=x.device).view(B, 1, 1)
    cx = torch.randint(0, W, (B,), generator=g, device=x.device).view(B, 1, 1)
    ys = torch.arange(H, device=x.device).view(1, H, 1)
    xs = torch.arange(W, device=x.device).view(1, 1, W)
    half = size // 2
    m = ((ys - cy).abs() <= half - (1 - size % 2) * (ys < cy)) & ((xs - cx).abs() <= half - (1 - size % 2) * (xs < cx))
    return x.masked_fill(m.view(B, 1, H, W), 0)


def strong_per_sample(x, g):
    """TrivialAugmentWide per image (torchvision), seeded from the batch generator for reproducibility."""
    from torchvision.transforms import v2  # import-time cost: torchvision takes seconds to import

    seed = int(torch.randint(0, 2 ** 62, (1,), generator=g, device=x.device).item())
    dev = x.device
    xc = x.cpu()
    if xc.shape[1] == 1:
        xc3 = xc.expand(-1, 3, -1, -1)
    else:
        xc3 = xc
    ta = v2.TrivialAugmentWide()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = torch.stack([ta(img) for img in xc3])
    if xc.shape[1] == 1:
        out = out[:, :1]
    return out.to(dev)
