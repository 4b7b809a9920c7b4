"""Callbacks: what the caller adds to a training run without the engine knowing it (the TensorBoard summary
pages, the HTML report, hyperparameter search pruning...). The engine imports nothing above it; work that
belongs to a higher layer comes in as a Callback from the caller (tudui.api.train wires the standard ones).

    class Prune(Callback):
        def on_epoch_end(self, trainer, metrics):
            if metrics["val_acc"] is not None and metrics["val_acc"] < 0.2:
                return "pruned"                     # or: raise StopTraining("pruned")

    tudui.train("digits", epochs=20, callbacks=[Prune()])   # -> result.status == "stopped", stop_reason "pruned"

Every hook runs in every process of a torchrun job; a stop asked for by any process stops them all."""
from __future__ import annotations

from typing import Optional

# how fit() ended: the `status` given to on_fit_end, recorded in run.json and in TrainResult.status
FINISHED, STOPPED_EARLY, STOPPED, INTERRUPTED, FAILED = "finished", "stopped_early", "stopped", "interrupted", "failed"
COMPLETED = (FINISHED, STOPPED_EARLY, STOPPED)  # fit() returned a TrainResult


class StopTraining(Exception):
    """Raised by a callback's on_epoch_end (or returned as a string) to end fit() cleanly after this epoch:
    last.pt (and best.pt) are saved, run.json says "stopped" with this `reason`, fit() returns."""

    def __init__(self, reason: str = "stopped"):
        super().__init__(reason)
        self.reason = str(reason)


class Callback:
    """Override any of these; each default does nothing. `trainer` is the running engine.trainer.Trainer
    (cfg, model, data, classes, progress.epoch/.step/.history, early.best, run_dir, log.tb, ...)."""

    def on_fit_start(self, trainer) -> None:
        """The run folder exists (trainer.run_dir), logging is open; before the first (or resumed) epoch."""

    def on_epoch_end(self, trainer, metrics: dict) -> Optional[str]:
        """After each epoch, once last.pt (and best.pt on an improvement) are saved. metrics: the epoch's row of
        metrics.jsonl: epoch, train_loss, val_loss, val_acc (None when not evaluated this epoch), lr, step,
        seconds. Return a reason string (e.g. "pruned") or raise StopTraining(reason) to stop the run."""
        return None

    def on_fit_end(self, trainer, status: str) -> None:
        """Once, however fit() ends: status is finished, stopped_early, stopped, interrupted (a stop signal;
        last.pt saved) or failed. run.json is written before; TensorBoard is still open (trainer.log.tb).
        An exception here is reported as a notice and never changes how the run ended."""


def stop_reason(callbacks, trainer, metrics: dict) -> Optional[str]:
    """Run every callback's on_epoch_end -> the first stop reason asked for, or None (all callbacks run)."""
    reason = None
    for cb in callbacks:
        try:
            asked = cb.on_epoch_end(trainer, metrics)
        except StopTraining as e:
            asked = e.reason
        if asked and reason is None:
            reason = str(asked) if isinstance(asked, str) else STOPPED
    return reason
