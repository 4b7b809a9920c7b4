"""The training loop: the course's loss -> zero_grad -> backward -> step, per epoch, with evaluation,
logging and checkpoints. All state lives in the Trainer object (nothing global); under torchrun the same
loop runs in every process with DistributedDataParallel (see distributed.py). What it trains with is built in
build.py; where it stands (and its save/restore) is state.py's Progress and RunState; the caller's extra work
comes in as callbacks (hooks.py).

Resume is exact: a checkpoint holds the model, optimizer, scheduler, grad scaler, EMA, the position inside
the epoch and every RNG state; data order and augmentation depend only on (seed, epoch, batch index)."""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import torch
from torch import nn

from .. import checkpoint as ckpt_io
from .. import models
from ..config import TrainConfig
from ..console import progress_bar, say, set_quiet
from ..device import resolve_device
from ..errors import first_line
from ..fileio import copy as copy_file
from . import distributed, hooks
from .build import build_data, build_network, build_optimization
from .evaluate import evaluate_model
from .facts import run_facts
from .progressive import resize_batch, train_side
from .runlog import NullLog, RunLog, make_run_dir
from .runtime import FreeCoreThreads, LossSum, compile_model
from .signals import StopSignals, TrainingInterrupted
from .state import EarlyStopping, Progress, RunState, load_resume, rng_state, seed_everything

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
    status: str = hooks.FINISHED  # finished, stopped_early or stopped (a callback asked: see stop_reason)
    stop_reason: Optional[str] = None
    best_epoch: Optional[int] = None  # the epoch best.pt holds (None: best.pt is a copy of last.pt)
    best = property(lambda self: next((r for r in self.history if r["epoch"] == self.best_epoch), self.final))

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


