"""Backbone weights: downloads that fail fast when offline, local state_dict / safetensors files, and loading
them into everything but a model's new head (the old head's tensors are dropped and reported)."""
from __future__ import annotations

import os
import re
import socket
import threading
from typing import Optional
from urllib.parse import urlparse

import torch
from torch import nn

from ..checkpoint import clean_state_dict
from ..console import say
from ..errors import ConfigError, TuduiError, first_line

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
CONNECT_TIMEOUT = 5.0  # seconds to decide whether a download host answers at all
READ_TIMEOUT = 60.0  # seconds a stalled download may wait for data
# auxiliary classifiers of torchvision's GoogLeNet / Inception files: tudui builds those models without them
AUX_HEADS = ("aux1.", "aux2.", "AuxLogits.")
# DenseNet files from torchvision's URLs still use the old 'norm.1'-style names of its layers
_DENSENET_OLD = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def reachable(host: str, port: int = 443, timeout: Optional[float] = None) -> Optional[str]:
    """None when a TCP connection to host:port opens within `timeout` seconds, else why not.
    Name lookups ignore socket timeouts, so the attempt runs in a daemon thread we stop waiting for."""
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    result: dict = {}

    def attempt():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result["ok"] = True
        except OSError as e:
            result["error"] = str(e) or type(e).__name__

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(timeout)
    if result.get("ok"):
        return None
    return result.get("error", f"no answer within {timeout:g}s")


def fetch(url: str, what: str) -> str:
    """Path of `url` in torch hub's cache (~/.cache/torch/hub/checkpoints), downloading it only when the
    host answers; offline this fails within seconds with a TuduiError that names --weights."""
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    path = os.path.join(folder, os.path.basename(urlparse(url).path))
    if os.path.isfile(path):
        return path
    host = urlparse(url).hostname or url
    why = reachable(host)
    if why is None:
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(READ_TIMEOUT)
        try:
            os.makedirs(folder, exist_ok=True)
            m = torch.hub.HASH_REGEX.search(os.path.basename(path))
            say(f"downloading {what} from {url}")
            torch.hub.download_url_to_file(url, path, hash_prefix=m.group(1) if m else None, progress=True)
            return path
        except Exception as e:  # network, disk or hash errors: all end the same way for the user
            why = first_line(e)
        finally:
            socket.setdefaulttimeout(old)
    raise TuduiError(f"cannot download {what} from {host} ({why}); on a machine with internet download {url} "
                     f"and pass it with --weights FILE (or copy it to {path})")


def read_state_dict(path: str) -> dict:
    """A local weights file -> {name: tensor}: a safetensors file, a saved state_dict, a checkpoint dict that
    holds one (tudui's, or {'state_dict': ...} / {'model': ...}). Never unpickles code."""
    path = os.fspath(os.path.expanduser(path))
    if not os.path.isfile(path):
        raise ConfigError(f"--weights file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file  # import-time cost: only for a .safetensors file
        try:
            sd = load_file(path, device="cpu")
        except Exception as e:
            raise ConfigError(f"--weights {path} is not a readable safetensors file ({first_line(e)})") from None
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            if "weights_only" in str(e) or "Unsupported global" in str(e):
                raise ConfigError(f"--weights {path} holds pickled objects (a whole saved model?); save "
                                  "model.state_dict() instead, or convert it with `tudui import`") from None
            raise ConfigError(f"--weights {path} is not a readable weights file ({first_line(e)})") from None
        sd = _unwrap(obj, path)
    sd = {_DENSENET_OLD.sub(r"\1\2", k): v for k, v in clean_state_dict(sd).items()}
    return sd


def _unwrap(obj, path: str) -> dict:
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict) and _all_tensors(obj[key]):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not _all_tensors(obj):
        raise ConfigError(f"--weights {path} does not hold a state_dict (a mapping of parameter names to tensors)")
    return obj


def _all_tensors(d: dict) -> bool:
    return all(isinstance(v, torch.Tensor) for v in d.values())


def _in_head(key: str, heads) -> bool:
    return any(key == h or key.startswith(h + ".") for h in heads)


def load_backbone(model: nn.Module, sd: dict, source: str, name: str = "the model") -> list:
    """Load `sd` into every tensor of `model` except its head (model.tudui_head). The file's head tensors
    (and GoogLeNet/Inception auxiliary heads) are dropped and returned; any other mismatch is an error that
    lists the names."""
    heads = tuple(getattr(model, "tudui_head", ()) or ())
    own = model.state_dict()
    dropped = sorted(k for k in sd if _in_head(k, heads) or (k.startswith(AUX_HEADS) and k not in own))
    keep = {k: v for k, v in sd.items() if k not in set(dropped)}
    # old BatchNorm files lack num_batches_tracked; BatchNorm fills it in itself
    missing = [k for k in own if k not in keep and not _in_head(k, heads) and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in keep if k not in own]
    shapes = [f"{k} {tuple(keep[k].shape)} vs {tuple(own[k].shape)}" for k in keep
              if k in own and keep[k].shape != own[k].shape]
    problems = [f"{label} ({len(items)}): {', '.join(items[:5])}{', ...' if len(items) > 5 else ''}"
                for label, items in (("missing", missing), ("unexpected", unexpected), ("shape file vs model", shapes))
                if items]
    if problems:
        raise ConfigError(f"the weights in {source} do not fit {name}: " + "; ".join(problems))
    model.load_state_dict(keep, strict=False)
    return dropped


def report(source: str, loaded: int, dropped: list, heads) -> None:
    note = f"weights: loaded {loaded} tensors from {source}"
    if dropped:
        note += f"; dropped the old head's {len(dropped)} ({', '.join(dropped[:4])}{', ...' if len(dropped) > 4 else ''})"
    if heads:
        note += f"; new head: {', '.join(heads)}"
    say(note)


def load_weights_file(model: nn.Module, path: str, name: str = "the model") -> None:
    sd = read_state_dict(path)
    dropped = load_backbone(model, sd, path, name)
    report(path, len(sd) - len(dropped), dropped, getattr(model, "tudui_head", ()))
