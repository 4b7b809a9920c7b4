"""The public Python API (the façade): every CLI command is a thin layer over one of these. It wires what the
layers below offer: the engine trains with the callbacks given here (TensorBoard summary pages, --report)."""
from __future__ import annotations

import functools
import os
from typing import Optional, Sequence

from torch import nn

from .audit import audit
from .config import TrainConfig, resolve, resolve_resume
from .engine.advice import next_steps
from .engine.evaluate import evaluate_model, prepare_evaluation
from .engine.hooks import Callback
from .engine.lr_find import lr_range_test
from .engine.optim import build_loss
from .engine.signals import TrainingInterrupted
from .engine.trainer import PeerFailed, Trainer, TrainResult, load_resume
from .export.engine import open_engine
from .infer import iter_predictions
from .infer import predict_to_file as _predict_to_file
from .infer.stream import check_paths, output_format
from .report import report as _report
from .report.notebook import Evaluation, Predictions, ReportPage, TrainRun
from .tune import tune  # the search (Optuna, an optional extra, is imported only when it runs)

# what the other commands run, here so that a CLI module calls this façade and nothing below it
from .audit import summary_text as audit_summary  # noqa: E402
from .board import board  # noqa: E402
from .data.stats import format_stats, stats  # noqa: E402
from .env import env_info  # noqa: E402
from .export import export  # noqa: E402
from .importer import import_pth  # noqa: E402
from .models import list_models  # noqa: E402
from .report.runs import (compare, compare_summary, config_diff, format_table, list_runs, read_config,  # noqa: E402
                          resolve_run)
from .serve import serve  # noqa: E402

__all__ = ["train", "evaluate", "audit", "predict", "predict_to_file", "report", "preview", "lr_find", "bench",
           "tune", "load_resume", "TrainResult", "TrainingInterrupted", "PeerFailed"]


def train(data=None, model=None, *, config: Optional[str] = None, classes=None, val_data=None,
          progress: bool = True, cfg: Optional[TrainConfig] = None, resume: Optional[str] = None,
          callbacks: Sequence[Callback] = (), verify: bool = True, unsafe_load: bool = False,
          **options) -> TrainResult:
    """Train a classifier; returns a TrainResult (run_dir, best_path, last_path, history, status).

    data: a built-in name, a folder/CSV path, or a map-style Dataset of (image, label).
    model: a model name (str) or your own nn.Module. Any config key may be passed as a keyword.
    resume: a run's last.pt (or its folder) to continue exactly; keywords may then change only `epochs`
    and settings that do not alter the computation (device, workers, patience, ...). verify / unsafe_load:
    how that checkpoint is read (see checkpoint.load).
    callbacks: tudui.engine.hooks.Callback objects (on_fit_start, on_epoch_end -> stop, on_fit_end).
    With report=True the HTML report is written when the run ends, also when it is interrupted
    (result.report: its path; an interrupted run raises TrainingInterrupted after writing it).
    """
    overrides = dict(options)
    user_model = None
    if isinstance(model, nn.Module):
        user_model = model
    elif model is not None:
        overrides["model"] = model
    data_obj = None
    if data is not None and isinstance(data, str):
        overrides["data"] = data
    elif data is not None:
        data_obj = data
    ck = load_resume(resume, verify=verify, unsafe_load=unsafe_load) if resume is not None else None
    if cfg is None:
        cfg = resolve_resume(ck["config"], overrides, config) if ck else resolve(overrides, config_file=config)
    from .report.summary import RunReport, TensorBoardSummary  # import-time cost: matplotlib, for `import tudui`
    hooks = [TensorBoardSummary(), *callbacks]
    run_report = RunReport(model=user_model, data=data_obj, device=cfg.device) if cfg.report else None
    if run_report is not None:
        hooks.append(run_report)
    result = Trainer(cfg, model=user_model, data=data_obj, classes=classes, val_data=val_data, progress=progress,
                     resume=ck, callbacks=hooks).fit()
    result.report = run_report.path if run_report is not None else None
    run = TrainRun.of(result)  # a notebook shows it as curves and numbers
    run.advice = next_steps(cfg, run.best.get("val_acc"))  # the closing lines' suggestion, if any
    return run


