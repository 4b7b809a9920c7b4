"""Shape-only work on the meta device: parameter counts and input-size checks that allocate no weights
and compute nothing, so `tudui models` and the "is this image size big enough?" check stay fast."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Optional

import torch
from torch import nn

_lock = threading.Lock()


@contextmanager
def params_on_meta():
    """Build modules whose parameters and buffers live on the meta device.

    Unlike `with torch.device("meta")`, ordinary tensors created while building stay real, so builders that
    compute with tensors (RegNet derives its widths with torch ops and `.item()`) still work. Initialization
    then runs on meta tensors, which costs nothing."""
    orig_param, orig_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def register_parameter(self, name, param):
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        orig_param(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        orig_buffer(self, name, tensor.to("meta") if tensor is not None else None, persistent)

    with _lock:
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer
        try:
            yield
        finally:
            nn.Module.register_parameter, nn.Module.register_buffer = orig_param, orig_buffer


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def input_error(model: nn.Module, channels: int, size) -> Optional[str]:
    """None when `model` runs on a batch of (channels, H, W) images, else the first line of the error.

    The forward pass runs on meta copies of the weights (shapes only), in eval mode so that BatchNorm
    accepts a batch of one; the model's own weights and mode are left as they were."""
    from torch.func import functional_call  # import-time cost: only for meta-device shape checks

    state = {k: v.to("meta") for k, v in model.named_parameters()}
    state.update({k: v.to("meta") for k, v in model.named_buffers()})
    x = torch.empty(1, channels, int(size[0]), int(size[1]), device="meta")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            functional_call(model, state, (x,), strict=False)
        return None
    except (RuntimeError, ValueError, AssertionError, IndexError) as e:
        lines = str(e).strip().splitlines()
        return (lines[0] if lines else type(e).__name__)[:160]
    finally:
        model.train(was_training)
