"""Reading the images people actually have: any mode (L, P, RGBA, CMYK, 16-bit), EXIF rotation, any size.

And surviving the ones they should not have: every failure to read a file (truncated, not an image, a
dangling symlink or a loop, a FIFO, no permission, a decoder error of any kind) is an UnreadableImage naming
the file and the reason. Decompression bombs are refused from the header, before any pixel is decoded: an
image over Pillow's `Image.MAX_IMAGE_PIXELS` (89.5 million pixels unless changed) is an error, not a warning.
"""
from __future__ import annotations

import os
import stat
import threading
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def is_image_file(path: str) -> bool:
    name = os.path.basename(path)
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


class UnreadableImage(DataError):
    """An image file that cannot be read; `.path` and `.reason` (one short line)."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"cannot read image {path}: {reason}")


def _why(e: BaseException, path: str = "") -> str:
    msg = str(e)
    if path:  # the file is named once, in front of the reason
        msg = msg.replace(repr(path), "").replace(path, "")
    msg = " ".join(msg.split()).strip(" :")
    return (f"{type(e).__name__}: {msg}" if msg else type(e).__name__)[:200]


def check_file(path: str) -> None:
    """Cheap checks before opening: exists, is a regular file (a FIFO would block), not a broken link."""
    try:
        st = os.stat(path)
    except OSError as e:
        if os.path.islink(path):
            raise UnreadableImage(path, "a symlink to nothing (dangling, or a loop)") from None
        if isinstance(e, FileNotFoundError):
            raise DataError(f"image not found: {path}") from None
        raise UnreadableImage(path, _why(e, path)) from None
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableImage(path, "not a regular file")
    if st.st_size == 0:
        raise UnreadableImage(path, "empty file (0 bytes)")


def check_pixels(path: str, im: Image.Image) -> None:
    """A header claiming more pixels than Pillow's limit: refused before decoding (a decompression bomb)."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and im.width * im.height > limit:
        raise UnreadableImage(path, f"{im.width} x {im.height} pixels is over the {limit:,}-pixel limit "
                                    "(a decompression bomb?); raise PIL.Image.MAX_IMAGE_PIXELS to allow it")


_FILTER_LOCK = threading.Lock()  # warning filters are process-wide: one header parse changes them at a time


def open_header(path, name: str) -> Image.Image:
    """Image.open (the header only, no pixel decoded). An image between Pillow's limit and twice it makes
    Image.open *warn* (DecompressionBombWarning) before check_pixels could refuse it: here that warning is an
    UnreadableImage like any refused file, and no raw Python warning reaches the user's terminal."""
    with _FILTER_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(path)
        except Image.DecompressionBombWarning:
            raise UnreadableImage(name, f"over the {Image.MAX_IMAGE_PIXELS:,}-pixel limit (a decompression "
                                        "bomb?); raise PIL.Image.MAX_IMAGE_PIXELS to allow it") from None
    try:
        check_pixels(name, im)
    except UnreadableImage:
        im.close()
        raise
    return im


def open_image(path) -> Image.Image:
    """Open and fully decode an image (a path, or a binary file object such as an upload), with EXIF
    orientation applied. Raises DataError naming the file (a file object's `name`, if it has one):
    UnreadableImage with the reason when it exists but cannot be read."""
    is_path = isinstance(path, (str, os.PathLike))
    name = os.fspath(path) if is_path else str(getattr(path, "name", "the upload"))
    if is_path:
        check_file(name)
    try:
        with open_header(path, name) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            return im.copy() if im is not None else im
    except DataError:
        raise
    except MemoryError:
        raise UnreadableImage(name, "out of memory while decoding") from None
    except Exception as e:  # a decoder fed a hostile file may raise anything; it is that file's problem
        raise UnreadableImage(name, _why(e, name)) from None


def failure_reason(e: BaseException) -> str:
    """Why an image could not be read, in one short line (the file is named elsewhere)."""
    return e.reason if isinstance(e, UnreadableImage) else _why(e)


def describe_failure(what: str, e: BaseException) -> str:
    """'<what>: <reason>' for the lists of unreadable files."""
    return f"{what}: {failure_reason(e)}"


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