def evaluate(checkpoint, data=None, split: Optional[str] = None, device: str = "cpu", tta: Optional[bool] = None,
             model: Optional[nn.Module] = None, data_dir: Optional[str] = None, download: bool = False, *,
             verify: bool = True, unsafe_load: bool = False, exclude: Optional[str] = None,
             relabel: Optional[str] = None, decisions: Optional[str] = None) -> dict:
    """Loss, top-1 (and top-5) accuracy, per-class metrics and the confusion matrix of a checkpoint (or an
    exported .onnx / TorchScript file) on a split (by default the held-out split of the data it was trained on).
    On the run's own data, the images its run left out or relabelled (--exclude / --relabel / --decisions) are
    treated the same way; exclude / relabel / decisions: CSV files (as `tudui train` takes them) applied on top,
    e.g. an audit's leaks to see the accuracy without them. result['decisions'] says what changed (None:
    nothing). verify / unsafe_load: see checkpoint.load."""
    files = {"exclude": exclude, "relabel": relabel, "decisions": decisions}
    clf, cfg, prepared, use_tta = prepare_evaluation(checkpoint, data, split, device, tta, model, data_dir, download,
                                                     verify=verify, unsafe_load=unsafe_load, decisions=files)
    result = evaluate_model(clf.model, prepared.val, clf.classes, build_loss(cfg, len(clf.classes)), tta=use_tta)
    result["split"] = split or "val"
    result["checkpoint"] = clf.meta.get("path")
    result["decisions"] = _decision_counts(prepared.decisions, split or "val")
    return Evaluation(result)  # a notebook shows it as metrics and the confusion matrix


def _decision_counts(record: Optional[dict], split: str) -> Optional[dict]:
    """What the decisions changed in the evaluated split: {'dropped', 'relabelled', 'origin'} or None."""
    if not record:
        return None
    split = {"valid": "val", "validation": "val"}.get(split, split)
    return {"dropped": sum(d["split"] == split for d in record["dropped"]),
            "relabelled": sum(d["split"] == split for d in record["relabelled"]), "origin": record["origin"]}


def predict(checkpoint, paths, topk: int = 5, device: str = "cpu", batch_size: int = 64,
            workers: Optional[int] = None, *, verify: bool = True, unsafe_load: bool = False,
            engine: str = "torch", invert: bool = False) -> list:
    """-> [{'path', 'topk': [{'label', 'index', 'prob'}]}] in the order of the inputs. checkpoint: a tudui
    checkpoint or run folder, an exported .onnx, .pt2 or TorchScript file, or a loaded Classifier/Predictor. A
    file that cannot be read gives {'path', 'error': reason} in its place (reported once, never fatal for the
    others); a path that does not exist, or a folder without images, is an error. verify / unsafe_load: see
    checkpoint.load. engine='onnx': run a checkpoint through onnxruntime (exported and checked at start).
    A row gets a 'note' when its image is far outside the training images' brightness; invert classifies each
    image's negative (a digit drawn dark on light, for a model of light-on-dark digits). A notebook shows the
    list as thumbnails with their top classes."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    predictor = open_engine(checkpoint, engine, device=device, verify=verify, unsafe_load=unsafe_load)
    predictor.invert = bool(invert)
    return Predictions(iter_predictions(predictor, paths, topk=topk, batch_size=batch_size, workers=workers,
                                        on_error="row"))


@functools.wraps(_report)
def report(*args, **kwargs) -> str:
    return ReportPage(_report(*args, **kwargs))  # a notebook shows the page inline


def predict_to_file(model, paths, out: str, topk: int = 5, batch_size: int = 64, workers: Optional[int] = None,
                    device: str = "cpu", progress: bool = True, *, verify: bool = True, unsafe_load: bool = False,
                    engine: str = "torch", invert: bool = False) -> dict:
    """tudui.infer.predict_to_file (rows streamed to a .csv or .jsonl file as they are computed), with
    engine='onnx' and invert as in predict()."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    output_format(out)
    check_paths(paths)  # a mistyped folder fails before the model is exported
    if engine != "torch":
        model = open_engine(model, engine, device=device, verify=verify, unsafe_load=unsafe_load)
    return _predict_to_file(model, paths, out, topk=topk, batch_size=batch_size, workers=workers, device=device,
                            progress=progress, verify=verify, unsafe_load=unsafe_load, invert=invert)


def bench(checkpoint, formats=None, **options) -> dict:
    """Every format a checkpoint can run in, measured on this machine (tudui.bench.api.bench: latency at batch
    1, throughput, file size, top-1 on the run's validation split; options: threads, batch, latency_runs,
    seconds, calibration, val_limit, data, keep, verify, unsafe_load)."""
    from .bench import bench as _bench
    return _bench(checkpoint, formats, **options)


def lr_find(cfg: TrainConfig, plot: Optional[str] = None, **options) -> dict:
    """The learning-rate range test (engine.lr_find.lr_range_test; options: start_lr, end_lr, steps, progress,
    model, data) -> its result; with plot=PATH also the loss-against-lr PNG there (result["plot"])."""
    r = lr_range_test(cfg, **options)
    if plot:
        from .report.figures import lr_find as lr_find_figure, save_png  # import-time cost: matplotlib
        os.makedirs(os.path.dirname(os.path.abspath(plot)), exist_ok=True)
        r["plot"] = save_png(lr_find_figure(r["lrs"], r["losses"], r["suggested_lr"]), plot)
    return r


def preview(data=None, **options) -> str:
    """A grid of augmented training samples as a PNG (and in TensorBoard); see tudui.report.preview.preview."""
    from .report.preview import preview as _preview  # import-time cost: matplotlib
    return _preview(data, **options)
