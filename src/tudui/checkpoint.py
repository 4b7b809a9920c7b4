"""Checkpoints: self-describing, written atomically, loaded without unpickling code.

A checkpoint is a dict of tensors and plain values (str, int, float, bool, list, dict, None), so
`torch.load(weights_only=True)` reads it. Tensors are saved on the CPU; `load` always maps to the CPU
first, so a file written on a GPU machine opens anywhere without `map_location`.
"""
from __future__ import annotations

import errno
import hashlib
import os
from typing import Optional

import torch

from . import fileio
from .console import notice, warn
from .errors import CheckpointError, first_line
from .version import versions

FORMAT = "tudui-checkpoint"
FORMAT_VERSION = 1


def atomic_torch_save(obj, path: str) -> None:
    """Write to a temporary file in the same folder, flush and fsync, then rename over `path`:
    a crash at any moment leaves either the old file or the new one, never a torn one. The temporary file
    is created with mode 0o666 less the umask, as a plain open() would (mkstemp's 0600 would stick).
    Raises OSError (ENOSPC, EACCES, EROFS ...) after removing the temporary file; `path` is untouched then."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    with fileio.replacing(path) as fh:
        try:
            torch.save(obj, fh)
        except RuntimeError as e:  # torch's zip writer turns a failed write (ENOSPC) into a RuntimeError
            cause = _os_error_in(e)
            if cause is None:
                raise
            raise cause from None
    fileio.remove_stale_temps(path)
    fileio.sync_folder(folder)  # make the rename itself durable


def _os_error_in(e: BaseException):
    """The OSError behind an exception (its __context__ / __cause__ chain), or None."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


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


def content_hash(payload: dict) -> str:
    """SHA-256 over every tensor (dtype, shape, bytes) and every plain value of a checkpoint, walked in a fixed
    order (dict keys sorted), leaving out the "sha256" entry itself. Stable across save/load round trips."""
    h = hashlib.sha256()

    def walk(obj):
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy())  # buffer protocol: no copy
        elif isinstance(obj, dict):
            keys = [k for k in obj if not (obj is payload and k == "sha256")]
            h.update(f"D{len(keys)}".encode())
            for k in sorted(keys, key=lambda k: (type(k).__name__, str(k))):
                h.update(f"K{type(k).__name__}:{k!s}".encode("utf-8", "surrogatepass"))
                walk(obj[k])
        elif isinstance(obj, (list, tuple)):
            h.update(f"{type(obj).__name__[0]}{len(obj)}".encode())
            for v in obj:
                walk(v)
        else:
            h.update(f"V{type(obj).__name__}:{obj!r}".encode("utf-8", "surrogatepass"))
    walk(payload)
    return h.hexdigest()


def save(path: str, *, model_state: dict, model_spec: dict, classes: list, preprocess: dict,
         config: dict, epoch: int = 0, step: int = 0, metrics: Optional[dict] = None,
         train_state: Optional[dict] = None, data: Optional[dict] = None, extra: Optional[dict] = None) -> None:
    """Write a checkpoint atomically, with the SHA-256 of its contents. A full disk or an unwritable folder
    raises CheckpointError naming the folder; the previous file at `path` stays as it was."""
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
    payload["sha256"] = content_hash(payload)
    try:
        atomic_torch_save(payload, path)
    except OSError as e:
        folder = os.path.dirname(os.path.abspath(path))
        why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
               errno.EROFS: "the folder is on a read-only file system",
               errno.EACCES: "the folder is not writable", errno.EPERM: "the folder is not writable"}.get(
                   e.errno, e.strerror or type(e).__name__)
        kept = " (the previous checkpoint there is kept)" if os.path.exists(path) else ""
        raise CheckpointError(f"cannot save {os.path.basename(path)} in {folder}: {why}{kept}; "
                              "free space or choose another --out, then resume") from None


def _resolve_path(path) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        for name in ("best.pt", "last.pt"):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        raise CheckpointError(f"{path} is a folder without best.pt or last.pt")
    return path


def load(path: str, *, verify: bool = True, unsafe_load: bool = False) -> dict:
    """Read a tudui checkpoint on the CPU with torch.load(weights_only=True): a pickle that names code
    (anywhere: the weights, the optimizer state, extra entries, the config) is refused, never run.
    verify: check the SHA-256 recorded at save; a changed file is refused (verify=False loads it anyway).
    unsafe_load: unpickle with weights_only=False, which RUNS whatever code the file names; only for files
    from a source you trust. Prints a warning."""
    path = _resolve_path(path)
    if unsafe_load:
        warn(f"--unsafe-load: unpickling {path} with weights_only=False runs any code it holds; "
             "use it only for files you made yourself or fully trust")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=not unsafe_load)
    except Exception as e:
        msg = first_line(e)
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise CheckpointError(f"{path} is not a tudui checkpoint (it holds pickled objects, which are never "
                                  "run; for a .pth saved the course's way use `tudui import`)") from None
        raise CheckpointError(f"{path} is not a readable checkpoint ({msg[:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a tudui checkpoint (for a plain state_dict or a whole-model .pth "
                              "saved the course's way, use `tudui import`)")
    if not isinstance(ckpt.get("format_version", 0), int) or ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer tudui (format {ckpt['format_version']}); upgrade tudui")
    recorded = ckpt.get("sha256")
    if verify and recorded is None:
        notice(f"{path} records no SHA-256 (saved by an older tudui); loaded unverified")
    elif verify and recorded != content_hash(ckpt):
        raise CheckpointError(f"{path} was changed after it was saved (its SHA-256 does not match the one "
                              "recorded); re-download or re-save it, or pass --no-verify to load it anyway")
    ckpt["path"] = path
    return ckpt
