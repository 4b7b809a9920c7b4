"""One trial of a study: an ordinary tudui run (a run folder under the study folder) whose per-epoch validation
accuracy goes to the study's pruner, and whose value is the accuracy of its best.pt as `tudui eval` reports it."""
from __future__ import annotations

import os
import socket
import time

import optuna

from ..config import resolve
from ..console import say, set_quiet
from ..engine.evaluate import evaluate_model, prepare_evaluation
from ..engine.hooks import Callback
from ..engine.signals import TrainingInterrupted
from ..engine.trainer import Trainer
from ..errors import TuduiError
from .space import to_overrides


DIVERGED = "the loss became"  # how engine.runtime.nonfinite_loss starts its message


def worker_id() -> str:
    """host:pid of this process: what the study records as running a trial (see study.fail_dead_trials)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def trial_name(number: int) -> str:
    return f"trial-{number:04d}"


class PruneReporter(Callback):
    """Reports each evaluated epoch's validation accuracy to the trial and stops the run ("pruned") when the
    pruner says the trial is hopeless."""

    def __init__(self, trial):
        self.trial, self.pruned_at = trial, None

    def on_epoch_end(self, trainer, metrics):
        if metrics.get("val_acc") is None:
            return None
        self.trial.report(float(metrics["val_acc"]), int(metrics["epoch"]))
        if self.trial.should_prune():
            self.pruned_at = int(metrics["epoch"])
            return "pruned"
        return None


def checkpoint_accuracy(path: str, device: str) -> float:
    """Top-1 accuracy of a checkpoint on the held-out split of the data it was trained on: what `tudui eval
    CHECKPOINT --device DEVICE` reports (the same preparation and evaluation as api.evaluate)."""
    clf, cfg, prepared, use_tta = prepare_evaluation(path, device=device)
    return float(evaluate_model(clf.model, prepared.val, clf.classes, None, tta=use_tta)["accuracy"])


class Objective:
    """optuna objective: trial -> the accuracy of its best.pt. `base` are the fixed config overrides (flags or
    keywords), `space` {key: Param}; `config_file` the user's YAML file of options (or None)."""

    def __init__(self, base: dict, space: dict, study_dir: str, config_file=None, verbose: bool = False, tag=""):
        self.base, self.space, self.study_dir = dict(base), space, study_dir
        self.config_file, self.verbose, self.tag = config_file, verbose, tag
        self.stop_signal = None  # a SIGINT/SIGTERM that arrived as a trial was ending: no further trial

    def config(self, params: dict, name: str):
        over = dict(self.base)
        searched = to_overrides(params)
        if "model_args" in searched:
            searched["model_args"] = {**(over.get("model_args") or {}), **searched["model_args"]}
        over.update(searched, out=self.study_dir, name=name)
        return resolve(over, config_file=self.config_file)

    def __call__(self, trial) -> float:
        params = {k: p.suggest(trial) for k, p in self.space.items()}
        name = trial_name(trial.number)
        trial.set_user_attr("worker", worker_id())
        trial.set_user_attr("interrupted", False)  # a retried trial inherits its original's attributes
        trial.set_user_attr("run_dir", name)
        cfg = self.config(params, name)
        reporter = PruneReporter(trial)
        t0 = time.perf_counter()
        set_quiet(not self.verbose)
        try:
            trainer = Trainer(cfg, progress=self.verbose, callbacks=[reporter])
            result = trainer.fit()
        except TrainingInterrupted:
            set_quiet(False)
            trial.set_user_attr("interrupted", True)
            say(f"{self.tag}trial {trial.number}: interrupted; it runs again (same settings) when the study continues")
            raise
        except TuduiError as e:
            if not str(e).startswith(DIVERGED):  # a user's mistake (data, config, disk) stops the study
                raise
            set_quiet(False)  # a learning rate too high is an answer, not an error: this trial is pruned
            trial.set_user_attr("diverged", str(e))
            say(f"{self.tag}trial {trial.number}: diverged ({str(e).split(';')[0]}); "
                + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()))
            raise optuna.TrialPruned("diverged") from None
        finally:
            set_quiet(False)
        if trainer.stop_signal is not None:  # too late to stop this trial (its last epoch): it counts, and the
            self.stop_signal = trainer.stop_signal  # worker starts no other
            trial.study.stop()
        trial.set_user_attr("epochs", int(trainer.epoch))
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        if reporter.pruned_at is not None:
            say(f"{self.tag}trial {trial.number}: pruned at epoch {reporter.pruned_at} "
                f"(val acc {trainer.history[-1]['val_acc']:.4f}); {shown}")
            raise optuna.TrialPruned(f"epoch {reporter.pruned_at}")
        acc = checkpoint_accuracy(result.best_path, str(trainer.device))
        say(f"{self.tag}trial {trial.number}: val acc {acc:.4f} ({trainer.epoch} epochs, "
            f"{time.perf_counter() - t0:.1f}s); {shown}")
        return acc