class Trainer:
    def __init__(self, cfg: TrainConfig, *, model: Optional[nn.Module] = None, data=None, classes=None,
                 val_data=None, progress: bool = True, resume: Union[str, dict, None] = None,
                 callbacks: Sequence[hooks.Callback] = ()):
        # --pretrained / --weights: their resize and normalization unless the user set them
        cfg = self.cfg = models.apply_preset(cfg)
        self.callbacks = list(callbacks)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        # under torchrun: join the process group, this rank's GPU; rank 0 alone prints
        self.dist, self.device = distributed.setup(cfg, resolve_device(cfg.device))
        self.callbacks += [FreeCoreThreads()] if FreeCoreThreads.applies(cfg, self.device, self.dist.enabled) else []
        if self.dist.enabled and not self.dist.main:  # a process group made without torchrun's variables too
            set_quiet(True)
        self.progress_bar = progress and self.dist.main
        self.data = build_data(cfg, self.dist, self.device, data=data, classes=classes, val_data=val_data,
                               own_model=model is not None)
        self.classes = self.data.classes
        self.facts = run_facts(cfg, self.classes, self.data.train, self.device)  # names, brightness, device
        seed_everything(cfg.seed)  # model init independent of how much randomness data preparation used
        nw = build_network(cfg, self.data, self.dist, self.device, model=model, fresh=resume is None)
        self.model, self.model_spec, self.net, self.forward = nw.model, nw.spec, nw.net, nw.forward
        self.ema, self.lookahead = nw.ema, nw.lookahead
        self._trainable = [p.requires_grad for p in self.model.parameters()]  # what self.net was built with
        if self.dist.rank > 0:  # dropout masks differ between ranks; rank 0 draws what a single process draws
            seed_everything(cfg.seed + RANK_SEED * self.dist.rank)
        opt = build_optimization(cfg, self.model, self.data, self.device)
        self.optimizer, self.scheduler, self.scaler = opt.optimizer, opt.scheduler, opt.scaler
        self.amp_dtype, self.loss_fn, self.eval_loss_fn = opt.amp_dtype, opt.loss_fn, opt.eval_loss_fn
        self.steps_per_epoch, self.total_steps = opt.steps_per_epoch, opt.total_steps
        self.early = EarlyStopping(cfg.monitor, cfg.min_delta, cfg.patience)
        self.progress = Progress(self.optimizer.param_groups[0]["lr"], self.early)
        self.state = RunState(self.model, self.optimizer, self.scheduler, self.scaler, self.progress, self.ema,
                              self.lookahead)
        self.run_dir: Optional[str] = None
        self.log = None  # the RunLog while fit() runs (log.tb: its TensorBoard writer or None)
        self.status: Optional[str] = None
        self.stop_reason: Optional[str] = None
        # on a GPU the running loss stays on the device: no host sync in a training step
        self.losses = LossSum(self.device, lazy=self.device.type == "cuda")
        self.signals = StopSignals(repeat_grace=3.0 if self.dist.enabled else 0.0, announce=self.dist.main)
        if resume is not None:
            self.load_state(load_resume(resume) if isinstance(resume, str) else resume)

    # where the run stands (read-only views of self.progress)
    epoch = property(lambda self: self.progress.epoch)
    step = property(lambda self: self.progress.step)
    position = property(lambda self: self.progress.position)
    history = property(lambda self: self.progress.history)
    stopped_early = property(lambda self: self.early.stopped)
    # the first SIGINT/SIGTERM received during fit(), or None; setting it acts as if that signal had arrived
    stop_signal = property(lambda self: self.signals.signum, lambda self, v: setattr(self.signals, "signum", v))

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
        self.progress.step += 1
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
        bar = progress_bar(len(loader), f"epoch {self.epoch + 1}/{self.cfg.epochs}", self.progress_bar,
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
            if b % 10 == 0 and self.progress_bar:
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
        state, extra = self.state.state_dict()
        if gathered is not None:
            state["position"].update(loss_sum=sum(g[0] for g in gathered), count=sum(g[1] for g in gathered),
                                     rank_sums=[[g[0], g[1]] for g in gathered])
            state["rng_ranks"] = [g[2] for g in gathered]
        ckpt_io.save(path, model_state=self.model.state_dict(), model_spec=self.model_spec, classes=self.classes,
                     preprocess=self.data.pre, config=self.cfg.to_dict(), epoch=self.epoch, step=self.step,
                     metrics=row, data={"spec": str(self.cfg.data), "val_name": "val"}, train_state=state,
                     extra=dict(extra or {}, **self.facts))

    def load_state(self, ck: dict) -> None:
        """Continue the run saved in `ck` (a loaded last.pt); see state.RunState. A checkpoint of a torchrun job
        resumes exactly with as many processes; with another number (the same global batch) each rank starts its
        own RNG anew and rank 0 carries the epoch's loss sums so far."""
        self.run_dir = self.state.load_state_dict(ck, self.cfg, self.steps_per_epoch, self.total_steps)
        self.state.load_rank_state(ck, self.dist, self.cfg.seed + RANK_SEED * self.dist.rank + self.step)

    # ---- stop signals ----
    def _stop_requested(self, force: bool = False) -> Optional[int]:
        """The stop signal every rank acts on (see StopSignals.agreed); on GPUs agreed every 20 steps only."""
        return self.signals.agreed(self.dist, self.device, force or not (self.losses.lazy and self.step % 20))

    def _interrupted(self, last_path: str) -> TrainingInterrupted:
        e = TrainingInterrupted(self.signals.signum, last_path, launcher=distributed.launcher_prefix(self.dist))
        b = self.position["batch"]
        where = f"in epoch {self.epoch + 1} after batch {b}/{len(self.data.train)}" if b else f"after epoch {self.epoch}"
        say(f"stopped {where} (step {self.step}); saved {last_path}")
        say(f"resume with: {e.command}")
        return e

    def fit(self) -> TrainResult:
        """Train to cfg.epochs (or an early stop, a callback's stop, a stop signal: TrainingInterrupted)."""
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

    def _open_log(self, resumed: bool):
        cfg = self.cfg
        run_dir = self.run_dir or (make_run_dir(cfg.out, cfg.name) if self.dist.main else None)
        run_dir = self.run_dir = self.dist.broadcast(run_dir)  # one folder, named by rank 0
        cfg.name = os.path.basename(run_dir)  # the resolved config names the folder, for --resume
        log = RunLog(run_dir, append=resumed, purge_step=self.step + 1 if resumed else None) \
            if self.dist.main else NullLog()
        log.write_config(cfg.to_dict())
        log.start(cfg.epochs, resumed)
        if resumed:
            log.restore(self.history)  # metrics.jsonl holds exactly the epochs this checkpoint knows
        if self.data.source.holdout:
            log.write_json("split.json", self.data.source.holdout)
        if self.data.decisions is not None:
            log.write_json("decisions.json", self.data.decisions)
        return log

    def _announce(self, resumed: bool) -> None:
        cfg, d = self.cfg, self.data
        for note in d.source.notes:
            say(note)
        say(f"data: {len(d.train.targets)} train / {len(d.val.targets)} val images, {len(self.classes)} classes, "
            f"{d.pre['channels']}x{d.pre['size'][0]}x{d.pre['size'][1]}; loader: {d.loader_kind} ({d.loader_reason})")
        if self.dist.enabled:
            say(f"distributed: {self.dist.world} processes ({self.dist.backend}); global batch {cfg.batch_size} = "
                f"{self.dist.world} x {cfg.batch_size // self.dist.world} per process")
        n_params = sum(p.numel() for p in self.model.parameters())
        say(f"model: {self.model_spec['name']} ({n_params:,} parameters) on {self.device}")
        if resumed:
            say(f"resuming {self.run_dir} at epoch {self.epoch + 1}, batch {self.position['batch']}, step {self.step}")

    def _end_epoch(self, train_loss: float, last_path: str, best_path: str) -> Optional[str]:
        """Evaluate, log, save last.pt (and best.pt, a copy, on an improvement), ask the callbacks
        -> a stop reason (early stopping or a callback's) or None."""
        cfg, prog = self.cfg, self.progress
        lr = prog.position["lr"]
        prog.epoch += 1
        prog.position = prog.fresh_position(self.optimizer.param_groups[0]["lr"])
        last = prog.epoch == cfg.epochs
        row = {"epoch": prog.epoch, "train_loss": train_loss, "val_loss": None, "val_acc": None, "lr": lr,
               "step": prog.step}
        if prog.epoch % cfg.eval_every == 0 or last:
            ev = self.evaluate(self.ema.module if self.ema is not None else None)
            row.update(val_loss=ev["loss"], val_acc=ev["accuracy"])
            if self.ema is not None:  # the EMA weights are what gets used; report the raw ones too
                raw = self.evaluate()
                row.update(raw_val_loss=raw["loss"], raw_val_acc=raw["accuracy"])
        row["seconds"] = round(time.perf_counter() - self._t0, 3)
        prog.history.append(row)
        self.log.epoch(row)
        improved = self.early.update(row, last)
        self.save(last_path, row)
        if improved and self.dist.main:  # the same bytes (and SHA-256): copied, not serialized and hashed again
            copy_file(last_path, best_path)
        evaluated = row["val_acc"] is not None
        va, vl = (f"{row['val_acc']:.4f}", f"{row['val_loss']:.4f}") if evaluated else ("-", "-")
        say(f"epoch {prog.epoch}/{cfg.epochs}  train_loss {train_loss:.4f}  val_loss {vl}  "
            f"val_acc {va}  lr {lr:.4g}  {row['seconds']:.1f}s")
        if self.early.stopped:
            say(f"early stopping: {cfg.monitor} did not improve by more than {cfg.min_delta} "
                f"for {cfg.patience} epochs")
            return hooks.STOPPED_EARLY
        reason = hooks.stop_reason(self.callbacks, self, row)
        if self.dist.enabled:  # a stop asked for in any process stops every process
            reason = reason or (hooks.STOPPED if self.dist.max_int(1 if reason else 0, self.device) else None)
        if reason is not None and not last:
            say(f"stopped after epoch {prog.epoch}: {reason}")
            return reason
        return None

    def _fit(self) -> TrainResult:
        cfg = self.cfg
        resumed = self.run_dir is not None
        log = self.log = self._open_log(resumed)
        run_dir = self.run_dir
        self._announce(resumed)
        last_path, best_path = os.path.join(run_dir, "last.pt"), os.path.join(run_dir, "best.pt")
        self.signals.install()  # from here on, a signal means "save and stop"
        status, error = hooks.FAILED, None
        try:
            for cb in self.callbacks:
                cb.on_fit_start(self)
            while self.epoch < cfg.epochs:
                self._t0 = time.perf_counter()
                train_loss = self.train_epoch(log, last_path)
                reason = self._end_epoch(train_loss, last_path, best_path)
                if reason is not None:
                    if reason != hooks.STOPPED_EARLY:
                        self.stop_reason = reason
                    break
                if self._stop_requested(force=True) is not None and self.epoch < cfg.epochs:
                    raise self._interrupted(last_path)
            status = hooks.STOPPED_EARLY if self.early.stopped else hooks.STOPPED if self.stop_reason else \
                hooks.FINISHED
            if self.dist.enabled and self.dist.main:  # rank 0's summary pages see every held-out image
                self.data.val.shard(0, 1)
        except KeyboardInterrupt as e:  # TrainingInterrupted is one
            status, error = hooks.INTERRUPTED, e
            raise
        except BaseException as e:
            error = e
            raise
        finally:
            self.status = status
            log.end(status, self.epoch, error, reason=self.stop_reason)
            self.signals.restore()
            self._fit_end(status)
            log.close()
        if self.dist.main and not os.path.exists(best_path) and os.path.exists(last_path):
            copy_file(last_path, best_path)
        return TrainResult(run_dir=run_dir, best_path=best_path, last_path=last_path, history=self.history,
                           classes=self.classes, stopped_early=self.early.stopped, rank=self.dist.rank,
                           status=status, stop_reason=self.stop_reason, best_epoch=self.early.best_epoch)

    def _fit_end(self, status: str) -> None:
        for cb in self.callbacks:
            try:
                cb.on_fit_end(self, status)
            except Exception as e:  # noqa: BLE001 - end-of-run extras never change how the run ended
                say(f"notice: {type(cb).__name__}.on_fit_end failed ({first_line(e)})")
