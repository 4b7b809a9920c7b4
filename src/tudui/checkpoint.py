"""Checkpoints: self-describing, written atomically, loaded without unpickling code.

A checkpoint is a dict of tensors and plain values (str, int, float, bool, list, dict, None), so
`torch.load(weights_only=True)` reads it. Tensors are saved on the CPU; `load` always maps to the CPU
first, so a file written on a GPU machine opens anywhere without `map_location`.
"""
from __future__ import annotations

import os
import tempfile
from typing import Optional

import torch

from .errors import CheckpointError

FORMAT = "tudui-checkpoint"
FORMAT_VERSION = 1


def atomic_torch_save(obj, path: str) -> None:
    """Write to a temporary file in the same folder, flush and fsync, then rename over `path`:
    a crash at any moment leaves either the old file or the new one, never a torn one."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        try:  # make the rename itself durable
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def to_cpu(obj):
    """Recursively move tensors to the CPU (optimizer and EMA states included)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def clean_state_dict(sd: dict) -> dict:
    """Strip the prefixes DDP (`module.`) and torch.compile (`_orig_mod.`) add to parameter names."""
    out = {}
    for k, v in sd.items():
        while True:
            for p in ("module.", "_orig_mod."):
                if k.startswith(p):
                    k = k[len(p):]
                    break
            else:
                break
        out[k] = v
    return out


def versions() -> dict:
    import sys

    import torchvision

    from . import __version__
    return {"tudui": __version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "python": sys.version.split()[0]}


def save(path: str, *, model_state: dict, model_spec: dict, classes: list, preprocess: dict,
         config: dict, epoch: int = 0, step: int = 0, metrics: Optional[dict] = None,
         train_state: Optional[dict] = None, data: Optional[dict] = None, extra: Optional[dict] = None) -> None:
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": dict(model_spec),  # {name, args, num_classes, in_channels, img_size}
        "state_dict": to_cpu(clean_state_dict(model_state)),
        "classes": list(classes),
        "preprocess": preprocess,
        "config": config,
        "data": data or {},
        "epoch": int(epoch),
        "step": int(step),
        "metrics": metrics or {},
        "versions": versions(),
    }
    if train_state is not None:
        payload["train_state"] = to_cpu(train_state)
    if extra:
        payload.update(to_cpu(extra))
    atomic_torch_save(payload, path)


def load(path: str) -> dict:
    """Read a tudui checkpoint on the CPU, refusing anything that would need unpickling code."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        for name in ("best.pt", "last.pt"):
            if os.path.isfile(os.path.join(path, name)):
                path = os.path.join(path, name)
                break
        else:
            raise CheckpointError(f"{path} is a folder without best.pt or last.pt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise CheckpointError(f"{path} is not a tudui checkpoint (it holds pickled objects; "
                                  "for a .pth saved the course's way use `tudui import`)") from None
        raise CheckpointError(f"{path} is not a readable checkpoint ({msg[:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a tudui checkpoint (for a plain state_dict or a whole-model .pth "
                              "saved the course's way, use `tudui import`)")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer tudui (format {ckpt['format_version']}); upgrade tudui")
    ckpt["path"] = path
    return ckpt
