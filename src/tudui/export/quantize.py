"""float32 .onnx -> int8 .onnx (onnxruntime static quantization, QDQ, per-channel weights), calibrated on the
run's own training images and accepted only when its accuracy on the run's validation split holds.

Settings follow onnxruntime's guidance for CPUs: uint8 activations with int8 weights on x86 (7-bit weights,
reduce_range, where the CPU has no VNNI), int8 for both on ARM. When the int8 model loses more than allowed,
each quantized layer is quantized alone to see how far it moves the logits, and the worst few are kept in
float32 (nodes_to_exclude) until the accuracy holds."""
from __future__ import annotations

import ast
import contextlib
import io
import logging
import os
import platform
import tempfile
from typing import Callable

import torch

from ..console import say
from ..infer.onnx_model import OnnxModule, open_session, require
from .common import ExportError

QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")
SEARCH_IMAGES = 256  # validation images whose logits rank the layers


def cpu_settings() -> dict:
    """Activation type and reduce_range for this CPU, as onnxruntime recommends."""
    from ..device import cpu_flags
    arm = platform.machine().lower() in ("arm64", "aarch64")
    vnni = bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(cpu_flags()))
    return {"activations": "int8" if arm else "uint8", "weights": "int8 per-channel",
            "reduce_range": not arm and not vnni}


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime's quantizer logs through the root logger (e.g. 'Axis 1 is out-of-range for weight ...' for a
    1-d weight it leaves per-tensor); tudui reports its own lines instead."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a tensor of normalized images, in batches."""

    def __init__(self, x: torch.Tensor, input_name: str, batch: int = 32):
        self.batches = [{input_name: x[i:i + batch].numpy()} for i in range(0, len(x), batch)]
        self.i = 0

    def get_next(self):
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return self.batches[self.i - 1]

    def rewind(self):
        self.i = 0


def layer_name(node) -> str:
    """The PyTorch module a node came from (torch.onnx records its name scopes), else the node's name."""
    for p in node.metadata_props:
        if p.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(p.value)
                if len(scopes) >= 2 and scopes[-2]:
                    return str(scopes[-2])
            except (ValueError, SyntaxError):
                pass
    return node.name


def logits_of(path: str, x: torch.Tensor, batch: int = 64) -> torch.Tensor:
    run = OnnxModule(open_session(path, "cpu"))
    with torch.no_grad():
        return torch.cat([run(x[i:i + batch]) for i in range(0, len(x), batch)])


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean()) * 100 if len(y) else 0.0


