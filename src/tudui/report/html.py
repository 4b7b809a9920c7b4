"""The report page from its Jinja2 template (shipped as package data), with every value escaped and every
image inlined as a data: URI, so the file opens anywhere with no network and no other file."""
from __future__ import annotations

import base64
import io
import os

import numpy as np

from .grids import _hwc

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")


def environment():
    import jinja2  # import-time cost: jinja2, only when a page is rendered
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=False)


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image_uri(img, min_side: int = 112) -> str:
    """A uint8 image ((C, H, W) tensor/array or (H, W, 3) array) as a PNG data URI, upscaled by an integer
    factor (nearest neighbour) to at least `min_side` px so small images stay visible."""
    from PIL import Image  # import-time cost: Pillow, only when images are decoded

    a = _hwc(img)
    k = max(1, -(-min_side // max(a.shape[:2])))
    if k > 1:
        a = a.repeat(k, 0).repeat(k, 1)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="PNG")
    return data_uri(buf.getvalue())


def write(path: str, text: str) -> str:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path
