"""--device resolution: auto, cpu, cuda, cuda:N, mps (the facts of `tudui env` are in tudui.env)."""
from __future__ import annotations

import platform

import torch

from .errors import TuduiError


def resolve_device(spec: str = "auto") -> torch.device:
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TuduiError(f"--device {spec} asked for CUDA, but this machine has no usable CUDA GPU "
                             "(torch.cuda.is_available() is False); use --device cpu or auto")
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TuduiError(f"--device {spec}: there are only {torch.cuda.device_count()} CUDA devices "
                             f"(0..{torch.cuda.device_count() - 1})")
        return dev
    if spec == "mps":
        if not mps_available():
            raise TuduiError("--device mps asked for Apple's MPS, which is not available here; use --device cpu or auto")
        return torch.device("mps")
    raise TuduiError(f"unknown device '{spec}'; use auto, cpu, cuda, cuda:N or mps")


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux; what the platform module knows elsewhere)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        return names[0] if names else cpu
    except OSError:
        return cpu


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())
