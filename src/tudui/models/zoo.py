"""torchvision's classification models by name, with a new classifier head for the class count."""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError


def zoo_names() -> list:
    import torchvision.models as tvm
    return sorted(tvm.list_models(module=tvm))


def create_zoo(name: str, num_classes: int, in_channels: int = 3, img_size=None, **kwargs) -> nn.Module:
    import torchvision.models as tvm

    if name not in zoo_names():
        raise ConfigError(f"unknown model '{name}'; run `tudui models` to list them")
    try:
        model = tvm.get_model(name, weights=None, **kwargs)
    except TypeError as e:
        raise ConfigError(f"model {name}: {e}") from None
    replace_head(model, num_classes)
    return model


def replace_head(model: nn.Module, num_classes: int) -> str:
    """Swap the last Linear (or SqueezeNet's final 1x1 conv) for one of width num_classes; keeps the key names."""
    last = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = name
    if last is None:
        raise ConfigError(f"cannot find a Linear classifier head in {type(model).__name__}")
    old = model.get_submodule(last)
    parent_name, _, attr = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, nn.Linear(old.in_features, num_classes, bias=old.bias is not None))
    return last
