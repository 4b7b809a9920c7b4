"""Evaluation: loss, top-1/top-5 accuracy and the confusion matrix over a loader, with optional TTA."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .metrics import confusion_matrix, per_class


def tta_logits(model, x: torch.Tensor, level: int = 2) -> torch.Tensor:
    """Average of the model's logits over views: level 1 = image + its mirror; level 2 adds the mirror pair
    translated by one pixel (up-left and down-right), as the fast CIFAR recipes do."""
    out = model(x)
    if level <= 0:
        return out
    out = 0.5 * (out + model(x.flip(-1)))
    if level == 1:
        return out
    pad = 1
    xp = F.pad(x, (pad,) * 4, mode="reflect")
    H, W = x.shape[-2:]
    shifted = 0.0
    for dy, dx in ((0, 0), (2, 2)):
        v = xp[..., dy:dy + H, dx:dx + W]
        shifted = shifted + model(v) + model(v.flip(-1))
    return 0.5 * out + 0.5 * (shifted / 4)


@torch.no_grad()
def evaluate_model(model, loader, classes: list, loss_fn=None, tta: bool = False, amp_dtype=None) -> dict:
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
            k = min(5, n_cls)
            top5 += int((logits.topk(k, 1).indices == y[:, None]).any(1).sum())
        cm += confusion_matrix(pred, y, n_cls)
        n += len(y)
    cm = cm.cpu()
    out = {"loss": total_loss / max(1, n) if loss_fn is not None else None,
           "accuracy": top1 / max(1, n), "num_samples": n, "classes": list(classes),
           "per_class": per_class(cm, classes), "confusion_matrix": cm.tolist()}
    if n_cls >= 5:
        out["top5"] = top5 / max(1, n)
    return out
