"""The package version and the ONE function that collects the versions of the software around it (stored in
checkpoints, shown in reports and exported metadata). Ground layer: imports nothing of tudui, and not torch."""
from __future__ import annotations

import platform
import sys

__version__ = "0.1.0"

CHECKPOINT_PACKAGES = ("torchvision",)  # what a checkpoint records besides tudui, torch and python


def _installed(pkg: str):
    from importlib import metadata  # import-time cost: only when versions are asked for
    try:  # the installed metadata: importing torchvision alone costs seconds
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def versions(packages=CHECKPOINT_PACKAGES) -> dict:
    """{'tudui', 'torch', 'python', and each of `packages` that is installed} as strings."""
    torch = sys.modules.get("torch")
    out = {"tudui": __version__, "torch": str(torch.__version__) if torch is not None else _installed("torch"),
           "python": platform.python_version()}
    for pkg in packages:
        v = _installed(pkg)
        if v is not None:
            out[pkg] = v
    return out
