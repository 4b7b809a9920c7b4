"""What makes a run reproducible and resumable: seeding, every global RNG state, where the run stands
(Progress: epoch, step, position in the epoch, history, early stopping) and the training state a last.pt
carries. RunState owns the save and the restore of everything stateful in a run, named explicitly.

Everything is stored as tensors and plain values, so checkpoints still load with `weights_only=True`."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from .. import checkpoint as ckpt_io
from ..errors import CheckpointError, ConfigError, first_line
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


class EarlyStopping:
    """--monitor, --min-delta, --patience: the best value so far, epochs without improvement, whether to stop."""

    def __init__(self, monitor: str = "val_acc", min_delta: float = 0.0, patience: Optional[int] = None):
        self.monitor, self.min_delta, self.patience = monitor, min_delta, patience
        self.best, self.bad_epochs, self.stopped = None, 0, False
        self.best_epoch: Optional[int] = None  # the epoch of the best value (what best.pt holds)

    def improved(self, row: dict) -> bool:
        v = row[self.monitor]
        if self.best is None:
            return True
        if self.monitor == "val_acc":
            return v > self.best + self.min_delta
        return v < self.best - self.min_delta

    def update(self, row: dict, last: bool) -> bool:
        """Account an epoch's row -> whether it improved (not evaluated: no change). Sets `stopped`."""
        evaluated = row.get("val_acc") is not None
        improved = evaluated and self.improved(row)
        if improved:
            self.best, self.bad_epochs, self.best_epoch = row[self.monitor], 0, row.get("epoch")
        elif evaluated:
            self.bad_epochs += 1
        if self.patience is not None and self.bad_epochs >= self.patience and not last:
            self.stopped = True
        return improved

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs, "stopped_early": self.stopped,
                "best_epoch": self.best_epoch}

    def load_state_dict(self, ts: dict) -> None:
        self.best, self.bad_epochs = ts["best"], int(ts["bad_epochs"])
        self.best_epoch = ts.get("best_epoch")  # absent in checkpoints from before it was recorded


class Progress:
    """Where a run stands: epochs completed, optimizer steps taken, the position inside the current epoch
    (next batch index, running loss sum and count, lr at its start), the rows of metrics.jsonl so far and
    the early-stopping state."""

    def __init__(self, lr: float, early: EarlyStopping):
        self.epoch, self.step, self.history, self.early = 0, 0, [], early
        self.position = self.fresh_position(lr)

    @staticmethod
    def fresh_position(lr: float) -> dict:
        return {"batch": 0, "loss_sum": 0.0, "count": 0, "lr": lr}

    def state_dict(self) -> dict:
        return dict(self.early.state_dict(), position=dict(self.position), history=self.history)

    def load_state_dict(self, ts: dict, epoch: int, step: int) -> None:
        self.epoch, self.step = int(epoch), int(step)
        self.position = dict(ts["position"])
        self.history = list(ts["history"])
        self.early.load_state_dict(ts)


@dataclass
class RunState:
    """Everything stateful in a run, saved into and restored from a checkpoint (as tensors and plain values)."""
    model: Any
    optimizer: Any
    scheduler: Any
    scaler: Any
    progress: Progress
    ema: Any = None
    lookahead: Any = None

    def state_dict(self) -> tuple:
        """-> (train_state, extra): what `checkpoint.save` stores beside the weights."""
        state = dict(self.progress.state_dict(), optimizer=self.optimizer.state_dict(),
                     scheduler=self.scheduler.state_dict(), scaler=self.scaler.state_dict(), rng=rng_state())
        extra = None
        if self.ema is not None:
            state["ema"] = self.ema.counters()
            extra = {"ema_state_dict": self.ema.state_dict()}
        if self.lookahead is not None:
            state["lookahead_updates"] = self.lookahead.updates
            extra = dict(extra or {}, lookahead_state_dict=self.lookahead.state_dict())
        return state, extra

    def load_state_dict(self, ck: dict, cfg, steps_per_epoch: int, total_steps: int) -> Optional[str]:
        """Continue the run saved in `ck` (a loaded last.pt): weights, optimizer, scheduler, scaler, EMA,
        lookahead, progress and RNG states. -> the run folder it came from."""
        path = ck.get("path", "the checkpoint")
        ts = ck.get("train_state") or {}
        if "position" not in ts or "rng" not in ts:
            raise CheckpointError(f"{path} holds no resumable training state (use the last.pt of a tudui run)")
        epoch = int(ck["epoch"])
        if epoch >= cfg.epochs:
            raise ConfigError(f"{path} already finished all {epoch} epochs; pass a larger --epochs to extend the run")
        if ts.get("stopped_early") and cfg.patience == ck["config"].get("patience"):
            raise ConfigError(f"{path}: the run stopped early at epoch {epoch}; change --patience to continue it")
        try:
            self.model.load_state_dict(ckpt_io.clean_state_dict(ck["state_dict"]))
        except RuntimeError as e:
            raise CheckpointError(f"the weights in {path} do not fit the model: {first_line(e)}") from None
        self.optimizer.load_state_dict(ts["optimizer"])
        self.scheduler.load_state_dict(ts["scheduler"])
        self.progress.load_state_dict(ts, epoch, ck["step"])
        # the schedule is a pure function of the step: recompute it, so a larger --epochs reshapes what is left
        for g, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            g["lr"] = base * lr_factor(self.progress.step, steps_per_epoch, total_steps, cfg)
        if ts.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(ts["scaler"])
        if self.ema is not None:
            if ck.get("ema_state_dict") is not None:
                self.ema.load_state_dict(ck["ema_state_dict"], ts.get("ema"))
            else:
                self.ema.load_state_dict(self.model.state_dict())
        if self.lookahead is not None:
            self.lookahead.load_state_dict(ck.get("lookahead_state_dict") or self.model.state_dict(),
                                           ts.get("lookahead_updates", 0))
        set_rng_state(ts["rng"])
        return os.path.dirname(os.path.abspath(path)) if path != "the checkpoint" else None

    def load_rank_state(self, ck: dict, dist, seed: int) -> None:
        """After `load_state_dict` under torchrun: with as many processes as the checkpoint's job, each rank
        takes back its own loss sums and RNG states (an exact resume); with another number, rank 0 carries the
        epoch's loss sums so far and every other rank seeds its RNGs with `seed` (per rank) anew."""
        pos = self.progress.position
        sums = pos.pop("rank_sums", None)
        if sums is not None and len(sums) == dist.world:
            pos["loss_sum"], pos["count"] = float(sums[dist.rank][0]), int(sums[dist.rank][1])
        elif dist.rank > 0:
            pos["loss_sum"], pos["count"] = 0.0, 0
        ranks = ck["train_state"].get("rng_ranks")
        if ranks and len(ranks) == dist.world:
            set_rng_state(ranks[dist.rank])
        elif dist.rank > 0:
            seed_everything(seed)
