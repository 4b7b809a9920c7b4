"""The training loop: the course's loss -> zero_grad -> backward -> step, per epoch, with evaluation,
logging and checkpoints. All state lives in the Trainer object (nothing global), so the same step can
later run under DDP."""
from __future__ import annotations

import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from torch import nn

from .. import checkpoint as ckpt_io
from ..config import TrainConfig, dump_yaml
from ..device import resolve_device
from ..errors import TuduiError
from .evaluate import evaluate_model
from .optim import build_loss, build_optimizer, build_scheduler
from .runlog import RunLog, make_run_dir, say


@dataclass
class TrainResult:
    run_dir: str
    best_path: str
    last_path: str
    history: list = field(default_factory=list)
    classes: list = field(default_factory=list)
    stopped_early: bool = False

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, cfg: TrainConfig, *, model: Optional[nn.Module] = None, data=None, classes=None,
                 val_data=None, progress: bool = True):
        from ..data import load_source
        from ..data.pipeline import prepare
        from .. import models

        self.cfg = cfg
        self.progress = progress
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.device = resolve_device(cfg.device)

        source = load_source(data if data is not None else cfg.data, data_dir=cfg.data_dir, download=cfg.download,
                             seed=cfg.seed, val_split=cfg.val_split, classes=classes, val_data=val_data)
        if model is None:
            source.channels = models.input_channels(cfg.model, source.channels)
        self.data = prepare(source, cfg, self.device)
        pre = self.data.pre
        self.classes = self.data.classes
        n_cls = len(self.classes)

        seed_everything(cfg.seed)  # model init independent of how much randomness data preparation used
        if model is None:
            self.model_spec = {"name": cfg.model, "args": dict(cfg.model_args), "num_classes": n_cls,
                               "in_channels": pre["channels"], "img_size": list(pre["size"])}
            model = models.create(cfg.model, n_cls, in_channels=pre["channels"], img_size=tuple(pre["size"]),
                                  **cfg.model_args)
        else:
            cls = type(model)
            self.model_spec = {"name": f"{cls.__module__}:{cls.__qualname__}", "args": dict(cfg.model_args),
                               "num_classes": n_cls, "in_channels": pre["channels"], "img_size": list(pre["size"]),
                               "user_module": True}
        self.model = model.to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

        self.steps_per_epoch = math.ceil(len(self.data.train) / cfg.accumulate)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, self.steps_per_epoch, self.total_steps, cfg)
        weights = None
        if cfg.class_weights == "auto":
            counts = torch.tensor(self.data.train_counts, dtype=torch.float32).clamp(min=1)
            weights = (counts.sum() / (len(counts) * counts)).to(self.device)
        self.loss_fn = build_loss(cfg, n_cls, weights)
        self.eval_loss_fn = build_loss(cfg, n_cls, None)
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.best = None
        self.history: list = []

    # ---- one step, free of global state ----
    def train_step(self, x, y, batch_index: int) -> float:
        cfg = self.cfg
        logits = self.model(x)
        loss = self.loss_fn(logits, y)
        if not torch.isfinite(loss):
            raise TuduiError(f"the loss became {float(loss)} at epoch {self.epoch + 1}, step {self.step + 1}; "
                             "lower --lr, or add --clip-grad; best.pt and the previous last.pt are intact")
        (loss / cfg.accumulate).backward()
        last_of_epoch = batch_index == len(self.data.train) - 1
        if (batch_index + 1) % cfg.accumulate == 0 or last_of_epoch:
            if cfg.clip_grad:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            self.step += 1
        return float(loss.detach())

    def train_epoch(self, log: RunLog) -> float:
        from tqdm import tqdm

        self.model.train()
        loader = self.data.train
        total, n = 0.0, 0
        bar = tqdm(total=len(loader), desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", file=sys.stderr,
                   leave=False, disable=not self.progress, dynamic_ncols=True)
        for b, (x, y) in enumerate(loader.iterate(self.epoch)):
            if self.epoch == 0 and b == 0:
                log.batch_grid(x)
            loss = self.train_step(x, y, b)
            total += loss * len(y)
            n += len(y)
            log.step_lr(self.step, self.optimizer.param_groups[0]["lr"])
            bar.update(1)
            if b % 10 == 0:
                bar.set_postfix(loss=f"{loss:.4f}")
        bar.close()
        return total / max(1, n)

    def evaluate(self) -> dict:
        return evaluate_model(self.model, self.data.val, self.classes, self.eval_loss_fn, tta=self.cfg.tta)

    def _improved(self, row) -> bool:
        key = self.cfg.monitor
        v = row[key]
        if self.best is None:
            return True
        if key == "val_acc":
            return v > self.best + self.cfg.min_delta
        return v < self.best - self.cfg.min_delta

    def save(self, path: str, row: dict) -> None:
        ckpt_io.save(path, model_state=self.model.state_dict(), model_spec=self.model_spec, classes=self.classes,
                     preprocess=self.data.pre, config=self.cfg.to_dict(), epoch=self.epoch, step=self.step,
                     metrics=row, data={"spec": str(self.cfg.data), "val_name": "val"},
                     train_state={"optimizer": self.optimizer.state_dict(),
                                  "scheduler": self.scheduler.state_dict(),
                                  "best": self.best, "history": self.history})

    def fit(self) -> TrainResult:
        cfg = self.cfg
        run_dir = make_run_dir(cfg.out, cfg.name)
        log = RunLog(run_dir)
        log.write_config(cfg.to_dict())
        if self.data.source.holdout:
            log.write_json("split.json", self.data.source.holdout)
        for note in self.data.source.notes:
            say(note)
        say(f"data: {len(self.data.train.targets)} train / {len(self.data.val.targets)} val images, "
            f"{len(self.classes)} classes, {self.data.pre['channels']}x{self.data.pre['size'][0]}x"
            f"{self.data.pre['size'][1]}; loader: {self.data.loader_kind} ({self.data.loader_reason})")
        n_params = sum(p.numel() for p in self.model.parameters())
        say(f"model: {self.model_spec['name']} ({n_params:,} parameters) on {self.device}")
        last_path, best_path = os.path.join(run_dir, "last.pt"), os.path.join(run_dir, "best.pt")
        bad_epochs, stopped = 0, False
        try:
            while self.epoch < cfg.epochs:
                t0 = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]
                train_loss = self.train_epoch(log)
                self.epoch += 1
                last = self.epoch == cfg.epochs
                if self.epoch % cfg.eval_every == 0 or last:
                    ev = self.evaluate()
                    val_loss, val_acc = ev["loss"], ev["accuracy"]
                else:
                    val_loss = val_acc = None
                row = {"epoch": self.epoch, "train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc,
                       "lr": lr, "step": self.step, "seconds": round(time.perf_counter() - t0, 3)}
                self.history.append(row)
                log.epoch(row)
                improved = val_acc is not None and self._improved(row)
                if improved:
                    self.best = row[cfg.monitor]
                self.save(last_path, row)
                if improved:
                    self.save(best_path, row)
                    bad_epochs = 0
                elif val_acc is not None:
                    bad_epochs += 1
                va = f"{val_acc:.4f}" if val_acc is not None else "-"
                vl = f"{val_loss:.4f}" if val_loss is not None else "-"
                say(f"epoch {self.epoch}/{cfg.epochs}  train_loss {train_loss:.4f}  val_loss {vl}  "
                    f"val_acc {va}  lr {lr:.4g}  {row['seconds']:.1f}s")
                if cfg.patience is not None and bad_epochs >= cfg.patience:
                    say(f"early stopping: {cfg.monitor} did not improve for {cfg.patience} epochs")
                    stopped = True
                    break
        finally:
            log.close()
        if not os.path.exists(best_path) and os.path.exists(last_path):
            import shutil
            shutil.copyfile(last_path, best_path)
        return TrainResult(run_dir=run_dir, best_path=best_path, last_path=last_path, history=self.history,
                           classes=self.classes, stopped_early=stopped)


def train(cfg: TrainConfig, **kwargs) -> TrainResult:
    return Trainer(cfg, **kwargs).fit()
