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
        H = x.shape[-2]
        if H <= SMALL_IMAGE:
            if s.pad > 0:
                x = random_translate(x, s.pad, g)
        else:
            x = random_resized_crop(x, s.rrc_scale, g)
        if s.flip:
            if s.alt_flip and indices is not None:
                x = alternating_flip(x, indices, epoch, self.flip_seed)
            else:
                x = random_flip(x, g)
        if s.cutout > 0:
            x = cutout(x, s.cutout, g)
        return x


def _rand(n, g, device):
    return torch.rand(n, generator=g, device=device)


def random_flip(x, g):
    mask = _rand(x.shape[0], g, x.device) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def alternating_flip(x, indices, epoch, flip_seed):
    """Each image gets a fixed random first flip, then flips every other epoch: over any two epochs
    it is seen once each way (airbench's alternating flip), instead of by a coin per epoch."""
    idx = indices.to(x.device).long()
    first = ((idx * 2_654_435_761 + flip_seed * 97) >> 7) & 1  # cheap fixed pseudo-random bit per image
    mask = (first + epoch) % 2 == 1
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def random_translate(x, pad, g):
    """Reflect-pad by `pad` and crop back at a random offset per image (RandomCrop(size, padding))."""
    B, C, H, W = x.shape
    xp = _reflect_pad(x, pad)
    dy = torch.randint(0, 2 * pad + 1, (B,), generator=g, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (B,), generator=g, device=x.device)
    rows = (dy.view(B, 1) + torch.arange(H, device=x.device).view(1, H))  # (B, H)
    cols = (dx.view(B, 1) + torch.arange(W, device=x.device).view(1, W))  # (B, W)
    out = xp.gather(2, rows.view(B, 1, H, 1).expand(B, C, H, xp.shape[-1]))
    out = out.gather(3, cols.view(B, 1, 1, W).expand(B, C, H, W))
    return out


def _reflect_pad(x, pad):
    # reflect padding by index arithmetic, which works for uint8 on every device
    H, W = x.shape[-2:]
    ri = _reflect_index(H, pad, x.device)
    ci = _reflect_index(W, pad, x.device)
    return x.index_select(2, ri).index_select(3, ci)


def _reflect_index(n, pad, device):
    i = torch.arange(-pad, n + pad, device=device).abs()
    return torch.where(i >= n, 2 * (n - 1) - i, i)


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
    from torchvision.transforms import v2

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
