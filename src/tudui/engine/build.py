"""Building what a run trains with, from its config: the data (loaders sharded under torchrun), the model
(weights, head, freezing, layout, EMA/lookahead, DDP, compile) and the optimization (optimizer, schedule,
grad scaler, losses). Each function returns plain objects; the Trainer holds them."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch

from .. import models
from ..data import load_source
from ..data.pipeline import prepare
from . import distributed
from .ema import EMA, Lookahead
from .optim import build_loss, build_optimizer, build_scheduler
from .runtime import amp_dtype, compile_model, data_init_sample, use_channels_last


def build_data(cfg, dist, device, *, data=None, classes=None, val_data=None, own_model: bool = False):
    """The run's PreparedData (train and val loaders, preprocessing, classes); each rank takes its share of every
    (global) batch under torchrun."""
    source = load_source(data if data is not None else cfg.data, data_dir=cfg.data_dir, download=cfg.download,
                         allow_outside=cfg.allow_outside, seed=cfg.seed, val_split=cfg.val_split, classes=classes,
                         val_data=val_data)
    if data is not None and not isinstance(data, (str, os.PathLike)):
        cfg.data = ""  # a Python Dataset: nothing a later `tudui eval` could reload by name
    if not own_model:
        source.channels = models.input_channels(cfg.model, source.channels)
    prepared = prepare(source, cfg, device)
    if dist.enabled:
        prepared.train.shard(dist.rank, dist.world)
        prepared.val.shard(dist.rank, dist.world)
    return prepared


@dataclass
class Network:
    model: torch.nn.Module  # the bare module: saved, evaluated and averaged
    spec: dict  # how to rebuild it (checkpoint's "model")
    net: torch.nn.Module  # what a training step calls: DDP around the model under torchrun
    forward: Any  # net, compiled with --compile
    ema: Optional[EMA] = None
    lookahead: Optional[Lookahead] = None


def build_network(cfg, prepared, dist, device, *, model=None, fresh: bool = True) -> Network:
    """By name or the user's module; weights (only for a fresh run, not a resume), head marked, --freeze,
    data-dependent init, channels_last, SyncBatchNorm, EMA, lookahead, DDP, torch.compile."""
    model, spec = models.build(cfg, len(prepared.classes), prepared.pre, model=model, load_weights=fresh)
    model = model.to(device)
    if fresh and hasattr(model, "init_from_data"):
        # data-dependent initialization (fastnet's patch whitening), once, before the EMA copies the model
        model.init_from_data(data_init_sample(prepared.train, seed=cfg.seed))
    if use_channels_last(cfg, spec, device):
        model = model.to(memory_format=torch.channels_last)
        for loader in (prepared.train, prepared.val):  # batches in the model's layout
            loader.channels_last = True
    if cfg.sync_bn:
        model = distributed.convert_sync_bn(model, dist)
    ema = EMA(model, cfg.ema, cfg.ema_every) if cfg.ema > 0 else None
    lookahead = Lookahead(model, cfg.lookahead, cfg.lookahead_every) if cfg.lookahead > 0 else None
    net = distributed.wrap(model, dist, device)
    return Network(model=model, spec=spec, net=net, forward=compile_model(net) if cfg.compile else net, ema=ema,
                   lookahead=lookahead)


@dataclass
class Optimization:
    optimizer: Any
    scheduler: Any
    scaler: Any
    amp_dtype: Optional[torch.dtype]
    loss_fn: Any
    eval_loss_fn: Any
    steps_per_epoch: int
    total_steps: int


def build_optimization(cfg, model, prepared, device) -> Optimization:
    """Optimizer and lr schedule over the run's steps, --amp dtype and grad scaler, the losses (--class-weights)."""
    steps_per_epoch = math.ceil(len(prepared.train) / cfg.accumulate)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = build_optimizer(model, cfg)
    dtype = amp_dtype(cfg.amp, device)
    weights = None
    if cfg.class_weights == "auto":
        counts = torch.tensor(prepared.train_counts, dtype=torch.float32).clamp(min=1)
        weights = (counts.sum() / (len(counts) * counts)).to(device)
    n_cls = len(prepared.classes)
    return Optimization(
        optimizer=optimizer, scheduler=build_scheduler(optimizer, steps_per_epoch, total_steps, cfg),
        # loss scaling only for fp16 on CUDA; a disabled scaler passes every call straight through
        scaler=torch.amp.GradScaler(device.type, enabled=dtype == torch.float16), amp_dtype=dtype,
        loss_fn=build_loss(cfg, n_cls, weights), eval_loss_fn=build_loss(cfg, n_cls, None),
        steps_per_epoch=steps_per_epoch, total_steps=total_steps)
