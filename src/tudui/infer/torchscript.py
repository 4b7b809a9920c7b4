"""An exported TorchScript file (with tudui's metadata inside) as a Predictor."""
from __future__ import annotations

import json
import warnings

import torch

from ..device import resolve_device
from ..errors import CheckpointError
from .predictor import Predictor

TORCHSCRIPT_META = "tudui.json"


class TorchScriptPredictor(Predictor):
    kind = "torchscript"

    def __init__(self, path: str, device: str = "cpu"):
        extra = {TORCHSCRIPT_META: ""}
        dev = resolve_device(device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated in favour of torch.export
            try:
                self.model = torch.jit.load(path, map_location=dev, _extra_files=extra).eval()
            except Exception as e:
                raise CheckpointError(f"{path} is not a loadable TorchScript file ({str(e).strip()[:200]})") from None
        if not extra[TORCHSCRIPT_META]:
            raise CheckpointError(f"{path} has no tudui metadata; export it with `tudui export CHECKPOINT "
                                  "--format torchscript`")
        meta = json.loads(extra[TORCHSCRIPT_META])
        self.classes = list(meta["classes"])
        self.preprocess = dict(meta["preprocess"])
        meta["path"] = path
        meta.setdefault("config", {})
        self.meta = meta
        self.device = dev
