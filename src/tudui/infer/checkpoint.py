"""A trained classifier rebuilt from its checkpoint: model (eval mode), class names and preprocessing."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from .. import checkpoint as ckpt_io
from .. import models
from ..device import resolve_device
from ..errors import CheckpointError
from .predictor import Predictor


@dataclass
class Classifier(Predictor):
    """A checkpoint's model in eval mode; predict_images(), logits() and the rest come from Predictor."""
    model: nn.Module
    classes: list
    preprocess: dict
    meta: dict = field(default_factory=dict)
    device: torch.device = torch.device("cpu")


def rebuild_model(spec: dict, model: Optional[nn.Module] = None) -> nn.Module:
    if model is not None:
        return model
    try:
        return models.create(spec["name"], spec["num_classes"], in_channels=spec.get("in_channels", 3),
                             img_size=tuple(spec["img_size"]) if spec.get("img_size") else None,
                             **spec.get("args", {}))
    except Exception as e:
        if spec.get("user_module"):
            raise CheckpointError(f"cannot rebuild the checkpoint's model {spec['name']} ({e}); make it importable "
                                  "or pass the model: tudui.load(path, model=MyNet())") from None
        raise


def load(path: str, model: Optional[nn.Module] = None, device: str = "cpu", *, verify: bool = True,
         unsafe_load: bool = False) -> Classifier:
    """Load a tudui checkpoint (weights only, on any device) -> Classifier with .model in eval mode.
    verify / unsafe_load: as in tudui.checkpoint.load (SHA-256 check; unpickling code, only when trusted)."""
    ck = ckpt_io.load(path, verify=verify, unsafe_load=unsafe_load)
    net = rebuild_model(ck["model"], model)
    state = ck["state_dict"]
    if ck.get("ema_state_dict") is not None and ck["config"].get("ema", 0) > 0:
        state = ck["ema_state_dict"]
    try:
        net.load_state_dict(ckpt_io.clean_state_dict(state))
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(f"the weights in {path} do not fit the model {ck['model']['name']}: "
                              f"{' '.join(first[1:3]) if len(first) > 1 else first[0]}") from None
    dev = resolve_device(device)
    net = net.to(dev).eval()
    return Classifier(model=net, classes=list(ck["classes"]), preprocess=ck["preprocess"], meta=ck, device=dev)
