"""PyTorch module -> .onnx with a dynamic batch axis and tudui's metadata.

Exporter choice (torch 2.14): `torch.onnx.export(..., dynamo=True)` is torch's default and maintained path
(torch.export capture, onnxscript translation). It needs onnxscript, takes `dynamic_shapes` (not the older
`dynamic_axes`) and emits opset 18 or newer: asked for 17 it tries onnx's version converter, which fails on
common models (a Reduce/Split 'axes' adapter assertion) and keeps 18. So opset >= 18 (default 18) uses it;
--opset below 18 uses the TorchScript-based exporter (`dynamo=False`, `dynamic_axes`), deprecated in torch but
still shipped, for runtimes that need an older opset."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings

import torch

from ..errors import first_line
from ..infer.onnx_model import OnnxModule, open_session, require
from .check import compare
from .common import ExportError, as_strings

DEFAULT_OPSET = 18
INPUT, OUTPUT = "input", "logits"


@contextlib.contextmanager
def quiet():
    """The exporters print progress on stdout (which carries JSON for --json), log failing graphs and warn
    freely; tudui reports one line instead. TUDUI_EXPORT_VERBOSE=1 lets it all through (on stderr)."""
    if os.environ.get("TUDUI_EXPORT_VERBOSE"):
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    torch_log = logging.getLogger("torch")
    level = torch_log.level
    torch_log.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch_log.setLevel(level)


def to_onnx_proto(net: torch.nn.Module, example: torch.Tensor, opset: int):
    """-> onnx.ModelProto; raises the exporter's own exception on failure."""
    onnx = require("onnx")
    if opset >= 18:
        require("onnxscript")
        from torch.export import Dim  # import-time cost: only when exporting
        with quiet():
            prog = torch.onnx.export(net, (example,), None, dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                                     opset_version=opset, dynamic_shapes=({0: Dim("batch", min=1)},),
                                     optimize=True, verbose=False)
        return prog.model_proto
    buf = io.BytesIO()
    with quiet():
        torch.onnx.export(net, (example,), buf, dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                          opset_version=opset, dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
                          do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


def write_onnx(proto, path: str, meta: dict) -> None:
    onnx = require("onnx")
    del proto.metadata_props[:]
    for k, v in as_strings(meta).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "tudui"
    proto.producer_version = str(meta.get("tudui_version", ""))
    proto.doc_string = f"tudui classifier: {meta['num_classes']} classes; {meta['layout']}"
    if proto.ByteSize() > 2_000_000_000:
        raise ExportError("the model is over 2 GB, the limit of a single .onnx file; tudui does not write "
                          "external-data ONNX files")
    onnx.save(proto, path)


def check_onnx(path: str, net: torch.nn.Module, inputs: torch.Tensor) -> dict:
    """onnx.checker (full_check: shape inference too), then onnxruntime on the CPU against eager."""
    onnx = require("onnx")
    try:
        onnx.checker.check_model(path, full_check=True)
    except Exception as e:
        raise ExportError(f"the exported ONNX file fails onnx.checker: {first_line(e, 250)}; "
                          "no file kept") from None
    runner = OnnxModule(open_session(path, "cpu"))
    return compare(net, runner, inputs, rtol=1e-3, atol=1e-5, what="ONNX model (onnxruntime, CPU)")
