"""`--engine onnx`: a checkpoint run by onnxruntime without a separate export step. The model is exported in
memory (a temporary file, removed once onnxruntime has read it), checked against PyTorch with the export's own
tolerance, and served through the same Predictor interface as an exported .onnx file."""
from __future__ import annotations

import os
import shutil
import tempfile

ENGINES = ("torch", "onnx")


def open_engine(source, engine: str = "torch", device: str = "cpu", *, verify: bool = True,
                unsafe_load: bool = False, threads: int | None = None):
    """A Predictor for `source` run by `engine`: 'torch' (open_predictor as is) or 'onnx' (a checkpoint exported
    and checked now, then run by onnxruntime; an .onnx file as it is)."""
    from ..errors import ConfigError
    from ..infer import Predictor, open_predictor
    from ..infer.open import is_onnx
    engine = str(engine or "torch").lower()
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine '{engine}'; choose torch or onnx")
    if engine == "torch" or is_onnx(source) or (isinstance(source, Predictor) and source.kind == "onnx"):
        return open_predictor(source, device=device, verify=verify, unsafe_load=unsafe_load)
    from ..infer.onnx_model import OnnxPredictor, require
    for mod in ("onnx", "onnxruntime", "onnxscript"):
        require(mod)
    clf = open_predictor(source, device="cpu", verify=verify, unsafe_load=unsafe_load)
    if clf.kind != "torch":
        raise ConfigError(f"--engine onnx runs a checkpoint; {clf.meta.get('path')} is a {clf.kind} file: "
                          "leave out --engine")
    from .api import export
    work = tempfile.mkdtemp(prefix="tudui-engine-")
    try:
        path = os.path.join(work, "model.onnx")
        export(clf, out=path, format="onnx")  # raises ExportError (one line) when the answers disagree
        predictor = OnnxPredictor(path, device=device, threads=threads)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    predictor.meta["path"] = clf.meta.get("path")
    predictor.meta["engine"] = "onnxruntime (exported from the checkpoint at start, checked against PyTorch)"
    return predictor
