"""open_predictor(path): a tudui checkpoint, an exported .onnx file, a torch.export .pt2 file or an exported
TorchScript file."""
from __future__ import annotations

import json
import os
import warnings
import zipfile

import torch

from ..errors import CheckpointError
from .predictor import Predictor

TORCHSCRIPT_META = "tudui.json"


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


class TorchScriptPredictor(Predictor):
    kind = "torchscript"

    def __init__(self, path: str, device: str = "cpu"):
        from ..device import resolve_device
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


def is_pt2(path) -> bool:
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).lower().endswith(".pt2")


class ProgramModule(torch.nn.Module):
    """An ExportedProgram's module behind a plain nn.Module: the program was captured in eval mode and refuses
    .eval()/.train(), which code written for PyTorch models calls (engine.evaluate, reports)."""

    def __init__(self, program):
        super().__init__()
        object.__setattr__(self, "program", program.module())  # not a child: .eval() must not reach it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


def load_pt2(path: str) -> tuple:
    """A .pt2 written by `tudui export --format pt2` -> (ProgramModule, metadata dict or None)."""
    extra = {TORCHSCRIPT_META: ""}
    program = torch.export.load(os.fspath(path), extra_files=extra)
    return ProgramModule(program), (json.loads(extra[TORCHSCRIPT_META]) if extra[TORCHSCRIPT_META] else None)


class ExportedProgramPredictor(Predictor):
    """A torch.export ExportedProgram (.pt2); it runs on the CPU, where it was exported."""
    kind = "pt2"

    def __init__(self, path: str):
        if not os.path.isfile(path):
            raise CheckpointError(f"model file not found: {path}")
        try:
            self.model, meta = load_pt2(path)
        except Exception as e:  # noqa: BLE001 - torch.export.load raises many kinds for a file it cannot read
            raise CheckpointError(f"{path} is not a loadable torch.export program ({str(e).strip()[:200]})") \
                from None
        if not meta:
            raise CheckpointError(f"{path} has no tudui metadata; export it with `tudui export CHECKPOINT "
                                  "--format pt2`")
        self.classes = list(meta["classes"])
        self.preprocess = dict(meta["preprocess"])
        meta["path"] = path
        meta.setdefault("config", {})
        self.meta = meta
        self.device = torch.device("cpu")


def open_predictor(source, device: str = "cpu", model=None, *, verify: bool = True,
                   unsafe_load: bool = False) -> Predictor:
    """A Predictor from a tudui checkpoint (file or run folder), an exported .onnx (run by onnxruntime), a .pt2
    (torch.export program, CPU) or an exported TorchScript file; a Predictor passes through. model: your nn.Module for a checkpoint of a model
    tudui cannot rebuild by itself. verify / unsafe_load apply to checkpoints (see checkpoint.load)."""
    if isinstance(source, Predictor):
        return source
    if is_onnx(source):
        from .onnx_model import OnnxPredictor
        return OnnxPredictor(os.fspath(source), device=device)
    if is_pt2(source):
        return ExportedProgramPredictor(os.fspath(source))
    if isinstance(source, (str, os.PathLike)) and is_torchscript(source):
        return TorchScriptPredictor(os.fspath(source), device=device)
    from ..classifier import load
    return load(source, model=model, device=device, verify=verify, unsafe_load=unsafe_load)
