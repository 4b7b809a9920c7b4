"""On-disk cache of decoded splits, so the second run over a folder of JPEGs starts in seconds.

A cache file is named `<which>-<content>.pt`: `which` hashes the split's file list and the decode settings
(channels, size), `content` the split's fingerprint (every file's path, size, mtime and label). A change to
any file gives a new content hash, so a stale cache is never read; the entry it replaces (same `which`)
is deleted then, so edits do not pile up old copies. Deleting the folder is always safe.

Each entry records the SHA-256 of its contents (tudui.checkpoint.content_hash); an entry that is truncated,
corrupt, or has no hash (written by an older tudui) is reported and rebuilt, never trained on.
"""
from __future__ import annotations

import hashlib
import json
import os

import torch

from ..checkpoint import atomic_torch_save, content_hash
from ..console import notice
from ..dirs import cache_dir as resolve_cache_dir
from ..fileio import write_text
from .loader import decode_all, decode_workers
from .splits import Split

CACHE_VERSION = 2


def cache_key(split: Split, channels: int, size) -> str | None:
    """'<which>-<content>' for this split decoded at these settings; None when the split is not cacheable."""
    fp = split.fingerprint()
    if fp is None:
        return None
    settings = f"v{CACHE_VERSION}|{channels}|{tuple(size) if size else None}"
    content = hashlib.sha256(f"{settings}|{fp}".encode()).hexdigest()[:24]
    paths = getattr(split, "paths", None)
    if paths is None:
        return f"{content[:12]}-{content}"
    which = hashlib.sha256(settings.encode())
    for p in paths:
        which.update(os.path.abspath(p).encode("utf-8", "surrogatepass") + b"\0")
    return f"{which.hexdigest()[:12]}-{content}"


def _load(path: str) -> dict:
    # read into RAM, not memory-mapped: random gathers from a mapped file ran ~5x slower in the first epochs
    return torch.load(path, map_location="cpu", weights_only=True)


def _drop_replaced(folder: str, key: str, ext: str = ".pt") -> None:
    """Delete older cache files of the same split and settings (same prefix, other content)."""
    which = key.split("-")[0]
    for name in os.listdir(folder):
        if name.startswith(which + "-") and name.endswith(ext) and name != key + ext:
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass  # another run may have removed it first


def cache_root(cache_dir: str | None) -> str:
    """--cache-dir, else $TUDUI_CACHE_DIR, else the platform's user cache folder (see tudui.dirs)."""
    return resolve_cache_dir(cache_dir)


def cached_decode(split: Split, channels: int, size, cache_dir: str | None, workers: int = 0, desc="decode"):
    """decode_all() with a disk cache -> (images uint8 (N,C,H,W), kept indices, unreadable, status), status
    'hit' (read from the cache), 'written' (decoded and cached) or 'uncached' (decoded; nothing to key it by).
    A miss decodes with a process pool (decode_workers) and writes the cache atomically."""
    cache_dir = cache_root(cache_dir)
    key = cache_key(split, channels, size) if cache_dir else None
    folder = os.path.join(cache_dir, "decoded") if key else None
    path = os.path.join(folder, key + ".pt") if key else None
    if path and os.path.isfile(path):
        try:
            d = _load(path)
            images = d["images"]
            if not (images.dtype == torch.uint8 and images.shape[0] == len(d["kept"])):
                raise ValueError("unexpected contents")
            if d.get("sha256") != content_hash(d):
                raise ValueError("no checksum" if "sha256" not in d else "checksum mismatch")
            return images, list(d["kept"]), list(d["bad"]), "hit"
        except Exception as e:  # a damaged cache file is rebuilt, never fatal, never trained on
            why = str(e) if isinstance(e, ValueError) and len(str(e)) < 40 else type(e).__name__
            notice(f"rebuilding damaged cache file {path} ({why})")
    images, kept, bad = decode_all(split, channels, size, workers=decode_workers(split, workers), desc=desc)
    if not path:
        return images, kept, bad, "uncached"
    entry = {"images": images, "kept": kept, "bad": bad}
    entry["sha256"] = content_hash(entry)
    try:
        atomic_torch_save(entry, path)
        _drop_replaced(folder, key)
    except OSError as e:  # a full disk or read-only cache folder costs the cache, not the run
        notice(f"cannot write the decode cache {path} ({e.strerror or e}); the next run decodes again")
        return images, kept, bad, "uncached"
    return images, kept, bad, "written"


def checked_files(split: Split, cache_dir: str | None, scan) -> tuple:
    """The stream loader's readability pass, remembered: scan(split) -> (readable indices, unreadable
    'path: reason' lines) runs once per split content; its answer is kept under the split's cache key
    (`checked/<key>.json`: a changed, added or removed file gives a new key) -> (indices, unreadable, hit)."""
    root = cache_root(cache_dir)
    key = cache_key(split, 0, None) if root else None
    path = os.path.join(root, "checked", key + ".json") if key else None
    if path and os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as fh:
                d = json.load(fh)
            kept, bad = [int(i) for i in d["kept"]], [str(b) for b in d["bad"]]
            if len(kept) + len(bad) == len(split) and all(0 <= i < len(split) for i in kept):
                return kept, bad, True
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable or foreign: scan again and rewrite it
    kept, bad = scan(split)
    if path:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_text(path, json.dumps({"kept": list(kept), "bad": list(bad)}))
            _drop_replaced(os.path.dirname(path), key, ".json")
        except OSError:
            pass  # a read-only cache folder costs the memo, not the run
    return kept, bad, False