def quantize_checked(fp32_path: str, out: str, calib_x: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
                     *, max_drop: float = 1.0, force: bool = False, max_float_layers: int = 3,
                     progress: Callable[[str], None] = say) -> dict:
    """Quantize `fp32_path` into `out` and measure it. Raises ExportError (one line) when the accuracy drop in
    points exceeds max_drop and force is False; `out` is then not written.
    -> {'accuracy_fp32', 'accuracy_int8', 'drop', 'float_layers', 'calibration_images', 'val_images', ...}"""
    require("onnx")
    qz = require("onnxruntime.quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process
    import onnx

    settings = cpu_settings()
    work = tempfile.mkdtemp(prefix="tudui-int8-")
    try:
        pre = os.path.join(work, "pre.onnx")
        with contextlib.redirect_stdout(io.StringIO()):  # it prints on stdout, which carries --json
            quant_pre_process(fp32_path, pre, skip_symbolic_shape=True)
        graph = onnx.load(pre)
        input_name = graph.graph.input[0].name
        candidates = [n for n in graph.graph.node if n.op_type in QUANTIZED_OPS]
        # onnxruntime >= 1.32 can keep the calibrated ranges in a file: the layer search then calibrates once
        import inspect
        reuse = ({"calibration_cache_path": os.path.join(work, "calibration.json")}
                 if "calibration_cache_path" in inspect.signature(qz.quantize_static).parameters else {})

        def quantize(path: str, exclude=(), only=None) -> None:
            with _quiet_root_logger():
                    qz.quantize_static(pre, path, _Reader(calib_x, input_name), quant_format=qz.QuantFormat.QDQ,
                                   per_channel=True, reduce_range=settings["reduce_range"],
                                   activation_type=qz.QuantType.QInt8 if settings["activations"] == "int8"
                                   else qz.QuantType.QUInt8, weight_type=qz.QuantType.QInt8,
                                   nodes_to_exclude=list(exclude) or None, nodes_to_quantize=only, **reuse)

        progress(f"int8: calibrating on {len(calib_x)} training images")
        ref = logits_of(fp32_path, val_x)
        acc_fp = accuracy(ref, val_y)
        trial = os.path.join(work, "int8.onnx")
        quantize(trial)
        acc_q = accuracy(logits_of(trial, val_x), val_y)
        progress(f"int8: validation top-1 {acc_q:.2f}% (float32 {acc_fp:.2f}%) on {len(val_y)} images")
        excluded: list = []
        ranking: list = []
        if acc_fp - acc_q > max_drop and max_float_layers > 0 and len(candidates) > 1:
            ranking = rank_layers(candidates, quantize, work, val_x[:SEARCH_IMAGES], ref[:SEARCH_IMAGES], progress)
            best = (acc_q, [])  # keep the fewest float layers that give the best accuracy
            for k in range(1, min(max_float_layers, len(ranking)) + 1):
                names = [r[0] for r in ranking[:k]]
                quantize(trial, exclude=names)
                acc_k = accuracy(logits_of(trial, val_x), val_y)
                progress(f"int8: with {k} layer(s) kept in float32: top-1 {acc_k:.2f}%")
                if acc_k > best[0]:
                    best = (acc_k, names)
                if acc_fp - acc_k <= max_drop:
                    break
            acc_q, excluded = best
            if excluded != names:
                quantize(trial, exclude=excluded)
        drop = acc_fp - acc_q
        names = {n.name: layer_name(n) for n in candidates}
        float_layers = [{"node": n, "layer": names.get(n, n)} for n in excluded]
        if drop > max_drop and not force:
            kept = (f" even with {', '.join(f['layer'] for f in float_layers)} kept in float32"
                    if float_layers else "")
            raise ExportError(f"int8 loses {drop:.2f} points of top-1 on the validation split ({acc_fp:.2f}% -> "
                              f"{acc_q:.2f}%){kept}, more than --max-drop {max_drop:g}; raise --max-drop, add "
                              "calibration images, or pass --force to keep it anyway; no file written")
        os.replace(trial, out)
        return {"accuracy_fp32": round(acc_fp, 4), "accuracy_int8": round(acc_q, 4), "drop": round(drop, 4),
                "max_drop": max_drop, "float_layers": float_layers, "quantized_layers": len(candidates) - len(excluded),
                "calibration_images": len(calib_x), "val_images": len(val_y), "quant_format": "QDQ",
                "calibration": "MinMax", "layer_ranking": [{"node": n, "layer": lay, "logit_mse": e}
                                                            for n, lay, e in ranking[:10]], **settings}
    finally:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


def rank_layers(candidates, quantize, work: str, x: torch.Tensor, ref: torch.Tensor, progress) -> list:
    """Each layer quantized alone: how far it moves the logits (mean squared error against float32) ->
    [(node, layer, mse)] worst first."""
    progress(f"int8: the drop exceeds the limit; measuring each of {len(candidates)} layers quantized alone")
    path = os.path.join(work, "one.onnx")
    out = []
    for node in candidates:
        quantize(path, only=[node.name])
        err = float(((logits_of(path, x) - ref) ** 2).mean())
        out.append((node.name, layer_name(node), err))
    out.sort(key=lambda r: -r[2])
    return out


def with_metadata(path: str, extra: dict) -> None:
    """Add keys to an .onnx file's metadata_props (JSON values)."""
    import json

    import onnx
    proto = onnx.load(path)
    props = {p.key: p.value for p in proto.metadata_props}
    props.update({k: json.dumps(v, ensure_ascii=False, default=str) for k, v in extra.items()})
    del proto.metadata_props[:]
    for k, v in props.items():
        e = proto.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(proto, path)



def int8_from_run(clf, fp32_path: str, out: str, *, calibration: int = 256, max_drop: float = 1.0,
                  force: bool = False, max_float_layers: int = 3, seed: int = 0, data=None,
                  progress: Callable[[str], None] = say) -> dict:
    """The checked float32 file of a checkpoint -> the int8 file at `out`: calibration images are a seeded sample
    of the run's training split, the accuracy is measured on its validation split, both through the
    checkpoint's own preprocessing (no augmentation, no TTA)."""
    from ..infer.rundata import gather, run_source, split_loader
    if calibration < 1:
        raise ExportError("--calibration needs at least 1 image")
    if max_drop < 0:
        raise ExportError(f"--max-drop is in points of accuracy and cannot be negative (got {max_drop:g})")
    cfg, source = run_source(clf, data)
    calib_x, _ = gather(split_loader(clf, cfg, source, "train", limit=calibration, seed=seed))
    val_x, val_y = gather(split_loader(clf, cfg, source, "val"))
    result = quantize_checked(fp32_path, out, calib_x, val_x, val_y, max_drop=max_drop, force=force,
                              max_float_layers=max_float_layers, progress=progress)
    result["data"] = str(cfg.data)
    with_metadata(out, {"quantization": result})
    return result
