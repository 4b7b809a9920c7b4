"""How the model runs on its device, decided once per run: mixed precision, channels_last, torch.compile,
and the data sample a model's data-dependent initialization sees."""
from __future__ import annotations

from typing import Optional

import torch

from .runlog import say
from .state import first_line


def _cpu_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_channels_last(cfg, model_spec: dict, device: torch.device) -> bool:
    """--channels-last / --no-channels-last, or by default: on for models built by name (tudui's, torchvision's,
    timm's) on a CPU for RGB images of 32 px or more, where oneDNN's convolutions are faster in that layout;
    off for a user's own module, which may reshape with .view() and need NCHW-contiguous tensors."""
    if cfg.channels_last is not None:
        return bool(cfg.channels_last)
    name = str(model_spec.get("name", ""))
    own = model_spec.get("user_module") or (":" in name and not name.startswith("timm:"))
    # tiny or single-channel inputs (digits: 1x8x8) ran several times slower per step in channels_last
    size = model_spec.get("img_size") or [0, 0]
    big_enough = model_spec.get("in_channels", 3) >= 3 and min(size) >= 32
    return device.type == "cpu" and not own and big_enough


def amp_dtype(kind: str, device: torch.device) -> Optional[torch.dtype]:
    """--amp bf16|fp16 -> autocast dtype, or None (fp32) with a notice where the device can't do it."""
    if kind == "none":
        return None
    dtype = torch.bfloat16 if kind == "bf16" else torch.float16
    if device.type == "cuda" and (kind == "fp16" or torch.cuda.is_bf16_supported()):
        return dtype
    if device.type == "cpu" and kind == "bf16" and _cpu_bf16():
        return dtype
    say(f"notice: --amp {kind} is not supported on this {device.type} device; training in fp32")
    return None


def compile_model(model):
    """torch.compile(model), or the model itself (with a notice) where compiling is not available."""
    try:
        return torch.compile(model)
    except Exception as e:
        say(f"notice: torch.compile is not available here ({first_line(e)}); training without it")
        return model


def data_init_sample(loader, n: int = 5000, seed: int = 0) -> torch.Tensor:
    """Up to n training images, un-augmented and normalized, for a model's `init_from_data`: taken from the
    in-memory tensor, or decoded from the split on the stream path."""
    from ..data.preprocess import normalize_batch
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(loader.n, generator=g)[:n]
    if loader.images is not None:
        x = loader.images[idx.to(loader.images.device)]
    else:
        pre = loader.pre
        x = torch.stack([loader.split.decode(int(i), pre["channels"], tuple(pre["size"])) for i in idx])
        x = x.to(loader.device)
    return normalize_batch(x, loader.mean, loader.std)
