"""open_predictor(path): a tudui checkpoint, an exported .onnx file or an exported TorchScript file; which
file is which."""
from __future__ import annotations

import os
import zipfile

from .checkpoint import load
from .predictor import Predictor
from .torchscript import TorchScriptPredictor


def is_onnx(path) -> bool:
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).lower().endswith(".onnx")

def is_torchscript(path) -> bool:
    """A TorchScript archive is a zip with code/ and constants.pkl; a tudui checkpoint is a zip with data.pkl only."""
    path = os.fspath(path)
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False

def open_predictor(source, device: str = "cpu", model=None, *, verify: bool = True,
                   unsafe_load: bool = False) -> Predictor:
    """A Predictor from a tudui checkpoint (file or run folder), an exported .onnx (run by onnxruntime) or an
    exported TorchScript file; a Predictor passes through. model: your nn.Module for a checkpoint of a model
    tudui cannot rebuild by itself. verify / unsafe_load apply to checkpoints (see checkpoint.load)."""
    if isinstance(source, Predictor):
        return source
    if is_onnx(source):
        from .onnx_model import OnnxPredictor  # optional dependency: onnxruntime (extra: export)
        return OnnxPredictor(os.fspath(source), device=device)
    if isinstance(source, (str, os.PathLike)) and is_torchscript(source):
        return TorchScriptPredictor(os.fspath(source), device=device)
    return load(source, model=model, device=device, verify=verify, unsafe_load=unsafe_load)
