"""One runner per format `tudui bench` compares: each builds (exporting where it needs a file) a callable from a
normalized float batch to logits, or says in one line why it is skipped on this machine."""
from __future__ import annotations

import importlib.util
import os
import shutil
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import torch

# row key -> what the table calls it
FORMATS = {
    "eager": "eager float32",
    "channels_last": "eager channels_last",
    "compile": "torch.compile",
    "torchscript": "TorchScript",
    "pt2": "torch.export",
    "aoti": "AOTInductor package",
    "onnx": "ONNX float32",
    "onnx-int8": "ONNX int8",
    "openvino": "OpenVINO float32",
}


class Skip(Exception):
    """This format cannot run here; the message says why (one line)."""


@dataclass
class Runner:
    fn: Callable[[torch.Tensor], torch.Tensor]
    path: Optional[str] = None  # the file it runs, for the size column
    note: str = ""
    extra: Optional[dict] = None


class Build:
    """What every runner starts from: the checkpoint's Classifier, a folder for exported files, the threads."""

    def __init__(self, clf, work: str, threads: int, example: torch.Tensor, int8_options: dict):
        self.clf, self.work, self.threads, self.example = clf, work, threads, example
        self.int8_options = int8_options
        self.net = clf.model.to("cpu").float().eval()
        self._files: dict = {}

    def exported(self, fmt: str, int8: bool = False) -> tuple:
        """The checked export of this checkpoint in `fmt` (made once) -> (path, export result)."""
        key = "int8" if int8 else fmt
        if key not in self._files:
            from ..export import export
            suffix = {"onnx": ".onnx", "int8": ".int8.onnx", "pt2": ".pt2", "torchscript": ".torchscript.pt"}[key]
            path = os.path.join(self.work, "model" + suffix)
            opts = dict(self.int8_options, int8=True, force=True) if int8 else {}
            self._files[key] = (path, export(self.clf, out=path, format=fmt, **opts))
        return self._files[key]


def _torch_fn(model) -> Callable:
    def run(x):
        with torch.inference_mode():
            return model(x)
    return run


def eager(b: Build) -> Runner:
    return Runner(_torch_fn(b.net), b.clf.meta.get("path"), "the checkpoint's model in PyTorch")


def channels_last(b: Build) -> Runner:
    if b.example.dim() != 4:
        raise Skip("needs 4-d image batches")
    import copy
    net = copy.deepcopy(b.net).to(memory_format=torch.channels_last)
    base = _torch_fn(net)
    return Runner(lambda x: base(x.contiguous(memory_format=torch.channels_last)), b.clf.meta.get("path"),
                  "model and inputs in channels_last memory format")


def compiled(b: Build) -> Runner:
    if not _compiler():
        raise Skip("torch.compile needs a C++ compiler (none found on PATH)")
    net = torch.compile(b.net)
    fn = _torch_fn(net)
    try:
        fn(b.example)  # compile now, outside the timings
    except Exception as e:  # noqa: BLE001 - inductor can fail in many ways on a machine it does not support
        raise Skip(f"torch.compile failed here: {str(e).strip().splitlines()[0][:150]}") from None
    return Runner(fn, b.clf.meta.get("path"), "default mode; compile time not counted")


def torchscript(b: Build) -> Runner:
    path, _ = b.exported("torchscript")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated in favour of torch.export
        model = torch.jit.load(path, map_location="cpu").eval()
    return Runner(_torch_fn(model), path, "torch.jit.trace; deprecated by torch")


def pt2(b: Build) -> Runner:
    from ..infer.pt2 import load_pt2
    path, _ = b.exported("pt2")
    model, _ = load_pt2(path)
    return Runner(_torch_fn(model), path, "ExportedProgram.module() in eager PyTorch")


def aoti(b: Build) -> Runner:
    if not _compiler():
        raise Skip("AOTInductor needs a C++ compiler (none found on PATH)")
    src, _ = b.exported("pt2")
    program = torch.export.load(src)
    path = os.path.join(b.work, "model.aoti.pt2")
    try:
        import torch._inductor as inductor
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inductor.aoti_compile_and_package(program, package_path=path)
            compiled_fn = inductor.aoti_load_package(path)
    except Exception as e:  # noqa: BLE001
        raise Skip(f"AOTInductor failed here: {str(e).strip().splitlines()[0][:150]}") from None
    return Runner(_torch_fn(compiled_fn), path, "the torch.export program compiled ahead of time")


def onnx_fp32(b: Build) -> Runner:
    _need("onnxruntime", "export")
    from ..infer.onnx_model import OnnxModule, open_session
    path, _ = b.exported("onnx")
    return Runner(OnnxModule(open_session(path, "cpu", b.threads)), path, "onnxruntime, CPU")


def onnx_int8(b: Build) -> Runner:
    _need("onnxruntime", "export")
    from ..infer.onnx_model import OnnxModule, open_session
    path, r = b.exported("onnx", int8=True)
    q = r["int8"]
    kept = f"; float32 layers: {', '.join(f['layer'] for f in q['float_layers'])}" if q["float_layers"] else ""
    return Runner(OnnxModule(open_session(path, "cpu", b.threads)), path,
                  f"onnxruntime static QDQ, calibrated on {q['calibration_images']} training images{kept}",
                  extra={"int8": q})


def openvino(b: Build) -> Runner:
    _need("openvino", "openvino")
    import openvino as ov
    path, _ = b.exported("onnx")
    core = ov.Core()
    compiled_model = core.compile_model(core.read_model(path), "CPU",
                                        {"INFERENCE_NUM_THREADS": int(b.threads), "INFERENCE_PRECISION_HINT": "f32"})
    out = compiled_model.output(0)

    def run(x):
        return torch.from_numpy(compiled_model(x.detach().to("cpu", torch.float32).contiguous().numpy())[out])
    return Runner(run, path, f"OpenVINO {ov.get_version().split('-')[0]} CPU plugin, the ONNX float32 file, f32 "
                             "precision")


BUILDERS = {"eager": eager, "channels_last": channels_last, "compile": compiled, "torchscript": torchscript,
            "pt2": pt2, "aoti": aoti, "onnx": onnx_fp32, "onnx-int8": onnx_int8, "openvino": openvino}


def _compiler() -> bool:
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


def _need(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise Skip(f"{module} is not installed (pip install 'tudui[{extra}]')")
