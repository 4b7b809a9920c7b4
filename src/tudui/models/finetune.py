"""Fine-tuning: which parameters form a model's head, freezing the backbone (feature extraction, as in the
PyTorch transfer-learning tutorial), the preprocessing preset of pretrained weights, and building the model
the Trainer trains together with the spec a checkpoint needs to rebuild it."""
from __future__ import annotations

import dataclasses

from torch import nn

from ..errors import ConfigError
from .weights import IMAGENET_MEAN, IMAGENET_STD, say


def head_modules(model: nn.Module) -> tuple:
    """Module names of the head: what a zoo/timm model recorded, else the model's last nn.Linear
    (the course network's, or a user's). A user model may set `tudui_head = ('name', ...)` itself."""
    heads = getattr(model, "tudui_head", None)
    if heads:
        return (heads,) if isinstance(heads, str) else tuple(heads)
    last = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = name
    return (last,) if last is not None else ()


def mark_head(model: nn.Module) -> tuple:
    """Record the head on the model: tudui_head (module names) and tudui_head_params (parameter names,
    which --backbone-lr uses to tell head from backbone)."""
    heads = head_modules(model)
    model.tudui_head = heads
    model.tudui_head_params = frozenset(f"{h}.{p}" if h else p for h in heads
                                        for p, _ in model.get_submodule(h).named_parameters())
    return heads


def _stay_in_eval(module: nn.Module, args) -> None:
    # forward pre-hook: a frozen backbone's BatchNorm keeps using (and never updates) its running statistics,
    # whatever model.train() did
    module.training = False


def freeze_backbone(model: nn.Module) -> int:
    """Train only the head: every other parameter stops requiring gradients and every BatchNorm outside the
    head stays in eval mode. Returns the number of trainable parameters left."""
    heads = mark_head(model)
    if not heads:
        raise ConfigError(f"--freeze backbone: cannot tell the head of {type(model).__name__} (it has no nn.Linear); "
                          "set model.tudui_head = ('module_name',)")
    head_params = model.tudui_head_params
    trainable = 0
    for name, p in model.named_parameters():
        p.requires_grad_(name in head_params)
        trainable += p.numel() if name in head_params else 0
    for name, m in model.named_modules():
        in_head = any(name == h or name.startswith(h + ".") for h in heads)
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not in_head and not getattr(m, "_tudui_frozen", False):
            m.register_forward_pre_hook(_stay_in_eval)
            m._tudui_frozen = True
            m.eval()
    return trainable


def _kind(name: str) -> str:
    from . import REGISTRY
    from .timm_models import PREFIX
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
        from .zoo import preset, zoo_names
        return preset(name, pretrained) if name in zoo_names() else {}
    if kind == "timm":
        from .timm_models import PREFIX, preset
        return preset(name[len(PREFIX):], pretrained)
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
    from . import create

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
            from .weights import load_weights_file
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
