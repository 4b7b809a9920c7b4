"""`fastnet`: the small residual-free conv net of the fast CIFAR-10 recipes (David Page's "How to train your
ResNet" series; Keller Jordan's airbench, arXiv 2404.00498), written from their descriptions.

    whiten (k x k patch-whitening conv, frozen weights set from the training data, trainable bias) - act
    3 x [conv3x3 - maxpool2 - BN - act - conv3x3 - BN - act]
    global max pool - linear (no bias) - multiply by `scale`

BatchNorm scales are frozen at 1 (only the biases learn; the recipes give them a higher learning rate
through --norm-bias-lr-scale). Convolutions start as partial identities ("dirac") so the untrained net
passes its input through. The whitening weights come from `init_from_data`, which the Trainer calls once
before training with a sample of training images.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

ACTS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


def _widths(widths) -> tuple:
    if isinstance(widths, str):
        widths = [w for w in widths.replace("x", ",").split(",") if w.strip()]
    try:
        out = tuple(int(w) for w in widths)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or min(out) < 1:
        raise ConfigError(f"model argument widths must be three positive integers, e.g. 64,128,128; got {widths!r}")
    return out


def frozen_scale_bn(channels: int, momentum: float, eps: float) -> nn.BatchNorm2d:
    """BatchNorm whose scale stays 1: with a linear layer after it, a learned scale only duplicates that
    layer's weight norm, and freezing it makes the per-channel bias the only BN parameter to tune."""
    bn = nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    bn.weight.requires_grad_(False)
    return bn


class ConvBlock(nn.Module):
    def __init__(self, c_in, c_out, act, bn_momentum, bn_eps):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)  # pooling before BN/activation: they then run on a quarter of the pixels
        self.norm1 = frozen_scale_bn(c_out, bn_momentum, bn_eps)
        self.act1 = act()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = frozen_scale_bn(c_out, bn_momentum, bn_eps)
        self.act2 = act()

    def forward(self, x):
        x = self.act1(self.norm1(self.pool(self.conv1(x))))
        return self.act2(self.norm2(self.conv2(x)))


class FastNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, img_size=32, widths="64,128,128",
                 whiten: bool = True, whiten_kernel: int = 2, whiten_eps: float = 5e-4, whiten_samples: int = 5000,
                 act: str = "gelu", scale: float = 1 / 9, bn_momentum: float = 0.4, bn_eps: float = 1e-12,
                 dirac: bool = True, whiten_bias_epochs=None, block1_epochs=None):
        super().__init__()
        if act not in ACTS:
            raise ConfigError(f"model argument act must be one of {', '.join(ACTS)}, got '{act}'")
        w1, w2, w3 = _widths(widths)
        k = int(whiten_kernel)
        h = img_size if isinstance(img_size, int) else min(img_size)
        if h - k + 1 < 8:
            raise ConfigError(f"fastnet pools three times by 2 and needs images of at least {k + 7}x{k + 7}, "
                              f"got {img_size}")
        self.whiten_eps, self.whiten_samples = float(whiten_eps), int(whiten_samples)
        self.use_whiten = bool(whiten)
        # the whitening bias trains for the first N epochs only; frozen, no gradient reaches the stem, which
        # saves the first block's input gradient (about 9% of a step at 32 px)
        self.whiten_bias_epochs = _epochs_arg(whiten_bias_epochs)
        # the first block trains for the first N epochs only (FreezeOut, Brock et al. 2017): once it and the
        # stem are frozen, a step skips the first block's backward and the second block's input gradient,
        # about a third of a step at 32 px, at the point of the run where the lr is already falling
        self.block1_epochs = _epochs_arg(block1_epochs)
        # 2 * (patch dimension) channels: each whitened direction and its negative, so the activation keeps both signs
        self.whiten = nn.Conv2d(in_channels, 2 * in_channels * k * k, k, padding=0, bias=True)
        if self.use_whiten:
            self.whiten.weight.requires_grad_(False)  # fixed by init_from_data; only its bias trains
        a = ACTS[act]
        self.act0 = a()
        self.block1 = ConvBlock(self.whiten.out_channels, w1, a, bn_momentum, bn_eps)
        self.block2 = ConvBlock(w1, w2, a, bn_momentum, bn_eps)
        self.block3 = ConvBlock(w2, w3, a, bn_momentum, bn_eps)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(w3, num_classes, bias=False)
        self.scale = float(scale)  # small logits at the start: a softer first loss surface, like a temperature
        self.tudui_head_params = ("head.weight",)
        if dirac:
            for m in self.modules():
                if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
                    # identity on the first c_in output channels; the rest keep the default random init
                    n = min(m.in_channels, m.out_channels)
                    with torch.no_grad():
                        nn.init.dirac_(m.weight[:n])

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer before each epoch (0-based)."""
        if self.whiten_bias_epochs is not None:
            self.whiten.bias.requires_grad_(epoch < self.whiten_bias_epochs)
        if self.block1_epochs is not None:
            for name, p in self.block1.named_parameters():
                if not name.endswith("norm1.weight") and not name.endswith("norm2.weight"):  # BN scales stay frozen
                    p.requires_grad_(epoch < self.block1_epochs)

    def forward(self, x):
        x = self.act0(self.whiten(x))
        x = self.block3(self.block2(self.block1(x)))
        return self.head(self.pool(x).flatten(1)) * self.scale

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor) -> None:
        """Set the whitening conv from normalized training images (N, C, H, W): its filters become the
        eigenvectors of the covariance of the k x k patches, scaled by 1/sqrt(eigenvalue + eps), and their
        negatives, so each output channel is a decorrelated, unit-variance direction of the input patches."""
        if not self.use_whiten:
            return
        x = images[: self.whiten_samples].float()
        w = whitening_weights(x, self.whiten.kernel_size[0], self.whiten_eps)
        w = w.to(self.whiten.weight.device, self.whiten.weight.dtype)
        self.whiten.weight.copy_(torch.cat([w, -w]).view_as(self.whiten.weight))


def _epochs_arg(v):
    return None if v in (None, "", "none") else int(v)


def patches(x: torch.Tensor, k: int) -> torch.Tensor:
    """All k x k patches of a batch, flattened: (N * L, C * k * k), in the order Conv2d's weights use."""
    return F.unfold(x, k).transpose(1, 2).reshape(-1, x.shape[1] * k * k)


def whitening_weights(x: torch.Tensor, k: int, eps: float) -> torch.Tensor:
    """(C*k*k, C, k, k) filters W with W Cov W^T ~ I on the patches of x (PCA whitening: the eigenbasis,
    each axis scaled to unit variance). The covariance is summed over chunks of images in float64, so
    large images or many samples never hold all their patches at once."""
    d = x.shape[1] * k * k
    s, ss, n = torch.zeros(d, dtype=torch.float64), torch.zeros(d, d, dtype=torch.float64), 0
    for chunk in x.split(256):
        p = patches(chunk.double().cpu(), k)
        s += p.sum(0)
        ss += p.T @ p
        n += p.shape[0]
    mean = s / n
    cov = (ss - n * torch.outer(mean, mean)) / max(1, n - 1)
    evals, evecs = torch.linalg.eigh(cov)
    w = evecs.T / torch.sqrt(evals.clamp(min=0) + eps)[:, None]
    return w.flip(0).float().reshape(-1, x.shape[1], k, k)  # largest-variance directions first
