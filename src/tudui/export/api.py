"""tudui.export(checkpoint, format='onnx'|'torchscript'): a file another program loads without tudui, checked
against PyTorch before it is reported done."""
from __future__ import annotations

import os
import time
from typing import Optional

import torch

from ..fileio import tmp_name
from ..infer.checkpoint import Classifier, load
from ..infer.onnx_model import require
from .check import sample_inputs
from .common import ExportError, metadata, reason
from .locate import failing_layer
from .onnx_export import DEFAULT_OPSET, check_onnx, to_onnx_proto, write_onnx
from .torchscript import check_torchscript, trace, write_torchscript

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


def default_out(source_path: Optional[str], fmt: str) -> str:
    if not source_path:
        raise ExportError("say where to write the export: out=PATH (--out)")
    base = os.path.splitext(source_path)[0]
    return base + SUFFIX[fmt]


def _load(checkpoint, model, verify: bool = True, unsafe_load: bool = False):
    if isinstance(checkpoint, Classifier):
        return checkpoint
    return load(checkpoint, model=model, device="cpu", verify=verify, unsafe_load=unsafe_load)


def export(checkpoint, out: Optional[str] = None, format: str = "onnx", opset: Optional[int] = None, *,
           model: Optional[torch.nn.Module] = None, inputs: int = 64, seed: int = 0, verify: bool = True,
           unsafe_load: bool = False) -> dict:
    """Export a checkpoint (file, run folder or tudui.Classifier) to ONNX or TorchScript.

    The model runs in eval mode with the checkpoint's EMA weights where it has them; the batch axis is dynamic;
    class names, input size, channels, normalization and the tudui version go into the file's metadata (ONNX
    metadata_props, TorchScript extra file tudui.json). The file is then loaded back and compared with PyTorch on
    `inputs` random images at batch sizes 1, 2 and 7 (ONNX: onnx.checker full check, onnxruntime CPU,
    allclose(rtol=1e-3, atol=1e-5) and the same top-1; TorchScript: within 1e-6). A failed check raises
    ExportError and leaves no file. model: your nn.Module for a checkpoint tudui cannot rebuild by itself.
    verify/unsafe_load: how the checkpoint is read (see tudui.checkpoint.load).
    -> {'path', 'format', 'opset', 'exporter', 'max_abs_diff', 'checked_inputs', 'batch_sizes', 'bytes', ...}"""
    fmt = str(format).lower()
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format '{format}'; choose onnx or torchscript")
    if fmt == "torchscript" and opset is not None:
        raise ExportError("--opset applies to ONNX only")
    if inputs < 1:
        raise ExportError("the check needs at least one input")
    t0 = time.perf_counter()
    notes: list = []
    if fmt == "onnx":  # fail on a missing dependency before any work
        for mod in ("onnx", "onnxruntime") + (("onnxscript",) if (opset or 18) >= 18 else ()):
            require(mod)
    clf = _load(checkpoint, model, verify=verify, unsafe_load=unsafe_load)
    out = os.fspath(out) if out else default_out(clf.meta.get("path"), fmt)
    net = clf.model.to("cpu").float().eval()
    pre = clf.preprocess
    meta = metadata(clf)
    check_x = sample_inputs(pre, inputs, seed)
    example = check_x[:2].clone()  # batch 2: torch.export specializes a dimension of size 1
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    tmp = tmp_name(os.path.abspath(out))
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0666 less the umask, as .pt (not mkstemp's 0600)
    try:
        if fmt == "onnx":
            opset = int(opset or DEFAULT_OPSET)
            if opset < 7:
                raise ExportError(f"--opset {opset} is too old; use 7 or newer (default {DEFAULT_OPSET})")
            meta["opset"] = opset
            try:
                proto = to_onnx_proto(net, example, opset)
            except Exception as e:  # noqa: BLE001 - any exporter failure: say which layer and why
                raise _explain(net, example, e, lambda m, x: to_onnx_proto(m, x, opset), "ONNX") from None
            write_onnx(proto, tmp, meta)
            stats = check_onnx(tmp, net, check_x)
            exporter = "torch.onnx dynamo" if opset >= 18 else "torch.onnx torchscript-based"
        else:
            try:
                traced = trace(net, example, notes)
            except Exception as e:  # noqa: BLE001
                raise _explain(net, example, e, trace, "TorchScript") from None
            write_torchscript(traced, tmp, meta)
            stats = check_torchscript(tmp, net, check_x)
            exporter = "torch.jit.trace"
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"path": out, "format": fmt, "opset": opset if fmt == "onnx" else None, "exporter": exporter,
            "bytes": os.path.getsize(out), "classes": len(clf.classes), "input_size": meta["input_size"],
            "channels": meta["channels"], "seconds": time.perf_counter() - t0, "warnings": notes, **stats}


def _explain(net, example, err, export_one, what: str) -> ExportError:
    """One line: the innermost layer whose own export fails, and the exporter's reason."""
    def attempt(mod, x):
        try:
            export_one(mod.eval(), x)
            return None
        except Exception as e:  # noqa: BLE001
            return e

    found = failing_layer(net, example, attempt)
    if found is None:
        return ExportError(f"cannot export to {what}: the forward of {type(net).__name__} itself (no layer fails "
                           f"alone): {reason(err)}")
    name, mod, e = found
    return ExportError(f"cannot export to {what}: layer '{name}' ({type(mod).__name__}): {reason(e)}")
