"""Preprocessing as a value: a plain dict that is stored in every checkpoint, so `predict` applies exactly
what training applied. The default pipeline is the course's `Resize((H, W))` -> `ToTensor()` -> `Normalize`.
Users can instead give torchvision transforms by name in the config (`transforms: {train: [...], eval: [...]}`).
"""
from __future__ import annotations

from typing import Optional

import torch
from PIL import Image

from ..errors import ConfigError
from .images import pil_to_uint8, to_mode


def make_preprocess(size, channels: int, mean, std, eval_transforms: Optional[list] = None) -> dict:
    size = [int(size[0]), int(size[1])]
    mean = [float(m) for m in mean]
    std = [float(s) for s in std]
    if len(mean) != channels or len(std) != channels:
        if len(mean) == 1 and len(std) == 1:
            mean, std = mean * channels, std * channels
        elif channels == 1 and len(mean) == 3:
            mean, std = [sum(mean) / 3], [sum(std) / 3]
        else:
            raise ConfigError(f"mean/std need {channels} values for {channels}-channel images, got {len(mean)}/{len(std)}")
    spec = eval_transforms or [
        {"name": "Resize", "size": size},
        {"name": "ToTensor"},
        {"name": "Normalize", "mean": mean, "std": std},
    ]
    return {"size": size, "channels": int(channels), "mean": mean, "std": std,
            "custom": eval_transforms is not None, "eval_transforms": spec}


def normalize_batch(x_uint8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                    dtype=torch.float32) -> torch.Tensor:
    """uint8 (B, C, H, W) -> normalized float: (x/255 - mean)/std as x * scale + shift. In place on the
    converted copy: on CPU that is ~2.5x faster than one broadcasting addcmul. Keeps x's memory format."""
    scale = (1.0 / (255.0 * std)).view(1, -1, 1, 1).to(dtype)
    shift = (-mean / std).view(1, -1, 1, 1).to(dtype)
    return x_uint8.to(dtype, copy=True).mul_(scale).add_(shift)


def stats_tensors(pre: dict, device) -> tuple:
    return (torch.tensor(pre["mean"], dtype=torch.float32, device=device),
            torch.tensor(pre["std"], dtype=torch.float32, device=device))


def preprocess_image(img: Image.Image, pre: dict) -> torch.Tensor:
    """One PIL image -> the float tensor (C, H, W) the model was trained on."""
    if pre.get("custom"):
        tf = build_transforms(pre["eval_transforms"])
        out = tf(to_mode(img, pre["channels"]))
        if not isinstance(out, torch.Tensor):
            raise ConfigError("the eval transforms must end with ToTensor (or produce a tensor)")
        return out
    x = pil_to_uint8(img, pre["channels"], tuple(pre["size"]))
    mean, std = stats_tensors(pre, "cpu")
    return normalize_batch(x[None], mean, std)[0]


# torchvision transforms a config may name (the course's, plus the common augmentations)
ALLOWED_TRANSFORMS = (
    "Resize", "CenterCrop", "RandomCrop", "RandomResizedCrop", "RandomHorizontalFlip", "RandomVerticalFlip",
    "RandomRotation", "ColorJitter", "Grayscale", "RandomGrayscale", "Pad", "ToTensor", "Normalize",
    "RandomErasing", "TrivialAugmentWide", "RandAugment", "AutoAugment", "GaussianBlur", "RandomAffine",
    "RandomPerspective", "RandomAutocontrast", "RandomEqualize",
)


def _parse_item(item):
    if isinstance(item, str):
        return item, {}
    if isinstance(item, dict):
        if "name" in item:
            args = {k: v for k, v in item.items() if k != "name"}
            return item["name"], args
        if len(item) == 1:
            name, args = next(iter(item.items()))
            return name, dict(args or {})
    raise ConfigError(f"a transform must be a name or {{name: ..., args}}, got {item!r}")


def build_transforms(spec: list):
    """[{'name': 'Resize', 'size': [32, 32]}, 'ToTensor', ...] -> torchvision Compose."""
    import torchvision.transforms as T  # import-time cost: torchvision takes seconds to import

    if not isinstance(spec, list):
        raise ConfigError("transforms must be a list")
    steps = []
    for item in spec:
        name, args = _parse_item(item)
        if name not in ALLOWED_TRANSFORMS:
            raise ConfigError(f"unknown transform '{name}'; allowed: {', '.join(ALLOWED_TRANSFORMS)}")
        args = {k: (tuple(v) if isinstance(v, list) else v) for k, v in args.items()}
        try:
            steps.append(getattr(T, name)(**args))
        except TypeError as e:
            raise ConfigError(f"transform {name}: {e}") from None
    return T.Compose(steps)
