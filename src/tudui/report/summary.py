"""End-of-training work, as engine callbacks that tudui.api.train passes to the Trainer:

- TensorBoardSummary: the confusion matrix and the most confident mistakes as images, the run's
  hyperparameters with its final metrics (HPARAMS tab) and the model graph (written through tudui.board);
- RunReport: `--report`, the HTML report of the run, also when it was interrupted or stopped (marked so).

Anything that fails here only prints a notice: it never costs a training run."""
from __future__ import annotations

import warnings
from typing import Optional

from .. import board
from ..console import say
from ..engine.hooks import COMPLETED, INTERRUPTED, Callback
from ..errors import first_line
from . import figures, grids
from .build import report
from .cam import gradcam, why_no_cam
from .collect import Collected, run_model
from .fonts import label
from .sections import mistakes


class TensorBoardSummary(Callback):
    """The end-of-training TensorBoard pages of a completed run (rank 0; nothing without an event writer)."""

    def on_fit_end(self, trainer, status: str) -> None:
        tb = getattr(trainer.log, "tb", None)
        if status in COMPLETED and tb is not None:
            write_summary(tb, trainer)


class RunReport(Callback):
    """--report: the HTML report of the run once it ends (finished, stopped early, stopped by a callback or
    interrupted; the page says which), on its best.pt (else last.pt). A run trained on a Python Dataset (or
    module) passes them again. `path`: the page written, or None."""

    def __init__(self, model=None, data=None, device: str = "cpu"):
        self.model, self.data, self.device = model, data, device
        self.path: Optional[str] = None

    def on_fit_end(self, trainer, status: str) -> None:
        if trainer.dist.main and (status in COMPLETED or status == INTERRUPTED):
            self.path = report(trainer.run_dir, data=self.data, model=self.model, device=self.device)
            say(f"report:     {self.path}")


def write_summary(tb, trainer, top: int = 16) -> None:
    try:
        _images(tb, trainer, top)
    except Exception as e:  # noqa: BLE001 - a picture must not fail the run
        say(f"notice: no end-of-training images in TensorBoard ({first_line(e)})")
    try:
        hist = [r for r in trainer.history if r.get("val_acc") is not None]
        metrics = {"hparam/best_val_acc": max((r["val_acc"] for r in hist), default=0.0),
                   "hparam/final_val_acc": hist[-1]["val_acc"] if hist else 0.0,
                   "hparam/final_val_loss": hist[-1]["val_loss"] if hist else 0.0,
                   "hparam/epochs_done": float(trainer.epoch)}
        tb.add_hparams(board.hparams(trainer.cfg.to_dict()), metrics, run_name=".")
    except Exception as e:  # noqa: BLE001
        say(f"notice: no hparams in TensorBoard ({first_line(e)})")
    try:
        x, _ = next(iter(trainer.data.val.iterate(0)))
        model = trainer.model
        was = model.training
        model.eval()
        with warnings.catch_warnings():  # torch.jit.trace's deprecation notice
            warnings.simplefilter("ignore")
            tb.add_graph(model, x[:1])
        model.train(was)
    except Exception as e:  # noqa: BLE001 - models that do not trace still train
        say(f"notice: no model graph in TensorBoard ({first_line(e)})")
    tb.flush()


def _images(tb, trainer, top: int) -> None:
    model = trainer.ema.module if trainer.ema is not None else trainer.model
    was = model.training
    logits, labels = run_model(model, trainer.data.val, tta=trainer.cfg.tta, amp_dtype=trainer.amp_dtype)
    col = Collected(logits=logits, labels=labels, loader=trainer.data.val,
                    classes=list(trainer.facts.get("class_names") or trainer.classes))
    step = trainer.epoch
    fig, _ = figures.confusion(col.confusion().numpy(), col.classes, normalize=True)
    board.rgb_image(tb, "report/confusion_matrix", grids.to_array(fig), step)
    rows = mistakes(col, top)
    if rows:
        idx = [r["index"] for r in rows]
        images = col.images(idx)
        cams = None
        if why_no_cam(model) is None:
            cams = list(gradcam(model, col.inputs(idx), [r["pred_index"] for r in rows]).numpy())
        caps = [f"{label(r['true'], r['true_index'])} → {label(r['pred'], r['pred_index'])} {r['prob']:.2f}"
                for r in rows]
        fig = grids.prediction_grid(images, caps, cams, title="most confident mistakes (true → predicted)")
        board.rgb_image(tb, "report/mistakes", grids.to_array(fig), step)
    model.train(was)
