"""The one batched inference interface: a model (a PyTorch module, or a wrapper running an exported file), its
class names and its preprocessing. `predict`, `eval`, `report` and `serve` all go through it."""
from __future__ import annotations

from typing import Optional

import torch
from PIL import Image, ImageOps

from ..data.brightness import note as brightness_note
from ..data.images import pil_to_uint8, to_mode
from ..data.preprocess import build_transforms, normalize_batch, stats_tensors
from ..errors import ConfigError


class Predictor:
    """Subclasses set: model (callable on a normalized float batch (B, C, H, W) -> logits), classes,
    preprocess (the checkpoint's dict), meta (what the file records), device, kind ('torch', 'onnx', ...)."""

    kind = "torch"
    invert = False  # set True to classify the negative of every image (a digit drawn dark on light, say)

    @property
    def labels(self) -> list:
        """The names answers carry: the checkpoint's display names (--class-names), else the class names."""
        names = (getattr(self, "meta", None) or {}).get("class_names")
        return list(names) if names and len(names) == len(self.classes) else list(self.classes)

    def input_note(self, item) -> Optional[str]:
        """One line when a prepared image (or a PIL image) is far outside the training images' brightness,
        else None (always None for a model that recorded no statistics)."""
        stats = (getattr(self, "meta", None) or {}).get("input_stats")
        if stats and isinstance(item, Image.Image):
            pre = self.preprocess
            img = to_mode(item, pre["channels"])
            item = pil_to_uint8(ImageOps.invert(img) if self.invert else img, pre["channels"], tuple(pre["size"]))
        return brightness_note(stats, item)

    # ------------------------------------------------------------------ the model
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized float batch (B, C, H, W) -> logits (B, num_classes), float32 on the CPU."""
        with torch.no_grad():
            return self.model(x.to(self.device)).float().cpu()

    def predict_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized float batch (B, C, H, W) -> probabilities (B, num_classes)."""
        return self.logits(x).softmax(1)

    # ------------------------------------------------------------------ preprocessing, split for parallel decoding
    def prepare(self, img: Image.Image) -> torch.Tensor:
        """One decoded image -> what `batch()` stacks: uint8 (C, H, W) resized for the standard pipeline (the
        work worth doing in parallel), or the float tensor of the checkpoint's own transforms. Thread-safe."""
        pre = self.preprocess
        if self.invert:  # after the mode conversion, so transparency is flattened as usual first
            img = ImageOps.invert(to_mode(img, pre["channels"]))
        if pre.get("custom"):
            tf = self.__dict__.get("_tf")
            if tf is None:
                tf = self.__dict__["_tf"] = build_transforms(pre["eval_transforms"])
            out = tf(to_mode(img, pre["channels"]))
            if not isinstance(out, torch.Tensor):
                raise ConfigError("the eval transforms must end with ToTensor (or produce a tensor)")
            return out
        return pil_to_uint8(img, pre["channels"], tuple(pre["size"]))

    def batch(self, items: list) -> torch.Tensor:
        """`prepare()` results -> the normalized float batch the model takes."""
        x = torch.stack(items)
        if x.dtype == torch.uint8:
            mean, std = stats_tensors(self.preprocess, "cpu")
            x = normalize_batch(x, mean, std)
        return x

    # ------------------------------------------------------------------ answers
    def topk_rows(self, probs: torch.Tensor, topk: int = 5) -> list:
        k = max(1, min(int(topk), len(self.classes)))
        top = probs.topk(k, 1)
        labels = self.labels
        return [[{"label": labels[int(i)], "index": int(i), "prob": float(p)}
                 for p, i in zip(top.values[r], top.indices[r])] for r in range(len(probs))]

    def predict_images(self, images, topk: int = 5) -> list:
        """PIL images -> [[{'label', 'index', 'prob'}, ...], ...] (top-k per image, best first)."""
        return self.predict_prepared([self.prepare(im) for im in images], topk)

    def predict_prepared(self, items: list, topk: int = 5) -> list:
        if not items:
            return []
        return self.topk_rows(self.predict_tensor(self.batch(items)), topk)

    def describe(self) -> dict:
        return {"kind": self.kind, "classes": list(self.classes), "preprocess": self.preprocess,
                "path": self.meta.get("path")}


def input_shape(pre: dict, batch: Optional[int] = None) -> tuple:
    shape = (int(pre["channels"]), int(pre["size"][0]), int(pre["size"][1]))
    return shape if batch is None else (int(batch),) + shape
