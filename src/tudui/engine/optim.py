"""Optimizers, learning-rate schedules and losses, built from the flat config."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models.head import head_modules
from .muon import Muon

_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm,
               nn.InstanceNorm2d)


def param_groups(model: nn.Module, cfg) -> list:
    """Split trainable parameters into groups: backbone vs head (for --backbone-lr) and normalization
    biases (for --norm-bias-lr-scale). Every group carries its own base lr as 'lr'."""
    head_names = set(getattr(model, "tudui_head_params", ()))
    norm_bias = set()
    for mname, m in model.named_modules():
        if isinstance(m, _NORM_TYPES) and getattr(m, "bias", None) is not None:
            norm_bias.add(f"{mname}.bias" if mname else "bias")
    groups: dict = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = cfg.lr
        if cfg.backbone_lr is not None and head_names and name not in head_names:
            lr = cfg.backbone_lr
        wd = cfg.weight_decay
        key = "base"
        if name in norm_bias and cfg.norm_bias_lr_scale != 1.0:
            # a faster lr for the biases, but the same decay per step (torch multiplies weight decay by lr)
            lr, wd, key = lr * cfg.norm_bias_lr_scale, wd / cfg.norm_bias_lr_scale, "norm_bias"
        if cfg.backbone_lr is not None and head_names and name not in head_names:
            key = "backbone_" + key
        groups.setdefault(key, {"params": [], "lr": lr, "weight_decay": wd, "name": key})["params"].append(p)
    if not groups:
        raise ConfigError("the model has no trainable parameters (is everything frozen?)")
    return list(groups.values())


def muon_groups(model: nn.Module, groups: list, cfg) -> list:
    """Move the matrix-shaped weights (conv filters, linear layers) out of `groups` into one Muon group; the
    head (the model's `tudui_head_params`, else its last Linear), biases and norm parameters keep SGD."""
    head = set(getattr(model, "tudui_head_params", ()))
    if not head:  # no marked head: the last linear layer is the classifier (Muon is meant for hidden layers)
        head = {f"{h}.weight" for h in head_modules(model)}
    matrices = {id(p) for name, p in model.named_parameters() if p.requires_grad and p.ndim >= 2 and name not in head}
    out = []
    for g in groups:
        rest = [p for p in g["params"] if id(p) not in matrices]
        if rest:
            out.append({**g, "params": rest, "muon": False})
    moved = [p for p in model.parameters() if id(p) in matrices]
    if moved:
        out.insert(0, {"params": moved, "lr": cfg.muon_lr, "momentum": cfg.muon_momentum, "nesterov": True,
                       "weight_decay": cfg.weight_decay, "muon": True, "fixed_norm": cfg.muon_fixed_norm,
                       "name": "muon"})
    return out


def build_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.optimizer == "muon":
        return Muon(muon_groups(model, groups, cfg), momentum=cfg.momentum,
                    nesterov=cfg.nesterov and cfg.momentum > 0, muon=False)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ConfigError(f"unknown optimizer '{cfg.optimizer}'")


def lr_factor(step: int, steps_per_epoch: int, total_steps: int, cfg) -> float:
    """Multiplier of the base lr at optimizer step `step` (0-based): warmup then the schedule.
    Every schedule is a pure function of the step, so resuming needs only the step count."""
    warm = int(round(cfg.warmup_epochs * steps_per_epoch))
    if warm > 0 and step < warm:
        warm_f = (step + 1) / warm
    else:
        warm_f = 1.0
    kind = cfg.scheduler
    if kind == "none":
        f = 1.0
    elif kind == "step":
        epoch = step // max(1, steps_per_epoch)
        f = cfg.gamma ** (epoch // max(1, cfg.step_size))
    elif kind in ("cosine", "linear"):
        span = max(1, total_steps - warm)
        t = min(1.0, max(0, step - warm) / span)
        f = 0.5 * (1 + math.cos(math.pi * t)) if kind == "cosine" else 1.0 - t
    elif kind == "onecycle":
        # triangular: up from 1/10 of the peak over the first 25% (or the warmup), then down to zero
        up = warm if warm > 0 else max(1, int(0.25 * total_steps))
        if step < up:
            return 0.1 + 0.9 * step / up
        return max(0.0, (total_steps - step) / max(1, total_steps - up))
    else:
        raise ConfigError(f"unknown scheduler '{kind}'")
    return warm_f * f


def build_scheduler(optimizer, steps_per_epoch: int, total_steps: int, cfg):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, steps_per_epoch, total_steps, cfg))


def build_loss(cfg, num_classes: int, class_weights=None):
    """-> loss(logits, targets). L1 and MSE compare softmax outputs with one-hot targets, as the course does."""
    if cfg.loss == "cross_entropy":
        return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=cfg.label_smoothing)
    if cfg.loss in ("l1", "mse"):
        fn = F.l1_loss if cfg.loss == "l1" else F.mse_loss

        def regression_loss(logits, y):
            onehot = F.one_hot(y, num_classes).to(logits.dtype)
            diff = fn(logits.softmax(1), onehot, reduction="none").sum(1)
            if class_weights is not None:
                return (diff * class_weights[y]).sum() / class_weights[y].sum()
            return diff.mean()
        return regression_loss
    raise ConfigError(f"unknown loss '{cfg.loss}'")
