"""Evaluation: loss, top-1/top-5 accuracy and the confusion matrix over a loader, with optional TTA; the\nevaluation split of a saved model (prepare_evaluation: what `tudui eval` and the report share)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..data.pipeline import prepare
from ..infer import open_predictor
from ..infer.rundata import run_source
from .metrics import confusion_matrix, summary, topk_hits


def tta_views(x: torch.Tensor, level: int = 2) -> list:
    """[(weight, view)] whose weighted sum of logits is the TTA prediction. Level 0: the image; level 1: the
    image and its mirror, half each; level 2 (the fast CIFAR recipes' choice): that pair keeps half the weight
    and the pair shifted by one pixel up-left and the pair shifted down-right (reflect padding) share the other
    half, so small translations the training augmentation taught are averaged over."""
    if level <= 0:
        return [(1.0, x)]
    views = [(0.5, x), (0.5, x.flip(-1))]
    if level == 1:
        return views
    H, W = x.shape[-2:]
    xp = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [xp[..., d:d + H, d:d + W] for d in (0, 2)]  # content moves down-right, then up-left
    return [(w / 2, v) for w, v in views] + [(0.125, v) for s in shifted for v in (s, s.flip(-1))]


def tta_logits(model, x: torch.Tensor, level: int = 2) -> torch.Tensor:
    """The weighted average of the model's logits over `tta_views(x, level)`."""
    fmt = torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        else torch.contiguous_format  # keep the layout the model was set up for
    out = None
    for w, v in tta_views(x, level):
        y = model(v.contiguous(memory_format=fmt)) * w
        out = y if out is None else out + y
    return out


@torch.no_grad()
def evaluate_model(model, loader, classes: list, loss_fn=None, tta: bool = False, amp_dtype=None,
                   reduce=None) -> dict:
    """reduce: under data-parallel training, a function summing a tensor over every process in place (each
    process evaluates its own share of `loader`, so every held-out image counts exactly once)."""
    model.eval()
    n_cls = len(classes)
    device = loader.device
    total_loss, n, top1, top5 = 0.0, 0, 0, 0
    cm = torch.zeros(n_cls, n_cls, dtype=torch.long, device=device)
    for x, y in loader.iterate(0):
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = tta_logits(model, x) if tta else model(x)
        logits = logits.float()
        if loss_fn is not None:
            total_loss += float(loss_fn(logits, y)) * len(y)
        pred = logits.argmax(1)
        top1 += int((pred == y).sum())
        if n_cls >= 5:
            top5 += topk_hits(logits, y)
        cm += confusion_matrix(pred, y, n_cls)
        n += len(y)
    if reduce is not None:
        sums = torch.tensor([total_loss, n, top1, top5], dtype=torch.float64, device=device)
        reduce(sums)
        reduce(cm)
        total_loss, n, top1, top5 = float(sums[0]), int(sums[1]), int(sums[2]), int(sums[3])
    return summary(cm.cpu(), classes, n, top1, top5, total_loss / max(1, n) if loss_fn is not None else None)


def prepare_evaluation(checkpoint, data=None, split: Optional[str] = None, device: str = "cpu",
                       tta: Optional[bool] = None, model: Optional[nn.Module] = None, data_dir: Optional[str] = None,
                       download: bool = False, *, verify: bool = True, unsafe_load: bool = False,
                       decisions: Optional[dict] = None) -> tuple:
    """What evaluate() and the report share: -> (Predictor: a checkpoint's Classifier or an exported file's, its
    config (label smoothing off), PreparedData with only the evaluation split (its .decisions: what the run's
    and the given exclude / relabel / decisions files changed, or None), whether to use TTA)."""
    clf = open_predictor(checkpoint, model=model, device=device,  # a checkpoint, an exported .onnx, a Predictor
                         verify=verify, unsafe_load=unsafe_load)
    cfg, source = run_source(clf, data, data_dir=data_dir, download=download, decisions=decisions)
    prepared = prepare(source, cfg, clf.device, pre=clf.preprocess, train=False, eval_split=split or "val")
    prepared.decisions = source.decisions
    use_tta = cfg.tta if tta is None else tta
    cfg.label_smoothing = 0.0
    return clf, cfg, prepared, use_tta
