"""PyTorch module -> TorchScript (torch.jit.trace) with tudui's metadata as an extra file (tudui.json).
Tracing records the operations run on an example batch; the check afterwards runs the saved file at other
batch sizes, so a model whose code fixes the batch size is caught."""
from __future__ import annotations

import json
import warnings

import torch

from .common import ExportError
from .onnx_export import quiet

META_FILE = "tudui.json"


def trace(net: torch.nn.Module, example: torch.Tensor):
    with quiet(), torch.no_grad():
        return torch.jit.trace(net, (example,), check_trace=False)


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
    from .check import compare
    return compare(net, loaded, inputs, rtol=1e-6, atol=1e-6, what="TorchScript model")
