"""The training loop: the course's loss -> zero_grad -> backward -> step, per epoch, with evaluation,
logging and checkpoints. All state lives in the Trainer object (nothing global); under torchrun the same
loop runs in every process with DistributedDataParallel (see distributed.py).

Resume is exact: a checkpoint holds the model, optimizer, scheduler, grad scaler, EMA, the position inside
the epoch and every RNG state; data order and augmentation depend only on (seed, epoch, batch index)."""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Optional, Union

import torch
from torch import nn

from .. import checkpoint as ckpt_io
from ..config import TrainConfig
from ..device import resolve_device
from ..progress import progress_bar
from .ema import EMA, Lookahead
from .facts import run_facts
from .evaluate import evaluate_model
from .optim import build_loss, build_optimizer, build_scheduler
from .progressive import resize_batch, train_side
from . import distributed
from .runlog import NullLog, RunLog, make_run_dir, say, set_quiet
from .runtime import (LossSum, _cpu_bf16, amp_dtype, compile_model, data_init_sample,  # noqa: F401
                      use_channels_last)
from .signals import StopSignals, TrainingInterrupted
from .state import (first_line, load_resume, restore_rank_state, restore_training, rng_state,  # noqa: F401
                    seed_everything, training_state)

RANK_SEED = 1_000_003  # rank r > 0 of a torchrun job seeds its global RNGs (dropout) with seed + r * RANK_SEED


class PeerFailed(RuntimeError):
    """Another process of a torchrun job failed or stopped answering; this one stops too."""


@dataclass
class TrainResult:
    run_dir: str
    best_path: str
    last_path: str
    history: list = field(default_factory=list)
    classes: list = field(default_factory=list)
    stopped_early: bool = False
    rank: int = 0  # under torchrun: this process's rank (rank 0 wrote the run folder)
    best_epoch: Optional[int] = None  # the epoch best.pt holds (None: best.pt is a copy of last.pt)

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}

    @property
    def best(self) -> dict:
        """The history row of the epoch saved as best.pt (the final row when best.pt is a copy of last.pt)."""
        return next((r for r in self.history if r["epoch"] == self.best_epoch), self.final)


