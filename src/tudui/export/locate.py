"""Which layer stops an export: export each submodule alone, on the input it received in an eager pass, and
follow the first one that fails down to the smallest failing module."""
from __future__ import annotations

import time

import torch
from torch import nn


def record_inputs(net: nn.Module, example: torch.Tensor) -> dict:
    """module -> the single tensor it was first called with (modules called otherwise are not recorded)."""
    seen: dict = {}

    def hook(mod, args, kwargs):
        if mod not in seen and not kwargs and len(args) == 1 and isinstance(args[0], torch.Tensor):
            seen[mod] = args[0].detach()

    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in net.modules()]
    try:
        with torch.no_grad():
            net(example)
    except Exception:  # noqa: BLE001 - the model failing eagerly too is reported by the caller's error
        pass
    finally:
        for h in handles:
            h.remove()
    return seen


def failing_layer(net: nn.Module, example: torch.Tensor, try_export, budget_s: float = 120.0,
                  max_tries: int = 40):
    """-> (qualified name, module, error) of the innermost module whose own export fails, or None when no
    submodule fails alone (the model's own forward is then the cause). try_export(module, x) -> exception|None."""
    inputs = record_inputs(net, example)
    deadline = time.monotonic() + budget_s
    tries = 0

    def search(mod, prefix):
        nonlocal tries
        for name, child in mod.named_children():
            if child not in inputs or tries >= max_tries or time.monotonic() > deadline:
                continue
            tries += 1
            err = try_export(child, inputs[child])
            if err is not None:
                qual = f"{prefix}{name}"
                return search(child, qual + ".") or (qual, child, err)
        return None

    return search(net, "")
