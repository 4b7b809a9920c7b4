"""Image grids drawn with matplotlib (Agg): `tudui preview`'s labelled samples (pixel-exact tiles), and the
report's grids of predictions with their Grad-CAM overlays."""
from __future__ import annotations

import math
import warnings
from typing import Optional

import numpy as np
from matplotlib.figure import Figure

from .figures import text
from .fonts import context, using_fonts


def _hwc(img) -> np.ndarray:
    """uint8 (C, H, W) tensor or array -> (H, W, 3) uint8 array."""
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    elif a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] in (1, 3, 4) and a.shape[0] < a.shape[-1]:
        a = a.transpose(1, 2, 0)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.ascontiguousarray(a[..., :3])


@using_fonts
def tile_grid(x, labels: list, cols: int = 8, tile: int = 96, pad: int = 4, caption_px: int = 16) -> Figure:
    """uint8 (N, C, H, W) + one caption each -> a Figure of the samples, each upscaled by an integer factor
    (nearest neighbour, so pixels stay visible) to at least `tile` px, placed pixel-exactly with its caption
    under it. Save it at dpi=100 to get exactly the computed size."""
    n, _, h, w = x.shape
    scale = max(1, math.ceil(tile / max(h, w)))
    th, tw = h * scale, w * scale
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    W, H = cols * (tw + pad) + pad, rows * (th + caption_px + pad) + pad
    fig = Figure(figsize=((W + 0.5) / 100, (H + 0.5) / 100), dpi=100, facecolor="white")
    max_chars = max(1, tw // 7)
    for k in range(n):
        a = _hwc(x[k]).repeat(scale, 0).repeat(scale, 1)
        r, q = divmod(k, cols)
        x0, y0 = pad + q * (tw + pad), pad + r * (th + caption_px + pad)
        fig.figimage(a, xo=x0, yo=H - y0 - th, origin="upper")
        label = str(labels[k])
        label = label if len(label) <= max_chars else label[:max_chars - 1] + "…"
        fig.text(x0 / W, 1 - (y0 + th + 1) / H, text(label), fontsize=8.5, va="top", ha="left")
    return fig


def to_array(fig: Figure, dpi: int = 100) -> np.ndarray:
    """The figure rendered to an (H, W, 3) uint8 array (for TensorBoard)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # import-time cost: matplotlib
    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    with warnings.catch_warnings(), context():
        warnings.simplefilter("ignore")
        canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def overlay(img, cam, alpha: float = 0.5) -> np.ndarray:
    """The image with a heatmap (values in [0, 1], same H x W) blended over it, as (H, W, 3) uint8."""
    from matplotlib import colormaps  # import-time cost: matplotlib
    base = _hwc(img).astype(np.float32) / 255
    heat = colormaps["jet"](np.clip(np.asarray(cam, dtype=np.float32), 0, 1))[..., :3]
    return (np.clip((1 - alpha) * base + alpha * heat, 0, 1) * 255).round().astype(np.uint8)


@using_fonts
def prediction_grid(images, captions: list, cams: Optional[list] = None, cols: int = 4,
                    title: str = "", colors: Optional[list] = None) -> Figure:
    """Samples with a caption each; with `cams`, every sample is followed by its Grad-CAM overlay."""
    n = len(captions)
    per = 2 if cams is not None else 1
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(1.75 * cols * per, 2.05 * rows + (0.35 if title else 0)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols * per, squeeze=False)).reshape(rows, cols * per)
    for ax in axes.flat:
        ax.axis("off")
    for k in range(n):
        r, q = divmod(k, cols)
        ax = axes[r, q * per]
        ax.imshow(_hwc(images[k]), interpolation="nearest")
        ax.set_title(text(captions[k]), fontsize=7.5, color=(colors[k] if colors else "black"))
        if cams is not None:
            ax2 = axes[r, q * per + 1]
            ax2.imshow(overlay(images[k], cams[k]), interpolation="bilinear")
            ax2.set_title("Grad-CAM", fontsize=7.5)
    if title:
        fig.suptitle(text(title), fontsize=10)
    return fig
