"""Reading the images people actually have: any mode (L, P, RGBA, CMYK, 16-bit), EXIF rotation, any size."""
from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def is_image_file(path: str) -> bool:
    name = os.path.basename(path)
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def open_image(path) -> Image.Image:
    """Open and fully decode an image (a path, or a binary file object such as an upload), with EXIF
    orientation applied. Raises DataError naming the file (a file object's `name`, if it has one)."""
    is_path = isinstance(path, (str, os.PathLike))
    if is_path and not os.path.exists(path):
        raise DataError(f"image not found: {path}")
    name = os.fspath(path) if is_path else getattr(path, "name", "the upload")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            return im.copy() if im is not None else im
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {name}: {e}") from None


def to_mode(im: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL mode to RGB (channels=3) or L (channels=1); transparency is composited on white."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0, 0, 255).round().astype(np.uint8)
        im = Image.fromarray(arr, mode="L")
        mode = "L"
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "RGB" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba).convert("RGB")
        mode = "RGB"
    target = "RGB" if channels == 3 else "L"
    return im if mode == target else im.convert(target)


def pil_to_uint8(im: Image.Image, channels: int, size: tuple | None) -> torch.Tensor:
    """PIL image -> uint8 tensor (C, H, W) in the given channels, resized (stretched) to size=(H, W)."""
    im = to_mode(im, channels)
    if size is not None and (im.height, im.width) != tuple(size):
        im = im.resize((size[1], size[0]), Image.BILINEAR)
    arr = np.array(im, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def tensor_to_uint8(x: torch.Tensor, channels: int, size: tuple | None) -> torch.Tensor:
    """A user's tensor image (C,H,W or H,W; float 0-1 or uint8) -> uint8 (channels, H, W)."""
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise DataError(f"expected an image tensor of shape (C, H, W), got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        x = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
    if x.shape[0] == 4:
        x = x[:3]
    if x.shape[0] != channels:
        x = x.float().mean(0, keepdim=True).round().to(torch.uint8) if channels == 1 else x.expand(3, -1, -1)
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = torch.nn.functional.interpolate(x[None].float(), size=tuple(size), mode="bilinear",
                                            antialias=True, align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
    return x.contiguous()
