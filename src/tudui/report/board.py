"""TensorBoard at the end of training: the confusion matrix and the most confident mistakes as images, the
run's hyperparameters with its final metrics (HPARAMS tab) and the model graph. Anything that fails here
only prints a notice: it never costs a finished training run."""
from __future__ import annotations

from ..engine.runlog import say
from ..errors import first_line


def hparams(cfg_dict: dict) -> dict:
    """The config keys TensorBoard's HPARAMS tab can show (numbers, strings, booleans; None as text)."""
    out = {}
    for k, v in cfg_dict.items():
        if isinstance(v, (bool, int, float, str)):
            out[k] = v
        elif v is None:
            out[k] = "None"
        else:
            out[k] = str(v)
    return out


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
        tb.add_hparams(hparams(trainer.cfg.to_dict()), metrics, run_name=".")
    except Exception as e:  # noqa: BLE001
        say(f"notice: no hparams in TensorBoard ({first_line(e)})")
    try:
        x, _ = next(iter(trainer.data.val.iterate(0)))
        model = trainer.model
        was = model.training
        model.eval()
        import warnings
        with warnings.catch_warnings():  # torch.jit.trace's deprecation notice
            warnings.simplefilter("ignore")
            tb.add_graph(model, x[:1])
        model.train(was)
    except Exception as e:  # noqa: BLE001 - models that do not trace still train
        say(f"notice: no model graph in TensorBoard ({first_line(e)})")
    tb.flush()


def _images(tb, trainer, top: int) -> None:
    from . import figures, grids
    from .cam import gradcam, why_no_cam
    from .collect import Collected, run_model
    from .fonts import label
    from .sections import mistakes
    model = trainer.ema.module if trainer.ema is not None else trainer.model
    was = model.training
    logits, labels = run_model(model, trainer.data.val, tta=trainer.cfg.tta, amp_dtype=trainer.amp_dtype)
    col = Collected(logits=logits, labels=labels, loader=trainer.data.val,
                    classes=list(trainer.facts.get("class_names") or trainer.classes))
    step = trainer.epoch
    fig, _ = figures.confusion(col.confusion().numpy(), col.classes, normalize=True)
    tb.add_image("report/confusion_matrix", grids.to_array(fig), step, dataformats="HWC")
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
        tb.add_image("report/mistakes", grids.to_array(fig), step, dataformats="HWC")
    model.train(was)
