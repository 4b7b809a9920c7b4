"""A torch.export program (.pt2, written by `tudui export --format pt2`, tudui's metadata inside) as a
Predictor. It runs on the CPU, where it was exported."""
from __future__ import annotations

import json
import os

import torch

from ..errors import CheckpointError
from .predictor import Predictor
from .torchscript import TORCHSCRIPT_META as META_FILE  # the same extra file name as TorchScript: one definition


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
    extra = {META_FILE: ""}
    program = torch.export.load(os.fspath(path), extra_files=extra)
    return ProgramModule(program), (json.loads(extra[META_FILE]) if extra[META_FILE] else None)


class ExportedProgramPredictor(Predictor):
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
