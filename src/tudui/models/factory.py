"""create(name, ...): the course's network, torchvision's zoo, timm, and a user's own class, by name."""
from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Optional

from torch import nn

from ..errors import ConfigError
from .course import Tudui
from .fastnet import FastNet
from .head import mark_head
from .meta import count_params, params_on_meta
from .timm_models import PREFIX, create_timm
from .weights import load_weights_file
from .zoo import create_zoo, zoo_names

# tudui's own models: name -> constructor(num_classes, in_channels, img_size, **args)
REGISTRY = {
    "tudui": Tudui,
    "fastnet": FastNet,
}


def create(name: str, num_classes: int, in_channels: int = 3, img_size=None, *, pretrained: bool = False,
           weights: Optional[str] = None, **model_args) -> nn.Module:
    """Build a model by name: a tudui model ('tudui'), a torchvision model ('resnet18'), 'timm:<name>', or
    'package.module:Class'. pretrained: start from torchvision's (or timm's) weights; weights: a local
    state_dict / safetensors file for everything but the new head. The head is recorded on the model
    (tudui_head, tudui_head_params) for freezing and --backbone-lr."""
    if pretrained and (name in REGISTRY or (":" in name and not name.startswith(PREFIX))):
        raise ConfigError(f"--pretrained: there are no downloadable weights for '{name}'; "
                          "use a torchvision or timm:<name> model, or pass --weights FILE")
    if name in REGISTRY:
        model = _create_own(name, num_classes, in_channels, img_size, model_args)
    elif name.startswith(PREFIX):
        model = create_timm(name[len(PREFIX):], num_classes, in_channels=in_channels, img_size=img_size,
                            pretrained=pretrained, **model_args)
    elif ":" in name:
        model = _import_model(name, num_classes, in_channels, img_size, model_args)
    else:
        model = create_zoo(name, num_classes, in_channels=in_channels, img_size=img_size, pretrained=pretrained,
                           **model_args)
    mark_head(model)
    if weights:
        load_weights_file(model, weights, name)
    return model


def _create_own(name, num_classes, in_channels, img_size, model_args):
    cls = REGISTRY[name]
    known = [k for k in inspect.signature(cls).parameters if k not in ("self", "num_classes", "in_channels", "img_size")]
    unknown = [k for k in model_args if k not in known]
    if unknown:
        raise ConfigError(f"model {name} has no argument '{unknown[0]}'; its arguments: {', '.join(known)}")
    return cls(num_classes=num_classes, in_channels=in_channels, img_size=img_size or 32, **model_args)


def input_channels(name: str, native: int) -> int:
    """Channels the model is built for: tudui's own and a user's class adapt to the data; torchvision and
    timm models take RGB, so grayscale data is converted for them."""
    if name in REGISTRY or (":" in name and not name.startswith("timm:")):
        return native
    return 3


def _import_model(path, num_classes, in_channels, img_size, model_args):
    """'package.module:Class' -> Class(num_classes=..., [in_channels=..., img_size=...,] **model_args): each of
    those three is passed when the constructor names it (num_classes also to one taking **kwargs)."""
    mod_name, _, cls_name = path.partition(":")
    try:
        try:
            obj = importlib.import_module(mod_name)
        except ModuleNotFoundError:
            if os.getcwd() in sys.path:
                raise
            sys.path.insert(0, os.getcwd())  # `tudui train --model mynet:MyNet` run next to mynet.py
            obj = importlib.import_module(mod_name)
        for part in cls_name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot import model '{path}': {e}") from None
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        params = {}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    offered = {"num_classes": num_classes, "in_channels": in_channels, "img_size": img_size}
    kwargs = {k: v for k, v in offered.items() if k not in model_args and (k in params or (var_kw and k == "num_classes"))}
    try:
        model = obj(**kwargs, **model_args)
    except TypeError as e:
        raise ConfigError(f"cannot build model '{path}': {e}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model '{path}' did not build an nn.Module (got {type(model).__name__})")
    return model


def list_models(pattern: Optional[str] = None) -> list:
    """[(name, parameter count for 10 classes)] of tudui's and torchvision's models whose name contains
    `pattern`; built on the meta device (no weights allocated), so listing stays fast."""
    rows = []
    for name in list(REGISTRY) + zoo_names():
        if pattern and pattern.lower() not in name.lower():
            continue
        try:
            with params_on_meta():
                m = create(name, 10, 3, 32 if name in REGISTRY else None)
            rows.append((name, count_params(m)))
        except Exception:
            rows.append((name, None))
    return rows
