"""`tudui serve`: a trained model behind an HTTP API with micro-batching, and a page to try it.

    import tudui
    tudui.serve("runs/cifar/best.pt", port=8000)          # blocks; Ctrl-C stops it

    from tudui.serve.app import create_app                 # the FastAPI app, for your own server
    from tudui.serve.model import open_model
    app = create_app(open_model("runs/cifar/best.pt"), token="s3cret")

Needs the `serve` extra: pip install 'tudui[serve]' (FastAPI, uvicorn, python-multipart).
"""
from __future__ import annotations

import importlib.util
import ipaddress
import os

import torch

from ..console import say
from ..errors import ConfigError, TuduiError
from .model import open_model

REQUIRED = ("fastapi", "uvicorn", "multipart")


def require_serve_extra() -> None:
    """A one-line error naming the extra when FastAPI, uvicorn or python-multipart is missing."""
    missing = [m for m in REQUIRED if importlib.util.find_spec(m) is None]
    if missing:
        names = {"multipart": "python-multipart"}
        raise TuduiError(f"tudui serve needs {', '.join(names.get(m, m) for m in missing)}: "
                         "pip install 'tudui[serve]'")


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(model, host: str = "127.0.0.1", port: int = 8000, *, token: str | None = None,
          max_bytes: int | None = None, max_pixels: int | None = None, max_batch: int | None = None,
          batch_wait_ms: float | None = None, max_files: int | None = None, threads: int | None = None,
          device: str = "cpu", log_level: str = "info", verify: bool = True, unsafe_load: bool = False) -> None:
    """Serve a model (a checkpoint path, or a loaded predictor) until interrupted. token=None reads
    TUDUI_TOKEN; threads caps torch's threads (default: the cores, at most 4); verify/unsafe_load: how a
    checkpoint is read (see tudui.checkpoint.load)."""
    require_serve_extra()
    import uvicorn  # optional dependency: uvicorn (extra: serve)

    from . import app as app_mod  # optional dependency: fastapi (extra: serve)

    if threads is not None and int(threads) < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    for flag, value in (("--max-bytes", max_bytes), ("--max-pixels", max_pixels), ("--max-batch", max_batch),
                        ("--max-files", max_files)):
        if value is not None and int(value) < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    if batch_wait_ms is not None and float(batch_wait_ms) < 0:
        raise ConfigError(f"--batch-wait-ms must be 0 or more, got {batch_wait_ms}")
    if not 0 <= int(port) <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
    token = token if token is not None else (os.environ.get("TUDUI_TOKEN") or None)
    torch.set_num_threads(int(threads) if threads else max(1, min(4, os.cpu_count() or 1)))
    predictor = model
    if isinstance(model, (str, os.PathLike)):
        predictor = open_model(os.fspath(model), device=device, verify=verify, unsafe_load=unsafe_load)
    limits = {k: v for k, v in (("max_bytes", max_bytes), ("max_pixels", max_pixels), ("max_batch", max_batch),
                                ("batch_wait_ms", batch_wait_ms), ("max_files", max_files)) if v is not None}
    app = app_mod.create_app(predictor, token=token, **limits)
    if not token and not is_loopback(host):
        say(f"tudui serve: warning: listening on {host} without a token: anyone who can reach this address "
            "can use the model; set --token or TUDUI_TOKEN")
    shown = f"[{host}]" if ":" in host else host
    say(f"tudui serve: {len(predictor.classes)} classes, torch threads {torch.get_num_threads()}, "
        f"page at http://{shown}:{port}/ (API docs at /docs)")
    try:
        uvicorn.run(app, host=host, port=int(port), log_level=log_level)
    except OSError as e:
        raise TuduiError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --port") from None
    except SystemExit as e:  # uvicorn logs why it could not start (a busy port, an unknown host) and exits with 3
        if e.code in (0, None):
            raise
        raise TuduiError(f"the server could not start on {host}:{port} (uvicorn's message above); "
                         "choose another --host or --port") from None
