"""tudui.export(checkpoint, format='onnx'|'pt2'|'torchscript', int8=False): a file another program loads without
tudui, checked against PyTorch (int8: measured on the run's validation split) before it is reported done."""
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

FORMATS = ("onnx", "pt2", "torchscript")
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".torchscript.pt", "int8": ".int8.onnx"}


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
           unsafe_load: bool = False, int8: bool = False, calibration: int = 256, max_drop: float = 1.0,
           force: bool = False, max_float_layers: int = 3, data=None) -> dict:
    """Export a checkpoint (file, run folder or tudui.Classifier) to ONNX, a torch.export program (.pt2) or
    TorchScript (deprecated by torch in favour of torch.export; kept for older consumers).

    The model runs in eval mode with the checkpoint's EMA weights where it has them; the batch axis is dynamic;
    class names, input size, channels, normalization and the tudui version go into the file's metadata (ONNX
    metadata_props, .pt2 and TorchScript: extra file tudui.json). The file is then loaded back and compared with PyTorch on
    `inputs` random images at batch sizes 1, 2 and 7 (ONNX: onnx.checker full check, onnxruntime CPU,
    allclose(rtol=1e-3, atol=1e-5) and the same top-1; .pt2: within 1e-5; TorchScript: within 1e-6). A failed check raises
    ExportError and leaves no file. model: your nn.Module for a checkpoint tudui cannot rebuild by itself.
    verify/unsafe_load: how the checkpoint is read (see tudui.checkpoint.load).
    int8 (ONNX only): quantize the checked float32 model (onnxruntime static quantization, QDQ, per-channel
    weights) on `calibration` images of the run's training split, measure both on its validation split (or on
    `data`), keep up to `max_float_layers` of the layers that lose most in float32 when the drop exceeds
    `max_drop` points, and refuse (ExportError, no file) if it still does, unless force. The figures go into the
    result and the file's metadata ('quantization').
    -> {'path', 'format', 'opset', 'exporter', 'max_abs_diff', 'checked_inputs', 'batch_sizes', 'bytes', ...}"""
    fmt = str(format).lower()
    if int8 and fmt != "onnx":
        raise ExportError("--int8 writes ONNX; leave out --format or use --format onnx")
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format '{format}'; choose onnx, pt2 or torchscript")
    if fmt != "onnx" and opset is not None:
        raise ExportError("--opset applies to ONNX only")
    if inputs < 1:
        raise ExportError("the check needs at least one input")
    t0 = time.perf_counter()
    notes: list = []
    if fmt == "onnx":  # fail on a missing dependency before any work
        for mod in ("onnx", "onnxruntime") + (("onnxscript",) if (opset or 18) >= 18 else ()):
            require(mod)
    clf = _load(checkpoint, model, verify=verify, unsafe_load=unsafe_load)
    out = os.fspath(out) if out else default_out(clf.meta.get("path"), "int8" if int8 else fmt)
    net = clf.model.to("cpu").float().eval()
    pre = clf.preprocess
    meta = metadata(clf)
    check_x = sample_inputs(pre, inputs, seed)
    example = check_x[:2].clone()  # batch 2: torch.export specializes a dimension of size 1
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    # 0666 less the umask, as .pt (not mkstemp's 0600); torch.export.save wants the .pt2 suffix
    tmp = tmp_name(os.path.abspath(out)) + (".pt2" if fmt == "pt2" else "")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
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
            if int8:
                from .quantize import int8_from_run
                stats["int8"] = int8_from_run(clf, tmp, tmp + ".int8", calibration=calibration, max_drop=max_drop,
                                              force=force, max_float_layers=max_float_layers, seed=seed,
                                              data=data)
                os.replace(tmp + ".int8", tmp)
                exporter += " + onnxruntime int8 (QDQ)"
        elif fmt == "pt2":
            from .pt2 import check_pt2, to_exported_program, write_pt2
            try:
                program = to_exported_program(net, example)
            except Exception as e:  # noqa: BLE001
                raise _explain(net, example, e, to_exported_program, "torch.export") from None
            write_pt2(program, tmp, meta)
            stats = check_pt2(tmp, net, check_x)
            exporter = "torch.export"
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
        for leftover in (tmp, tmp + ".int8"):
            if os.path.exists(leftover):
                os.unlink(leftover)
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
