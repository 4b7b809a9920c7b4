"""On-disk cache of decoded splits, so the second run over a folder of JPEGs starts in seconds.

Keyed by the split's fingerprint (every file's path, size, mtime and label) and the decode settings;
any change to the files gives a new key, so a stale cache is never read.
"""
from __future__ import annotations

import hashlib
import os
import sys

import torch

from .loader import decode_all
from .splits import Split

CACHE_VERSION = 1


def cache_key(split: Split, channels: int, size) -> str | None:
    fp = split.fingerprint()
    if fp is None:
        return None
    h = hashlib.sha256(f"v{CACHE_VERSION}|{fp}|{channels}|{tuple(size) if size else None}".encode())
    return h.hexdigest()[:32]


def cached_decode(split: Split, channels: int, size, cache_dir: str | None, workers: int = 0, desc="decode"):
    """decode_all() with a disk cache -> (images uint8 (N,C,H,W), kept indices, unreadable, cache_hit)."""
    key = cache_key(split, channels, size) if cache_dir else None
    path = os.path.join(os.path.expanduser(cache_dir), "decoded", key + ".pt") if key else None
    if path and os.path.isfile(path):
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
            return d["images"], list(d["kept"]), list(d["bad"]), True
        except Exception as e:  # a damaged cache file is rebuilt, never fatal
            print(f"notice: rebuilding damaged cache file {path} ({type(e).__name__})", file=sys.stderr)
    images, kept, bad = decode_all(split, channels, size, workers=workers, desc=desc)
    if path:
        from ..checkpoint import atomic_torch_save
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_torch_save({"images": images, "kept": kept, "bad": bad}, path)
    return images, kept, bad, False
