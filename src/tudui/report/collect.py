"""One pass of a model over an evaluation split, kept: logits, labels and a way back to every sample's image.

Every section of the report (metrics, confusion matrix, mistakes, calibration, Grad-CAM inputs) reads these
outputs; nothing runs the model over the whole split a second time. The model is any callable that maps a
normalized float batch (B, C, H, W) to logits (B, K): a torch module, or e.g. an ONNX session wrapped as one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Optional

import torch

from ..data.loader import _TransformDataset
from ..data.preprocess import normalize_batch
from ..engine.evaluate import prepare_evaluation, tta_logits
from ..engine.metrics import confusion_matrix, summary, topk_hits
from ..engine.optim import build_loss


def run_model(model: Callable, loader, tta: bool = False, amp_dtype=None) -> tuple:
    """-> (logits float32 (N, K) on the CPU, labels int64 (N,)), in the loader's (unshuffled) order: row i is
    sample i of loader.split. Batched on the loader's device, exactly as engine.evaluate runs it."""
    if hasattr(model, "eval"):
        model.eval()
    device = loader.device
    outs, labels = [], []
    with torch.inference_mode():
        for x, y in loader.iterate(0):
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = tta_logits(model, x) if tta else model(x)
            outs.append(torch.as_tensor(logits).float().cpu())
            labels.append(y.cpu())
    if not outs:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat(outs), torch.cat(labels)


@dataclass
class Collected:
    """The model's outputs on one split, and access to the samples behind them."""
    logits: torch.Tensor
    labels: torch.Tensor
    classes: list
    loader: object  # the BatchLoader the outputs came from (its split, preprocessing and device)
    split: str = "val"
    loss: Optional[float] = None
    seconds: float = 0.0
    skipped: list = field(default_factory=list)
    source: object = None  # the DataSource, when known (for the dataset summary)

    @cached_property  # every section reads these: softmax and argmax over the split once
    def probs(self) -> torch.Tensor:
        return self.logits.softmax(1)

    @cached_property
    def preds(self) -> torch.Tensor:
        return self.logits.argmax(1)

    def __len__(self) -> int:
        return len(self.labels)

    def confusion(self) -> torch.Tensor:
        return confusion_matrix(self.preds, self.labels, len(self.classes))

    def metrics(self) -> dict:
        """The figures `tudui eval` prints, from the kept outputs."""
        n = len(self)
        top5 = topk_hits(self.logits, self.labels) if len(self.classes) >= 5 and n else 0
        out = summary(self.confusion(), self.classes, n, int((self.preds == self.labels).sum()), top5, self.loss)
        out["split"] = self.split
        return out

    def describe(self, i: int) -> str:
        """The file behind sample i (or 'sample i')."""
        return self.loader.split.describe(int(i))

    def images(self, indices) -> torch.Tensor:
        """uint8 (n, C, H, W) of the samples, at the size the model saw them (before normalization)."""
        ld = self.loader
        idx = [int(i) for i in indices]
        if getattr(ld, "images", None) is not None:
            return ld.images[torch.tensor(idx, dtype=torch.long, device=ld.images.device)].cpu()
        pre = ld.pre
        return torch.stack([ld.split.decode(i, pre["channels"], tuple(pre["size"])) for i in idx])

    def inputs(self, indices) -> torch.Tensor:
        """The normalized float batch the model was given for these samples (on the loader's device)."""
        ld = self.loader
        if hasattr(ld, "tf"):  # the checkpoint's own eval transforms
            ds = _TransformDataset(ld.split, ld.tf, ld.channels)
            return torch.stack([ds[int(i)] for i in indices]).to(ld.device)
        return normalize_batch(self.images(indices).to(ld.device), ld.mean, ld.std)


def collect(checkpoint, data=None, split: Optional[str] = None, device: str = "cpu", tta: Optional[bool] = None,
            model=None, data_dir: Optional[str] = None, download: bool = False, *, verify: bool = True,
            unsafe_load: bool = False) -> tuple:
    """Load a checkpoint, prepare its evaluation split as `tudui eval` does, run the model once.
    -> (Classifier, resolved config, Collected)."""
    clf, cfg, prepared, use_tta = prepare_evaluation(checkpoint, data, split, device, tta, model, data_dir, download,
                                                     verify=verify, unsafe_load=unsafe_load)
    t0 = time.perf_counter()
    logits, labels = run_model(clf.model, prepared.val, tta=use_tta)
    seconds = time.perf_counter() - t0
    loss = None
    if len(labels):
        with torch.no_grad():
            loss = float(build_loss(cfg, len(clf.classes))(logits, labels))
    col = Collected(logits=logits, labels=labels, classes=list(clf.classes), loader=prepared.val,
                    split=split or "val", loss=loss, seconds=seconds, skipped=list(prepared.skipped), source=prepared.source)
    return clf, cfg, col
