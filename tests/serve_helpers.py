"""Shared by the serve tests: digit images in any format, crafted headers, answer comparison."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def digit_image(index: int = 0):
    from sklearn.datasets import load_digits
    d = load_digits()
    return Image.fromarray(np.round(d.images[index] / 16 * 255).astype(np.uint8), "L"), int(d.target[index])


def encode(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose (valid) header claims width x height, with no pixel data at all: reading its size must
    not need decoding, and decoding it fails."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def same_answer(a, b, tol: float = 1e-6) -> bool:
    """Two /predict answers (or lists of them) agree: same paths, labels and indices in the same order, and
    probabilities within tol (a batch's composition may change the last bits of a float sum)."""
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same_answer(x, y, tol) for x, y in zip(a, b))
    if a["path"] != b["path"] or len(a["topk"]) != len(b["topk"]):
        return False
    return all(x["label"] == y["label"] and x["index"] == y["index"] and abs(x["prob"] - y["prob"]) <= tol
               for x, y in zip(a["topk"], b["topk"]))


class LiveServer:
    """A real uvicorn serving `app` on 127.0.0.1 at a free port, in a thread; stopped on exit."""

    def __init__(self, app, start_timeout: float = 30.0):
        self.app = app
        self.start_timeout = start_timeout

    def __enter__(self):
        import socket
        import threading
        import time

        import uvicorn
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()
        assert not self.thread.is_alive(), "uvicorn did not stop"
