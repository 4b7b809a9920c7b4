"""Models: the course's network, torchvision's zoo, and a user's own class, all behind `create()`."""
from __future__ import annotations

import importlib

import torch
from torch import nn

from ..errors import ConfigError
from .course import Tudui

# tudui's own models: name -> constructor(num_classes, in_channels, img_size, **args)
REGISTRY = {
    "tudui": Tudui,
}


def create(name: str, num_classes: int, in_channels: int = 3, img_size=None, **model_args) -> nn.Module:
    """Build a model by name: a tudui model, a torchvision model, or 'package.module:Class'."""
    if name in REGISTRY:
        try:
            return REGISTRY[name](num_classes=num_classes, in_channels=in_channels,
                                  img_size=img_size or 32, **model_args)
        except TypeError as e:
            raise ConfigError(f"model {name}: unknown model argument ({e}); see `tudui models`") from None
    if ":" in name and not name.startswith("timm:"):
        return _import_model(name, num_classes, in_channels, img_size, model_args)
    from .zoo import create_zoo
    return create_zoo(name, num_classes, in_channels=in_channels, img_size=img_size, **model_args)


def input_channels(name: str, native: int) -> int:
    """Channels the model is built for: tudui's own adapt to the data; zoo models take RGB."""
    if name in REGISTRY or (":" in name and not name.startswith("timm:")):
        return native
    return 3


def _import_model(path, num_classes, in_channels, img_size, model_args):
    mod_name, _, cls_name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(mod_name), cls_name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot import model '{path}': {e}") from None
    try:
        return cls(num_classes=num_classes, **model_args)
    except TypeError:
        return cls(**model_args)


def list_models() -> list:
    """[(name, parameter count for 10 classes)], counted on the meta device so listing stays fast."""
    from .zoo import zoo_names
    rows = []
    for name in list(REGISTRY) + zoo_names():
        with torch.device("meta"):
            try:
                m = create(name, 10, 3, 32 if name in REGISTRY else 224)
                rows.append((name, sum(p.numel() for p in m.parameters())))
            except Exception:
                rows.append((name, None))
    return rows


__all__ = ["create", "list_models", "REGISTRY", "Tudui", "input_channels"]
