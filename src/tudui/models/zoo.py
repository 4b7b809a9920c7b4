"""torchvision's classification models by name, with a new classifier head for the class count.

Every other parameter name (state_dict key) stays torchvision's, so torchvision's weight files load as they
are. The head is the model's last Linear (VGG's classifier.6, ResNet's fc, MobileNet's and EfficientNet's
classifier[-1], ConvNeXt's classifier.2, ViT's heads.head, ...) or, for SqueezeNet, its final 1x1 conv.
"""
from __future__ import annotations

import difflib
from typing import Optional

from torch import nn

from ..errors import ConfigError
from .meta import input_error
from .weights import IMAGENET_MEAN, IMAGENET_STD, fetch, load_backbone, report
from .weights import read_state_dict

_NAMES: Optional[list] = None


def zoo_names() -> list:
    global _NAMES
    if _NAMES is None:
        import torchvision.models as tvm  # import-time cost: torchvision takes seconds to import
        _NAMES = sorted(tvm.list_models(module=tvm))
    return _NAMES


def default_weights(name: str):
    import torchvision.models as tvm  # import-time cost: torchvision takes seconds to import
    try:
        return tvm.get_model_weights(name).DEFAULT
    except (ValueError, AttributeError):
        return None


def preset(name: str, pretrained: bool) -> dict:
    """Resize and normalization of torchvision's weights for `name` (ImageNet statistics for a local file)."""
    w = default_weights(name)
    if w is None:
        return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    t = w.transforms()
    out = {"img_size": int(t.crop_size[0]), "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    if pretrained:
        out.update(mean=[float(m) for m in t.mean], std=[float(s) for s in t.std])
    return out


def _hw(img_size) -> Optional[tuple]:
    if img_size is None:
        return None
    if isinstance(img_size, int):
        return (img_size, img_size)
    return (int(img_size[0]), int(img_size[1]))


def create_zoo(name: str, num_classes: int, in_channels: int = 3, img_size=None, pretrained: bool = False,
               **kwargs) -> nn.Module:
    import torchvision.models as tvm  # import-time cost: torchvision takes seconds to import

    if name not in zoo_names():
        close = difflib.get_close_matches(name, zoo_names(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown model '{name}'{hint}; run `tudui models` to list them")
    if in_channels != 3:
        raise ConfigError(f"torchvision's {name} takes RGB (3-channel) images, got in_channels={in_channels}; "
                          "tudui converts grayscale data to RGB for these models")
    size = _hw(img_size)
    kwargs, build_args = _builder_args(name, size, pretrained, dict(kwargs))
    try:
        model = tvm.get_model(name, weights=None, **kwargs)
    except TypeError as e:
        raise ConfigError(f"model {name}: unknown model argument ({e})") from None
    except (ValueError, AssertionError) as e:  # builders that take the image size reject ones they can't use
        if size and name.startswith(("vit_", "maxvit_")):
            raise _too_small(name, size, str(e).splitlines()[0]) from None
        raise ConfigError(f"model {name}: {str(e).splitlines()[0]}") from None
    replace_head(model, num_classes)
    if size:
        err = input_error(model, 3, size)
        if err:
            raise _too_small(name, size, err)
    if pretrained:
        w = default_weights(name)
        if w is None:
            raise ConfigError(f"torchvision has no pretrained weights for {name}")
        path = fetch(w.url, f"torchvision's pretrained weights for {name}")
        sd = read_state_dict(path)
        try:
            dropped = load_backbone(model, sd, f"torchvision's {name} weights ({path})", name)
        except ConfigError as e:
            crop = int(w.transforms().crop_size[0])
            if size and name.startswith(("vit_", "maxvit_")) and size != (crop, crop):
                raise ConfigError(f"{e} (its pretrained weights are for {crop}x{crop} images: use --img-size {crop})") from None
            raise
        report(f"torchvision's {w} weights", len(sd) - len(dropped), dropped, model.tudui_head)
    model.tudui_build_args = build_args
    return model


def _builder_args(name: str, size, pretrained: bool, kwargs: dict) -> tuple:
    """-> (arguments for torchvision's builder, the ones a checkpoint must record to rebuild the model)."""
    build_args = {}
    if name in ("googlenet", "inception_v3"):
        if kwargs.get("aux_logits"):
            raise ConfigError(f"model {name}: aux_logits=true is not supported (training uses the main output only)")
        kwargs["aux_logits"] = False
        kwargs.setdefault("init_weights", True)  # torchvision warns when it is left unset
        if pretrained and "transform_input" not in kwargs:
            # torchvision's weights for these expect its input re-normalization, as its own builders set it
            kwargs["transform_input"] = build_args["transform_input"] = True
    if size and name.startswith("vit_"):
        patch = int(name.rsplit("_", 1)[1])
        if size[0] != size[1] or size[0] % patch:
            good = max(patch, round(size[0] / patch) * patch)
            raise ConfigError(f"model {name} cuts square images into {patch}x{patch} patches: use an --img-size "
                              f"that is a multiple of {patch} (e.g. {good}), got {size[0]}x{size[1]}")
        kwargs.setdefault("image_size", size[0])
    if size and name.startswith("maxvit_"):
        kwargs.setdefault("input_size", size)
    return kwargs, build_args


def _too_small(name: str, size, err: str) -> ConfigError:
    w = default_weights(name)
    need = None
    if w is not None:
        min_size = int(max(w.meta.get("min_size", (1, 1))))
        need = min_size if min_size > min(size) else int(w.transforms().crop_size[0])
    advice = f"use --img-size {need} or another size it supports" if need else "use a larger --img-size"
    return ConfigError(f"model {name} cannot run on {size[0]}x{size[1]} images ({err}); {advice}")


def replace_head(model: nn.Module, num_classes: int) -> str:
    """Swap the classifier head for a fresh one of width num_classes, under the same name; records the head's
    module and parameter names on the model (tudui_head, tudui_head_params) for freezing and --backbone-lr."""
    last = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = name
    if last is None:  # SqueezeNet classifies with a final 1x1 convolution
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1):
                last = name
    if last is None:
        raise ConfigError(f"cannot find a classifier head (Linear) in {type(model).__name__}")
    old = model.get_submodule(last)
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    else:
        new = nn.Conv2d(old.in_channels, num_classes, 1, bias=old.bias is not None)
    parent_name, _, attr = last.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)
    model.tudui_head = (last,)
    model.tudui_head_params = frozenset(f"{last}.{p}" for p, _ in new.named_parameters())
    return last
