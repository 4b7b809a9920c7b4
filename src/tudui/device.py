"""Device choice and the environment report of `tudui env` (the course's first lesson)."""
from __future__ import annotations

import platform
import sys

import torch

from .errors import TuduiError


def resolve_device(spec: str = "auto") -> torch.device:
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
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
        if not _mps_available():
            raise TuduiError("--device mps asked for Apple's MPS, which is not available here; use --device cpu or auto")
        return torch.device("mps")
    raise TuduiError(f"unknown device '{spec}'; use auto, cpu, cuda, cuda:N or mps")


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux; what the platform module knows elsewhere)."""
    import platform
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        return names[0] if names else cpu
    except OSError:
        return cpu


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def env_info() -> dict:
    import torchvision

    from .engine.distributed import backends
    from .threads import describe as describe_wait_policy

    cuda = torch.cuda.is_available()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "mps_available": _mps_available(),
        "cpu_threads": torch.get_num_threads(),
        "omp_wait_policy": describe_wait_policy(),
        "auto_device": str(resolve_device("auto")),
        "distributed_backends": [k for k, ok in backends().items() if ok],
    }
