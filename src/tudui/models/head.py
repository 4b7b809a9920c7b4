"""A model's head: which modules and parameters form it (marked on the model when it is built), and freezing
everything else (--freeze backbone; feature extraction, as in the PyTorch transfer-learning tutorial)."""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError


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
