"""An exported .onnx file run by onnxruntime, behind the same interface as a checkpoint: the class names and
preprocessing come from the file's metadata_props (written by `tudui export`)."""
from __future__ import annotations

import importlib
import json
import os

import torch
from torch import nn

from ..errors import CheckpointError, TuduiError, first_line
from .predictor import Predictor

META_FORMAT = "tudui-export"


def require(module: str):
    """Import an optional dependency of the `export` extra, or say in one line how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise TuduiError(f"this needs the Python package '{module}': pip install 'tudui[export]'") from None


def session_options(threads: int | None = None):
    ort = require("onnxruntime")
    so = ort.SessionOptions()
    # follow torch's thread count, so `torch.set_num_threads` (and tudui's --threads) govern both runtimes
    so.intra_op_num_threads = int(threads or torch.get_num_threads())
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return so


def providers_for(device: str) -> list:
    ort = require("onnxruntime")
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def open_session(path: str, device: str = "cpu", threads: int | None = None):
    ort = require("onnxruntime")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"model file not found: {path}")
    try:
        return ort.InferenceSession(path, sess_options=session_options(threads), providers=providers_for(device))
    except Exception as e:  # onnxruntime raises its own exception types for an unreadable or invalid file
        raise CheckpointError(f"{path} is not a model onnxruntime can load ({first_line(e)})") from None


def decode_metadata(props: dict) -> dict:
    """metadata_props (all strings) -> values: the keys tudui writes hold JSON."""
    out = {}
    for k, v in props.items():
        try:
            out[k] = json.loads(v)
        except (TypeError, ValueError):
            out[k] = v
    return out


class OnnxModule(nn.Module):
    """An onnxruntime session as a module: forward(normalized float batch) -> logits tensor on the CPU, so code
    written for a PyTorch model (engine.evaluate, TTA, reports) runs an exported model unchanged."""
    def __init__(self, session):
        super().__init__()
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run([self.output_name], {self.input_name: arr})[0])


class OnnxPredictor(Predictor):
    kind = "onnx"

    def __init__(self, path: str, device: str = "cpu", threads: int | None = None):
        path = os.fspath(path)
        session = open_session(path, device, threads)
        meta = decode_metadata(session.get_modelmeta().custom_metadata_map)
        if meta.get("format") != META_FORMAT or "classes" not in meta or "preprocess" not in meta:
            raise CheckpointError(f"{path} has no tudui metadata (class names, preprocessing); "
                                  "export it with `tudui export CHECKPOINT`")
        self.model = OnnxModule(session)
        self.session = session
        self.classes = list(meta["classes"])
        self.preprocess = dict(meta["preprocess"])
        meta["path"] = path
        meta.setdefault("config", {})
        self.meta = meta
        self.device = torch.device("cpu")  # tensors go in and come out on the CPU; the session has its provider
