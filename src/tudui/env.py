"""`tudui env`: the environment report (the course's first lesson): Python, torch, devices, threads."""
from __future__ import annotations

import platform
import sys

import torch

from .device import cpu_name, mps_available, resolve_device
from .engine.distributed import backends
from .threads import describe as describe_wait_policy

__all__ = ["env_info", "cpu_name"]


def env_info() -> dict:
    import torchvision  # import-time cost: seconds, only for `tudui env`

    cuda = torch.cuda.is_available()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "mps_available": mps_available(),
        "cpu_threads": torch.get_num_threads(),
        "omp_wait_policy": describe_wait_policy(),
        "auto_device": str(resolve_device("auto")),
        "distributed_backends": [k for k, ok in backends().items() if ok],
    }
