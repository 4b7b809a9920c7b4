"""The public Python API; every CLI command is a thin layer over one of these."""
from __future__ import annotations

import functools
from typing import Optional

from torch import nn

from .config import TrainConfig, from_checkpoint_dict, resolve
from .errors import DataError
from .predict import predict as _predict
from .report import report as _report
from .report.notebook import Evaluation, Predictions, ReportPage, TrainRun


def train(data=None, model=None, *, config: Optional[str] = None, classes=None, val_data=None,
          progress: bool = True, cfg: Optional[TrainConfig] = None, resume: Optional[str] = None, **options):
    """Train a classifier; returns a TrainResult (run_dir, best_path, last_path, history).

    data: a built-in name, a folder/CSV path, or a map-style Dataset of (image, label).
    model: a model name (str) or your own nn.Module. Any config key may be passed as a keyword.
    resume: a run's last.pt (or its folder) to continue exactly; keywords may then change only `epochs`
    and settings that do not alter the computation (device, workers, patience, ...).
    """
    from .config import resolve_resume
    from .engine.trainer import Trainer, load_resume

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
    ck = load_resume(resume) if resume is not None else None
    if cfg is None:
        cfg = resolve_resume(ck["config"], overrides, config) if ck else resolve(overrides, config_file=config)
    result = Trainer(cfg, model=user_model, data=data_obj, classes=classes, val_data=val_data, progress=progress,
                     resume=ck).fit()
    if cfg.report and result.rank == 0:  # under torchrun: rank 0 writes it
        result.report = write_run_report(result, model=user_model, data=data_obj, device=cfg.device)
    return TrainRun.of(result)  # a notebook shows it as curves and numbers


def write_run_report(result, model: Optional[nn.Module] = None, data=None, device: str = "cpu") -> Optional[str]:
    """`--report`: the HTML report of a finished run (its best.pt on its held-out split). A run trained on a
    Python Dataset passes that dataset again. -> the page's path."""
    from .engine.runlog import say
    from .report import report
    path = report(result.run_dir, data=data, model=model, device=device)
    say(f"report:     {path}")
    return path


def evaluate(checkpoint, data=None, split: Optional[str] = None, device: str = "cpu", tta: Optional[bool] = None,
             model: Optional[nn.Module] = None, data_dir: Optional[str] = None, download: bool = False, *,
             verify: bool = True, unsafe_load: bool = False) -> dict:
    """Loss, top-1 (and top-5) accuracy, per-class metrics and the confusion matrix of a checkpoint (or an
    exported .onnx / TorchScript file) on a split (by default the held-out split of the data it was trained on).
    verify / unsafe_load: see checkpoint.load."""
    from .engine.evaluate import evaluate_model
    from .engine.optim import build_loss

    clf, cfg, prepared, use_tta = prepare_evaluation(checkpoint, data, split, device, tta, model, data_dir, download,
                                                     verify=verify, unsafe_load=unsafe_load)
    result = evaluate_model(clf.model, prepared.val, clf.classes, build_loss(cfg, len(clf.classes)), tta=use_tta)
    result["split"] = split or "val"
    result["checkpoint"] = clf.meta.get("path")
    return Evaluation(result)  # a notebook shows it as metrics and the confusion matrix


@functools.wraps(_predict)
def predict(*args, **kwargs) -> list:
    return Predictions(_predict(*args, **kwargs))  # a notebook shows thumbnails with their top classes


@functools.wraps(_report)
def report(*args, **kwargs) -> str:
    return ReportPage(_report(*args, **kwargs))  # a notebook shows the page inline


def prepare_evaluation(checkpoint, data=None, split: Optional[str] = None, device: str = "cpu",
                       tta: Optional[bool] = None, model: Optional[nn.Module] = None, data_dir: Optional[str] = None,
                       download: bool = False, *, verify: bool = True, unsafe_load: bool = False) -> tuple:
    """What evaluate() and the report share: -> (Predictor: a checkpoint's Classifier or an exported file's, its
    config (label smoothing off), PreparedData with only the evaluation split, whether to use TTA)."""
    from .data import load_source
    from .data.pipeline import prepare
    from .infer import open_predictor

    clf = open_predictor(checkpoint, model=model, device=device,  # a checkpoint, an exported .onnx, a Predictor
                         verify=verify, unsafe_load=unsafe_load)
    cfg = from_checkpoint_dict(clf.meta.get("config", {}))
    cfg.device = str(clf.device)
    spec = data if data is not None else cfg.data
    if not spec:  # e.g. a checkpoint made by `tudui import` from a bare .pth
        raise DataError("the checkpoint records no data it can reload (imported, or trained on a Python Dataset); "
                        "pass the data to evaluate on with --data")
    source = load_source(spec, data_dir=data_dir or cfg.data_dir, download=download, seed=cfg.seed,
                         allow_outside=cfg.allow_outside,
                         val_split=cfg.val_split)
    if list(source.classes) != list(clf.classes):
        raise DataError(f"the data's classes {source.classes[:10]} differ from the checkpoint's {clf.classes[:10]}")
    source.channels = clf.preprocess["channels"]
    prepared = prepare(source, cfg, clf.device, pre=clf.preprocess, train=False, eval_split=split or "val")
    use_tta = cfg.tta if tta is None else tta
    cfg.label_smoothing = 0.0
    return clf, cfg, prepared, use_tta
