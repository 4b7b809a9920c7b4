"""PyTorch module -> TorchScript (torch.jit.trace) with tudui's metadata as an extra file (tudui.json).
Tracing records the operations run on an example batch; the check afterwards runs the saved file at other
batch sizes, so a model whose code fixes the batch size is caught."""
from __future__ import annotations

import json
import os
import warnings

import torch

from ..infer.torchscript import TORCHSCRIPT_META as META_FILE  # the reader's name for the extra file: one definition
from .check import compare
from .common import ExportError
from .onnx_export import quiet


def _library_file(filename: str) -> bool:
    """torch's and torchvision's own shape checks trigger tracer warnings that do not matter."""
    import torchvision  # import-time cost: torchvision takes seconds to import
    roots = [os.path.dirname(m.__file__) for m in (torch, torchvision)]
    return any(os.path.abspath(filename).startswith(r + os.sep) for r in roots)


def trace(net: torch.nn.Module, example: torch.Tensor, notes: list | None = None):
    """torch.jit.trace; the tracer's own warnings (a tensor turned into a Python bool or number, whose branch is
    then fixed in the file) are appended to `notes`, one line each."""
    with quiet(), torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", torch.jit.TracerWarning)
        traced = torch.jit.trace(net, (example,), check_trace=False)
    if notes is not None:
        for w in caught:
            if issubclass(w.category, torch.jit.TracerWarning) and not _library_file(w.filename):
                line = str(w.message).strip().splitlines()[0]
                note = f"{os.path.basename(w.filename)}:{w.lineno}: {line}"
                if note not in notes:
                    notes.append(note)
    return traced


def write_torchscript(traced, path: str, meta: dict) -> None:
    with quiet():
        torch.jit.save(traced, path, _extra_files={META_FILE: json.dumps(meta, ensure_ascii=False, default=str)})


def check_torchscript(path: str, net: torch.nn.Module, inputs: torch.Tensor) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = torch.jit.load(path, map_location="cpu").eval()
    except Exception as e:
        raise ExportError(f"the saved TorchScript file does not load back ({str(e).strip()[:200]}); no file kept") \
            from None
    return compare(net, loaded, inputs, rtol=1e-6, atol=1e-6, what="TorchScript model")