class Trainer:
    def __init__(self, cfg: TrainConfig, *, model: Optional[nn.Module] = None, data=None, classes=None,
                 val_data=None, progress: bool = True, resume: Union[str, dict, None] = None):
        from ..data import load_source
        from ..data.pipeline import prepare
        from .. import models

        # --pretrained / --weights: their resize and normalization unless the user set them
        cfg = self.cfg = models.apply_preset(cfg)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        # under torchrun: join the process group, this rank's GPU; rank 0 alone prints
        self.dist, self.device = distributed.setup(cfg, resolve_device(cfg.device))
        self.progress = progress and self.dist.main
        if self.dist.enabled:
            set_quiet(not self.dist.main)

        source = load_source(data if data is not None else cfg.data, data_dir=cfg.data_dir, download=cfg.download,
                             allow_outside=cfg.allow_outside, seed=cfg.seed, val_split=cfg.val_split, classes=classes, val_data=val_data)
        if data is not None and not isinstance(data, (str, os.PathLike)):
            cfg.data = ""  # a Python Dataset: nothing a later `tudui eval` could reload by name
        if model is None:
            source.channels = models.input_channels(cfg.model, source.channels)
        self.data = prepare(source, cfg, self.device)
        if self.dist.enabled:  # each rank takes its share of every (global) batch
            self.data.train.shard(self.dist.rank, self.dist.world)
            self.data.val.shard(self.dist.rank, self.dist.world)
        pre = self.data.pre
        self.classes = self.data.classes
        n_cls = len(self.classes)
        # what the checkpoint tells predict, report and serve besides the weights (see facts.py)
        self.facts = run_facts(cfg, self.classes, self.data.train, self.device)

        seed_everything(cfg.seed)  # model init independent of how much randomness data preparation used
        # by name or the user's module; weights (not when resuming), head marked, --freeze applied
        model, self.model_spec = models.build(cfg, n_cls, pre, model=model, load_weights=resume is None)
        self.model = model.to(self.device)
        if resume is None and hasattr(self.model, "init_from_data"):
            # data-dependent initialization (fastnet's patch whitening), once, before the EMA copies the model
            self.model.init_from_data(data_init_sample(self.data.train, seed=cfg.seed))
        if use_channels_last(cfg, self.model_spec, self.device):
            self.model = self.model.to(memory_format=torch.channels_last)
            for loader in (self.data.train, self.data.val):  # batches in the model's layout
                loader.channels_last = True
        if cfg.sync_bn:
            self.model = distributed.convert_sync_bn(self.model, self.dist)
        self.ema = EMA(self.model, cfg.ema, cfg.ema_every) if cfg.ema > 0 else None
        self.lookahead = Lookahead(self.model, cfg.lookahead, cfg.lookahead_every) if cfg.lookahead > 0 else None
        # what a training step calls: DDP around the model under torchrun (self.model stays the bare module that
        # is saved, evaluated and averaged), compiled with --compile
        self.net = distributed.wrap(self.model, self.dist, self.device)
        self._trainable = [p.requires_grad for p in self.model.parameters()]  # what self.net was built with
        self.forward = compile_model(self.net) if cfg.compile else self.net
        if self.dist.rank > 0:  # dropout masks differ between ranks; rank 0 draws what a single process draws
            seed_everything(cfg.seed + RANK_SEED * self.dist.rank)

        self.steps_per_epoch = math.ceil(len(self.data.train) / cfg.accumulate)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, self.steps_per_epoch, self.total_steps, cfg)
        self.amp_dtype = amp_dtype(cfg.amp, self.device)
        # loss scaling only for fp16 on CUDA; a disabled scaler passes every call straight through
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        weights = None
        if cfg.class_weights == "auto":
            counts = torch.tensor(self.data.train_counts, dtype=torch.float32).clamp(min=1)
            weights = (counts.sum() / (len(counts) * counts)).to(self.device)
        self.loss_fn = build_loss(cfg, n_cls, weights)
        self.eval_loss_fn = build_loss(cfg, n_cls, None)
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        # where the current epoch stands: next batch index, running loss sum and count, lr at its start
        self.position = {"batch": 0, "loss_sum": 0.0, "count": 0, "lr": self.optimizer.param_groups[0]["lr"]}
        self.best = None
        self.bad_epochs = 0
        self.stopped_early = False
        self.history: list = []
        self.run_dir: Optional[str] = None
        # on a GPU the running loss stays on the device: no host sync in a training step
        self.losses = LossSum(self.device, lazy=self.device.type == "cuda")
        self.signals = StopSignals(repeat_grace=3.0 if self.dist.enabled else 0.0, announce=self.dist.main)
        if resume is not None:
            self.load_state(load_resume(resume) if isinstance(resume, str) else resume)

    def _forward(self, x):
        if self.forward is not self.net:
            try:
                return self.forward(x)
            except Exception as e:  # compilation happens on the first calls; fall back to eager for good
                say(f"notice: torch.compile failed ({first_line(e)}); training without it")
                self.forward = self.net
        return self.net(x)

    def _rewrap(self) -> None:
        """Under torchrun, wrap the model in DDP anew when the set of trainable parameters changed (a model's
        set_epoch froze or thawed some): DDP expects a gradient for every parameter it was built with."""
        trainable = [p.requires_grad for p in self.model.parameters()]
        if self.dist.enabled and trainable != self._trainable:
            self.net = distributed.wrap(self.model, self.dist, self.device)
            self.forward = compile_model(self.net) if self.cfg.compile else self.net
        self._trainable = trainable

    # ---- one step, free of global state ----
    def compute_loss(self, x, y) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            logits = self._forward(x)
        return self.loss_fn(logits.float(), y)

    def optimizer_step(self, schedule: bool = True) -> None:
        if self.cfg.clip_grad:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if schedule:
            self.scheduler.step()
        self.step += 1
        if self.lookahead is not None:
            self.lookahead.update(self.model, self.step, self.total_steps)
        if self.ema is not None:
            self.ema.update(self.model)

    def train_step(self, x, y, batch_index: int) -> tuple:
        """-> (the loss, detached; whether an optimizer step was taken)."""
        cfg = self.cfg
        last_of_epoch = batch_index == len(self.data.train) - 1
        stepped = (batch_index + 1) % cfg.accumulate == 0 or last_of_epoch
        # accumulating under DDP: no gradient all-reduce until the batch that steps
        sync = contextlib.nullcontext() if stepped or not self.dist.enabled else self.net.no_sync()
        with sync:
            loss = self.compute_loss(x, y)
            self.losses.check_step(loss, self.epoch, self.step)
            scaled = loss / cfg.accumulate
            if self.dist.enabled:  # DDP averages over ranks: weigh this rank's mean by its share of the batch
                scaled = scaled * (len(y) * self.dist.world / self.data.train.global_batch_len(batch_index))
            self.scaler.scale(scaled).backward()
        if stepped:
            self.optimizer_step()
        return loss.detach(), stepped

    def train_epoch(self, log: RunLog, last_path: str) -> float:
        """Run the rest of the current epoch (from self.position); returns its mean training loss.
        Saves last.pt mid-epoch every --save-every steps, and before stopping on a signal."""
        self.model.train()
        if hasattr(self.model, "set_epoch"):  # e.g. fastnet stops training its whitening bias after N epochs
            self.model.set_epoch(self.epoch)
            self._rewrap()
        loader, pos = self.data.train, self.position
        if pos["batch"] == 0:
            pos.update(loss_sum=0.0, count=0, lr=self.optimizer.param_groups[0]["lr"])
        self.losses.start(pos["loss_sum"])
        bar = progress_bar(len(loader), f"epoch {self.epoch + 1}/{self.cfg.epochs}", self.progress,
                           initial=pos["batch"], leave=False, dynamic_ncols=True)
        side = train_side(self.epoch, self.cfg, self.data.pre["size"][0])  # --progressive-resize
        for b, (x, y) in enumerate(loader.iterate(self.epoch, start=pos["batch"]), pos["batch"]):
            if side:
                x = resize_batch(x, side)
            if self.epoch == 0 and b == 0:
                log.batch_grid(x)
            loss, stepped = self.train_step(x, y, b)
            self.losses.add(loss, len(y))
            pos["count"] += len(y)
            pos["batch"] = b + 1
            bar.update(1)
            if b % 10 == 0 and self.progress:
                bar.set_postfix(loss=f"{float(loss):.4f}")
            if not stepped:
                continue
            log.step_lr(self.step, self.optimizer.param_groups[0]["lr"])
            stop = self._stop_requested()
            if b + 1 < len(loader):  # the epoch's end writes last.pt anyway, after evaluation
                every = self.cfg.save_every
                if stop is not None or (every and self.step % every == 0):
                    self.save(last_path, self.history[-1] if self.history else {})
                if stop is not None:
                    bar.close()
                    raise self._interrupted(last_path)
        bar.close()
        pos["loss_sum"] = self.losses.total()
        if self.dist.enabled:  # the mean over every rank's images
            sums = self.dist.sum_(torch.tensor([pos["loss_sum"], pos["count"]], dtype=torch.float64,
                                               device=self.device))
            return float(sums[0]) / max(1, int(sums[1]))
        return pos["loss_sum"] / max(1, pos["count"])

    def evaluate(self, model: Optional[nn.Module] = None) -> dict:
        return evaluate_model(self.model if model is None else model, self.data.val, self.classes, self.eval_loss_fn,
                              tta=self.cfg.tta, amp_dtype=self.amp_dtype,
                              reduce=self.dist.sum_ if self.dist.enabled else None)

    def _improved(self, row) -> bool:
        key = self.cfg.monitor
        v = row[key]
        if self.best is None:
            return True
        if key == "val_acc":
            return v > self.best + self.cfg.min_delta
        return v < self.best - self.cfg.min_delta

    # ---- checkpoints and resume ----
    def save(self, path: str, row: dict) -> None:
        """Write a checkpoint. Under torchrun every rank calls this (it gathers each rank's loss sums and RNG
        states, so a resume with as many processes continues each exactly); rank 0 alone writes."""
        gathered = None
        if self.position["batch"]:  # mid-epoch: the running loss sum (and its finiteness check) from the device
            self.position["loss_sum"] = self.losses.total()
        if self.dist.enabled:
            gathered = self.dist.gather((self.position["loss_sum"], self.position["count"], rng_state()))
            if not self.dist.main:
                return
        state, extra = training_state(self)
        if gathered is not None:
            state["position"].update(loss_sum=sum(g[0] for g in gathered), count=sum(g[1] for g in gathered),
                                     rank_sums=[[g[0], g[1]] for g in gathered])
            state["rng_ranks"] = [g[2] for g in gathered]
        ckpt_io.save(path, model_state=self.model.state_dict(), model_spec=self.model_spec, classes=self.classes,
                     preprocess=self.data.pre, config=self.cfg.to_dict(), epoch=self.epoch, step=self.step,
                     metrics=row, data={"spec": str(self.cfg.data), "val_name": "val"}, train_state=state,
                     extra=dict(extra or {}, **self.facts))

    def load_state(self, ck: dict) -> None:
        """Continue the run saved in `ck` (a loaded last.pt); see state.restore_training. A checkpoint of a
        torchrun job resumes exactly with as many processes; with another number (the same global batch) each
        rank starts its own RNG anew and rank 0 carries the epoch's loss sums so far."""
        restore_training(self, ck)
        restore_rank_state(self, ck, RANK_SEED)

    # ---- stop signals ----
    @property
    def stop_signal(self) -> Optional[int]:
        """The first SIGINT/SIGTERM received during fit(), or None."""
        return self.signals.signum

    @stop_signal.setter
    def stop_signal(self, signum: Optional[int]) -> None:  # as if that signal had arrived
        self.signals.signum = signum

    def _stop_requested(self, force: bool = False) -> Optional[int]:
        """The stop signal every rank acts on, or None: under torchrun a signal to any process stops them all
        at the same step (the largest signal number received wins)."""
        if not self.dist.enabled:
            return self.stop_signal
        if self.losses.lazy and self.step % 20 and not force:  # on GPUs: every 20 steps, not a host sync every step
            return None
        agreed = self.dist.max_int(self.stop_signal or 0, self.device)
        if agreed and self.signals.signum is None:
            self.signals.signum = agreed
        return agreed or None

    def _interrupted(self, last_path: str) -> TrainingInterrupted:
        e = TrainingInterrupted(self.stop_signal, last_path, launcher=distributed.launcher_prefix(self.dist))
        b = self.position["batch"]
        where = f"in epoch {self.epoch + 1} after batch {b}/{len(self.data.train)}" if b else f"after epoch {self.epoch}"
        say(f"stopped {where} (step {self.step}); saved {last_path}")
        say(f"resume with: {e.command}")
        return e

    def fit(self) -> TrainResult:
        try:
            result = self._fit()
        except TrainingInterrupted:
            self.dist.close()
            raise
        except Exception as e:
            reason = distributed.peer_failure(e) if self.dist.enabled else None
            if reason:
                raise PeerFailed(f"rank {self.dist.rank} stopped: another process failed or stopped answering "
                                 f"({reason})") from None
            raise
        self.dist.close()
        return result

    def _fit(self) -> TrainResult:
        cfg = self.cfg
        resumed = self.run_dir is not None
        run_dir = self.run_dir or (make_run_dir(cfg.out, cfg.name) if self.dist.main else None)
        run_dir = self.run_dir = self.dist.broadcast(run_dir)  # one folder, named by rank 0
        cfg.name = os.path.basename(run_dir)  # the resolved config names the folder, for --resume
        if not self.dist.main:
            log = NullLog()
        else:
            log = RunLog(run_dir, append=resumed, purge_step=self.step + 1 if resumed else None)
        log.write_config(cfg.to_dict())
        log.start(cfg.epochs, resumed)
        if resumed:
            log.restore(self.history)  # metrics.jsonl holds exactly the epochs this checkpoint knows
        if self.data.source.holdout:
            log.write_json("split.json", self.data.source.holdout)
        for note in self.data.source.notes:
            say(note)
        say(f"data: {len(self.data.train.targets)} train / {len(self.data.val.targets)} val images, "
            f"{len(self.classes)} classes, {self.data.pre['channels']}x{self.data.pre['size'][0]}x"
            f"{self.data.pre['size'][1]}; loader: {self.data.loader_kind} ({self.data.loader_reason})")
        if self.dist.enabled:
            say(f"distributed: {self.dist.world} processes ({self.dist.backend}); global batch {cfg.batch_size} = "
                f"{self.dist.world} x {cfg.batch_size // self.dist.world} per process")
        last_path, best_path = os.path.join(run_dir, "last.pt"), os.path.join(run_dir, "best.pt")
        self.signals.install()  # from here on, a signal means "save and stop"
        try:
            n_params = sum(p.numel() for p in self.model.parameters())
            say(f"model: {self.model_spec['name']} ({n_params:,} parameters) on {self.device}")
            if resumed:
                say(f"resuming {run_dir} at epoch {self.epoch + 1}, batch {self.position['batch']}, step {self.step}")
            while self.epoch < cfg.epochs:
                t0 = time.perf_counter()
                train_loss = self.train_epoch(log, last_path)
                lr = self.position["lr"]
                self.epoch += 1
                self.position = {"batch": 0, "loss_sum": 0.0, "count": 0, "lr": self.optimizer.param_groups[0]["lr"]}
                last = self.epoch == cfg.epochs
                row = {"epoch": self.epoch, "train_loss": train_loss, "val_loss": None, "val_acc": None, "lr": lr,
                       "step": self.step}
                if self.epoch % cfg.eval_every == 0 or last:
                    ev = self.evaluate(self.ema.module if self.ema is not None else None)
                    row.update(val_loss=ev["loss"], val_acc=ev["accuracy"])
                    if self.ema is not None:  # the EMA weights are what gets used; report the raw ones too
                        raw = self.evaluate()
                        row.update(raw_val_loss=raw["loss"], raw_val_acc=raw["accuracy"])
                row["seconds"] = round(time.perf_counter() - t0, 3)
                self.history.append(row)
                log.epoch(row)
                evaluated = row["val_acc"] is not None
                improved = evaluated and self._improved(row)
                if improved:
                    self.best, self.bad_epochs = row[cfg.monitor], 0
                elif evaluated:
                    self.bad_epochs += 1
                if cfg.patience is not None and self.bad_epochs >= cfg.patience and not last:
                    self.stopped_early = True
                self.save(last_path, row)
                if improved:
                    self.save(best_path, row)
                va = f"{row['val_acc']:.4f}" if evaluated else "-"
                vl = f"{row['val_loss']:.4f}" if evaluated else "-"
                say(f"epoch {self.epoch}/{cfg.epochs}  train_loss {train_loss:.4f}  val_loss {vl}  "
                    f"val_acc {va}  lr {lr:.4g}  {row['seconds']:.1f}s")
                if self.stopped_early:
                    say(f"early stopping: {cfg.monitor} did not improve by more than {cfg.min_delta} "
                        f"for {cfg.patience} epochs")
                    break
                if self._stop_requested(force=True) is not None and not last:
                    raise self._interrupted(last_path)
            if self.dist.enabled and self.dist.main:  # rank 0's summary pages see every held-out image
                self.data.val.shard(0, 1)
            log.summarize(self)
        finally:
            log.end(self, sys.exc_info()[1])
            self.signals.restore()
            log.close()
        if self.dist.main and not os.path.exists(best_path) and os.path.exists(last_path):
            ckpt_io.atomic_copy(last_path, best_path)
        best_epoch = next((r["epoch"] for r in self.history
                           if r.get(cfg.monitor) is not None and r[cfg.monitor] == self.best), None)
        return TrainResult(run_dir=run_dir, best_path=best_path, last_path=last_path, history=self.history,
                           classes=self.classes, stopped_early=self.stopped_early, rank=self.dist.rank,
                           best_epoch=best_epoch)


def train(cfg: TrainConfig, **kwargs) -> TrainResult:
    return Trainer(cfg, **kwargs).fit()
