"""PyTorch module -> .pt2: a torch.export ExportedProgram (the successor of TorchScript in torch 2.x) with a
dynamic batch axis and tudui's metadata as the extra file tudui.json. torch.export captures the whole graph or
fails with the reason, instead of silently fixing a branch on the example as tracing does."""
from __future__ import annotations

import json

import torch

from ..infer.pt2 import META_FILE  # the reader's name for the extra file: one definition
from .common import ExportError
from .onnx_export import quiet


def to_exported_program(net: torch.nn.Module, example: torch.Tensor):
    """torch.export.export with the batch axis dynamic (the example has batch 2: size 1 would be specialized)."""
    batch = torch.export.Dim("batch", min=1)
    with quiet(), torch.no_grad():
        return torch.export.export(net, (example,), dynamic_shapes=({0: batch},))


def write_pt2(program, path: str, meta: dict) -> None:
    torch.export.save(program, path, extra_files={META_FILE: json.dumps(meta, ensure_ascii=False, default=str)})


def check_pt2(path: str, net: torch.nn.Module, inputs: torch.Tensor) -> dict:
    from ..infer.pt2 import load_pt2
    try:
        loaded, _ = load_pt2(path)
    except Exception as e:  # noqa: BLE001 - whatever torch.export.load raises: the file is not kept
        raise ExportError(f"the saved .pt2 file does not load back ({str(e).strip()[:200]}); no file kept") from None
    from .check import compare
    return compare(net, loaded, inputs, rtol=1e-5, atol=1e-5, what="torch.export program")
