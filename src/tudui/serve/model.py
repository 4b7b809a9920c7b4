"""The one place the server gets its model from.

The server needs only `.classes`, `.preprocess` (a dict with at least `channels`) and
`.predict_images(pil_images, topk) -> [[{'label', 'index', 'prob'}, ...], ...]`: the Predictor interface of
`tudui.infer`, the inference path that `predict`, `eval` and `report` share.
"""
from __future__ import annotations

from ..infer import open_predictor


def open_model(path: str, device: str = "cpu", *, verify: bool = True, unsafe_load: bool = False):
    """A checkpoint (or run folder), an exported .onnx or TorchScript file -> a Predictor. verify/unsafe_load:
    how a checkpoint is read (see tudui.checkpoint.load)."""
    return open_predictor(path, device=device, verify=verify, unsafe_load=unsafe_load)


def model_name(model) -> str:
    """A short description of the model for /health and the page (its architecture name when known)."""
    meta = getattr(model, "meta", None) or {}
    spec = meta.get("model") if isinstance(meta, dict) else None
    if isinstance(spec, dict) and spec.get("name"):
        return str(spec["name"])
    return type(getattr(model, "model", model)).__name__
