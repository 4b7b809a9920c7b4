"""What makes a run reproducible and resumable: seeding, every global RNG state, and the training state a
last.pt carries (optimizer, scheduler, scaler, EMA, lookahead, position in the epoch, early stopping, history).

Everything is stored as tensors and plain values, so checkpoints still load with `weights_only=True`."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from .. import checkpoint as ckpt_io
from ..errors import CheckpointError, ConfigError, first_line  # noqa: F401 (first_line: for trainer, runtime)
from .optim import lr_factor


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every global RNG as tensors and plain lists, so the checkpoint still loads with weights_only."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(internal), gauss],
            "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def load_resume(path: str, **load_options) -> dict:
    """The checkpoint to resume from: a file, or a run folder (its last.pt). Options: see checkpoint.load."""
    if os.path.isdir(path):
        path = os.path.join(path, "last.pt")
    return ckpt_io.load(path, **load_options)


def training_state(t) -> tuple:
    """-> (train_state, extra) of Trainer `t`: what `ckpt_io.save` stores beside the weights."""
    state = {"optimizer": t.optimizer.state_dict(), "scheduler": t.scheduler.state_dict(),
             "scaler": t.scaler.state_dict(), "position": dict(t.position), "best": t.best,
             "bad_epochs": t.bad_epochs, "stopped_early": t.stopped_early, "history": t.history,
             "rng": rng_state()}
    extra = None
    if t.ema is not None:
        state["ema"] = t.ema.counters()
        extra = {"ema_state_dict": t.ema.state_dict()}
    if t.lookahead is not None:
        state["lookahead_updates"] = t.lookahead.updates
        extra = dict(extra or {}, lookahead_state_dict=t.lookahead.state_dict())
    return state, extra


def restore_training(t, ck: dict) -> None:
    """Continue in Trainer `t` the run saved in `ck` (a loaded last.pt): weights, optimizer, scheduler, scaler,
    EMA, position in the epoch, early-stopping state, history and RNG states."""
    path = ck.get("path", "the checkpoint")
    ts = ck.get("train_state") or {}
    if "position" not in ts or "rng" not in ts:
        raise CheckpointError(f"{path} holds no resumable training state (use the last.pt of a tudui run)")
    epoch, cfg = int(ck["epoch"]), t.cfg
    if epoch >= cfg.epochs:
        raise ConfigError(f"{path} already finished all {epoch} epochs; pass a larger --epochs to extend the run")
    if ts.get("stopped_early") and cfg.patience == ck["config"].get("patience"):
        raise ConfigError(f"{path}: the run stopped early at epoch {epoch}; change --patience to continue it")
    try:
        t.model.load_state_dict(ckpt_io.clean_state_dict(ck["state_dict"]))
    except RuntimeError as e:
        raise CheckpointError(f"the weights in {path} do not fit the model: {first_line(e)}") from None
    t.optimizer.load_state_dict(ts["optimizer"])
    t.scheduler.load_state_dict(ts["scheduler"])
    t.epoch, t.step = epoch, int(ck["step"])
    # the schedule is a pure function of the step: recompute it, so a larger --epochs reshapes what is left
    for g, base in zip(t.optimizer.param_groups, t.scheduler.base_lrs):
        g["lr"] = base * lr_factor(t.step, t.steps_per_epoch, t.total_steps, cfg)
    if ts.get("scaler") and t.scaler.is_enabled():
        t.scaler.load_state_dict(ts["scaler"])
    if t.ema is not None:
        if ck.get("ema_state_dict") is not None:
            t.ema.load_state_dict(ck["ema_state_dict"], ts.get("ema"))
        else:
            t.ema.load_state_dict(t.model.state_dict())
    if t.lookahead is not None:
        t.lookahead.load_state_dict(ck.get("lookahead_state_dict") or t.model.state_dict(),
                                    ts.get("lookahead_updates", 0))
    t.position = dict(ts["position"])
    t.best, t.bad_epochs = ts["best"], int(ts["bad_epochs"])
    t.history = list(ts["history"])
    t.run_dir = os.path.dirname(os.path.abspath(path)) if path != "the checkpoint" else None
    set_rng_state(ts["rng"])


def restore_rank_state(t, ck: dict, rank_seed: int) -> None:
    """After `restore_training` under torchrun: with as many processes as the checkpoint's job, each rank takes
    back its own loss sums and RNG states (an exact resume); with another number, rank 0 carries the epoch's
    loss sums so far and every other rank seeds its RNGs anew."""
    d, pos = t.dist, t.position
    sums = pos.pop("rank_sums", None)
    if sums is not None and len(sums) == d.world:
        pos["loss_sum"], pos["count"] = float(sums[d.rank][0]), int(sums[d.rank][1])
    elif d.rank > 0:
        pos["loss_sum"], pos["count"] = 0.0, 0
    ranks = ck["train_state"].get("rng_ranks")
    if ranks and len(ranks) == d.world:
        set_rng_state(ranks[d.rank])
    elif d.rank > 0:
        seed_everything(t.cfg.seed + rank_seed * d.rank + t.step)


