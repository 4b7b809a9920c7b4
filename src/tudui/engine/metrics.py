"""Classification metrics from a confusion matrix: accuracy, per-class precision/recall/F1/support."""
from __future__ import annotations

import torch


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    idx = targets.long() * num_classes + preds.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class(cm: torch.Tensor, classes: list) -> dict:
    cm = cm.double()
    tp = cm.diag()
    support = cm.sum(1)
    predicted = cm.sum(0)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp))
    return {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                "support": int(support[i])} for i, c in enumerate(classes)}


def summary(cm: torch.Tensor, classes: list, n: int, top1: int, top5: int, loss=None) -> dict:
    """The figures `tudui eval` prints (and the report shows), from counts: loss, accuracy, top-5 (5 classes or
    more), per-class P/R/F1, the confusion matrix. Both the streaming evaluation and the report's kept outputs
    build their result here."""
    out = {"loss": loss, "accuracy": top1 / max(1, n), "num_samples": n, "classes": list(classes),
           "per_class": per_class(cm, classes), "confusion_matrix": cm.tolist()}
    if len(classes) >= 5:
        out["top5"] = top5 / max(1, n)
    return out


def topk_hits(logits: torch.Tensor, labels: torch.Tensor, k: int = 5) -> int:
    """How many labels are among the k highest logits of their row."""
    k = min(k, logits.shape[1])
    return int((logits.topk(k, 1).indices == labels[:, None]).any(1).sum())
