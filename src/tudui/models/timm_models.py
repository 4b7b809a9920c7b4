"""Optional: timm's models as `timm:<name>` (pip install 'tudui[timm]'), with a head of the class count,
the same freezing and the same fast-failing pretrained download as torchvision's models."""
from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import ConfigError, TuduiError
from .meta import input_error
from .weights import IMAGENET_MEAN, IMAGENET_STD, READ_TIMEOUT, reachable, say

PREFIX = "timm:"


def _timm():
    try:
        import timm  # optional dependency: timm (extra: timm)
    except ImportError:
        raise ConfigError("timm:<name> models need timm: pip install 'tudui[timm]'") from None
    return timm


def _pretrained_cfg(name: str):
    timm = _timm()
    if not timm.is_model(name):
        raise ConfigError(f"unknown timm model '{name}'; list them with: python -c \"import timm; "
                          f"print(timm.list_models('*{name.split('.')[0][:6]}*'))\"")
    return timm.get_pretrained_cfg(name)


def preset(name: str, pretrained: bool) -> dict:
    cfg = _pretrained_cfg(name)
    if cfg is None:
        return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    out = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    h, w = cfg.input_size[1:]
    if h == w:
        out["img_size"] = int(h)
    if pretrained:
        out.update(mean=[float(m) for m in cfg.mean], std=[float(s) for s in cfg.std])
    return out


def create_timm(name: str, num_classes: int, in_channels: int = 3, img_size=None, pretrained: bool = False,
                **kwargs) -> nn.Module:
    timm = _timm()
    cfg = _pretrained_cfg(name)
    size = (img_size, img_size) if isinstance(img_size, int) else (tuple(img_size) if img_size else None)
    if size and cfg is not None and cfg.fixed_input_size:
        kwargs.setdefault("img_size", size)  # ViT-style models are built for one image size
    kwargs.setdefault("in_chans", in_channels)
    try:
        if pretrained:
            model = _create_pretrained(timm, name, cfg, num_classes, kwargs)
        else:
            model = timm.create_model(name, num_classes=num_classes, **kwargs)
    except TypeError as e:
        raise ConfigError(f"model timm:{name}: unknown model argument ({e})") from None
    except (ValueError, AssertionError) as e:
        raise ConfigError(f"model timm:{name}: {str(e).splitlines()[0]}") from None
    heads = model.pretrained_cfg.get("classifier") or ()
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    modules = dict(model.named_modules())
    model.tudui_head = tuple(h for h in heads if h in modules and any(True for _ in modules[h].parameters()))
    model.tudui_head_params = frozenset(f"{h}.{p}" for h in model.tudui_head for p, _ in modules[h].named_parameters())
    if pretrained:
        say(f"weights: timm's pretrained {name}; new head: {', '.join(model.tudui_head)} ({num_classes} classes)")
    if size:
        err = input_error(model, in_channels, size)
        if err:
            raise ConfigError(f"model timm:{name} cannot run on {size[0]}x{size[1]} images ({err}); "
                              "use a larger --img-size")
    return model


def _create_pretrained(timm, name, cfg, num_classes, kwargs):
    """timm loads and drops the old classifier itself; we only make sure the file is cached or the host
    answers, so an offline machine fails within seconds instead of hanging."""
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ConfigError(f"timm has no pretrained weights for {name}")
    cached = _cached_file(cfg)
    if cached:
        return timm.create_model(name, pretrained=True, num_classes=num_classes,
                                 pretrained_cfg_overlay={"file": cached}, **kwargs)
    url = f"https://huggingface.co/{cfg.hf_hub_id}" if cfg.hf_hub_id else cfg.url
    host = urlparse(url).hostname
    why = reachable(host)
    if why is None:
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(READ_TIMEOUT)
        try:
            return timm.create_model(name, pretrained=True, num_classes=num_classes, **kwargs)
        except (OSError, RuntimeError) as e:
            why = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        finally:
            socket.setdefaulttimeout(old)
    raise TuduiError(f"cannot download timm's pretrained weights for {name} from {host} ({why}); download them "
                     f"from {url} on a machine with internet and pass the file with --weights FILE")


def _cached_file(cfg):
    if cfg.hf_hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache  # optional dependency: huggingface_hub (with timm)
        except ImportError:
            return None
        for fn in filter(None, (cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin")):
            p = try_to_load_from_cache(cfg.hf_hub_id, fn)
            if isinstance(p, str) and os.path.isfile(p):
                return p
    if cfg.url:
        p = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(cfg.url).path))
        if os.path.isfile(p):
            return p
    return None
