"""Fine-tuning: the preprocessing preset of pretrained weights, and building the model the Trainer trains
(head marked, --freeze backbone applied: head.py) together with the spec a checkpoint needs to rebuild it."""
from __future__ import annotations

import dataclasses

from torch import nn

from ..console import say
from ..errors import ConfigError
from . import timm_models, zoo
from .factory import REGISTRY, create
from .head import freeze_backbone, mark_head
from .timm_models import PREFIX
from .weights import IMAGENET_MEAN, IMAGENET_STD, load_weights_file


def _kind(name: str) -> str:
    if name in REGISTRY:
        return "tudui"
    if name.startswith(PREFIX):
        return "timm"
    if ":" in name:
        return "user"
    return "zoo"


def weights_preset(name: str, pretrained: bool) -> dict:
    """{'img_size', 'mean', 'std'} that go with the weights: the pretrained weights' own preset, or ImageNet
    statistics (and the architecture's usual size) for a local file."""
    kind = _kind(name)
    if kind == "zoo":
        return zoo.preset(name, pretrained) if name in zoo.zoo_names() else {}
    if kind == "timm":
        return timm_models.preset(name[len(PREFIX):], pretrained)
    return {} if pretrained else {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}


def apply_preset(cfg):
    """With --pretrained or --weights, the weights' resize and normalization, unless the user set them."""
    if not (cfg.pretrained or cfg.weights):
        return cfg
    p = weights_preset(cfg.model, cfg.pretrained)
    changes = {}
    if cfg.img_size is None and p.get("img_size"):
        changes["img_size"] = int(p["img_size"])
    if cfg.mean is None and cfg.std is None and p.get("mean"):
        changes.update(mean=list(p["mean"]), std=list(p["std"]))
    if not changes:
        return cfg
    shown = ", ".join(f"{k} {v}" for k, v in changes.items())
    say(f"preprocessing follows the {'pretrained weights' if cfg.pretrained else 'ImageNet'} preset: {shown} "
        "(override with --img-size / --mean / --std)")
    return dataclasses.replace(cfg, **changes)


def build(cfg, num_classes: int, pre: dict, model: nn.Module = None, load_weights: bool = True) -> tuple:
    """The model to train and its spec {name, args, num_classes, in_channels, img_size[, user_module]}:
    built by name (with --pretrained / --weights) or the user's own module; then the head is marked and,
    with --freeze backbone, everything else frozen. load_weights=False skips weights (resuming a run)."""
    size = tuple(pre["size"])
    if model is None:
        name = cfg.model
        model = create(name, num_classes, in_channels=pre["channels"], img_size=size,
                       pretrained=cfg.pretrained and load_weights, weights=cfg.weights if load_weights else None,
                       **cfg.model_args)
        args = {**cfg.model_args, **getattr(model, "tudui_build_args", {})}
        user = _kind(name) == "user"
    else:
        if cfg.pretrained:
            raise ConfigError("--pretrained needs a model by name; for your own module load weights yourself "
                              "or pass --weights FILE")
        cls = type(model)
        name, args, user = f"{cls.__module__}:{cls.__qualname__}", dict(cfg.model_args), True
        mark_head(model)
        if cfg.weights and load_weights:
            load_weights_file(model, cfg.weights, name)
    spec = {"name": name, "args": args, "num_classes": num_classes, "in_channels": pre["channels"],
            "img_size": list(size)}
    if user:
        spec["user_module"] = True
    mark_head(model)
    if cfg.freeze == "backbone":
        total = sum(p.numel() for p in model.parameters())
        trainable = freeze_backbone(model)
        if not (cfg.pretrained or cfg.weights):
            say("notice: --freeze backbone without --pretrained or --weights trains only the head on a random backbone")
        say(f"freeze backbone: training {trainable:,} of {total:,} parameters (head: {', '.join(model.tudui_head)}); "
            "its BatchNorm layers stay in eval mode")
    return model, spec
