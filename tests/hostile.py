"""A generated corpus of hostile image files, made in their real formats (Pillow, or bytes where Pillow would
refuse to write them), for the hostile-input tests (a small sample) and benchmarks/hostile_corpus.py (1,000+).

Every file gets a kind and an expectation: "ok" (tudui must read it) or "bad" (tudui must report it once,
with a reason, and go on). `make_corpus(root, n)` lays the files out as an ImageFolder with splits,
`root/{train,val}/{a,b}/`, so the same tree feeds `stats`, `train` and `predict`.
"""
from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from functools import lru_cache

import numpy as np
from PIL import Image, PngImagePlugin

SIDE = 24  # valid images are small: the corpus is about hostile files, not big ones


def _rgb(rng, side=SIDE):
    return Image.fromarray(rng.integers(0, 256, (side, side + 3, 3), dtype=np.uint8))


def _bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height 8-bit gray pixels, with one tiny IDAT: Pillow must refuse it
    from the header (decompression-bomb limit) before decoding anything."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _png_chunk(b"IEND", b""))


@lru_cache(maxsize=None)
def png_bomb(side: int = 10_000) -> bytes:
    """A real side x side gray PNG of zeros (100 million pixels for 10,000: over Pillow's 89.5 M limit) that
    compresses to ~100 KB: decoding it would take 100 MB+ of memory per file."""
    comp = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    body = b"".join(comp.compress(row * 500) for _ in range(side // 500)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def _jpeg_exif_rotated(rng) -> bytes:
    im = _rgb(rng)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW when displayed
    return _bytes(im, "JPEG", exif=exif.tobytes())


def _animated(rng, fmt: str) -> bytes:
    frames = [_rgb(rng) for _ in range(3)]
    if fmt == "GIF":
        frames = [f.convert("P") for f in frames]
    return _bytes(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, loop=0)


def _text_chunk(rng, zipped: bool) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "A" * (1_200_000 if not zipped else 8_000_000), zip=zipped)
    return _bytes(_rgb(rng), "PNG", pnginfo=info)


def _palette_transparent(rng) -> bytes:
    im = _rgb(rng).convert("P", palette=Image.ADAPTIVE, colors=16)
    return _bytes(im, "PNG", transparency=0)


def _gray16(rng, fmt: str) -> bytes:
    a = rng.integers(0, 65536, (SIDE, SIDE), dtype=np.uint16)
    return _bytes(Image.fromarray(a), fmt)


# kind -> (maker(rng) -> bytes, file extension, expectation). Structural kinds (links, FIFOs, permissions,
# names) are made in make_file.
KINDS = {
    "jpeg": (lambda r: _bytes(_rgb(r), "JPEG"), ".jpg", "ok"),
    "png": (lambda r: _bytes(_rgb(r), "PNG"), ".png", "ok"),
    "png-named-jpg": (lambda r: _bytes(_rgb(r), "PNG"), ".jpg", "ok"),
    "jpeg-named-png": (lambda r: _bytes(_rgb(r), "JPEG"), ".png", "ok"),
    "png-16bit": (lambda r: _gray16(r, "PNG"), ".png", "ok"),
    "tiff-16bit": (lambda r: _gray16(r, "TIFF"), ".tif", "ok"),
    "jpeg-cmyk": (lambda r: _bytes(_rgb(r).convert("CMYK"), "JPEG"), ".jpg", "ok"),
    "png-palette-transparency": (_palette_transparent, ".png", "ok"),
    "png-la": (lambda r: _bytes(_rgb(r).convert("LA"), "PNG"), ".png", "ok"),
    "gif-animated": (lambda r: _animated(r, "GIF"), ".gif", "ok"),
    "webp-animated": (lambda r: _animated(r, "WEBP"), ".webp", "ok"),
    "jpeg-exif-rotated": (_jpeg_exif_rotated, ".jpg", "ok"),
    "png-huge-text-chunk": (lambda r: _text_chunk(r, False), ".png", "ok"),
    "name-unicode": (lambda r: _bytes(_rgb(r), "JPEG"), ".jpg", "ok"),
    "name-spaces": (lambda r: _bytes(_rgb(r), "JPEG"), ".jpg", "ok"),
    "name-250-bytes": (lambda r: _bytes(_rgb(r), "PNG"), ".png", "ok"),
    "symlink-to-image": (lambda r: _bytes(_rgb(r), "PNG"), ".png", "ok"),
    "unreadable-permissions": (lambda r: _bytes(_rgb(r), "PNG"), ".png", "bad"),  # "ok" for root (see make_file)
    "jpeg-truncated": (lambda r: _bytes(_rgb(r, 64), "JPEG")[:400], ".jpg", "bad"),
    "png-truncated": (lambda r: _bytes(_rgb(r, 64), "PNG")[:300], ".png", "bad"),
    "jpeg-zero-bytes": (lambda r: b"", ".jpg", "bad"),
    "png-zero-bytes": (lambda r: b"", ".png", "bad"),
    "text-named-jpg": (lambda r: b"<html><body>404 Not Found</body></html>\n", ".jpg", "bad"),
    "random-bytes-png": (lambda r: r.integers(0, 256, 2000, dtype=np.uint8).tobytes(), ".png", "bad"),
    "png-zip-text-bomb": (lambda r: _text_chunk(r, True), ".png", "bad"),
    "png-decompression-bomb": (lambda r: png_bomb(), ".png", "bad"),
    "png-header-30000x30000": (lambda r: png_header_only(30_000, 30_000), ".png", "bad"),
    "symlink-dangling": (None, ".jpg", "bad"),
    "symlink-loop": (None, ".jpg", "bad"),
    "fifo-named-jpg": (None, ".jpg", "bad"),
}


def make_file(folder: str, i: int, kind: str, rng) -> list:
    """Write one file of `kind` into `folder` -> [(path, kind, expect)] (a symlink loop makes two entries)."""
    maker, ext, expect = KINDS[kind]
    name = f"{i:05d}-{kind}{ext}"
    if kind == "name-unicode":
        name = f"{i:05d}-猫 ünïcödé 🐱 ℕ{ext}"
    elif kind == "name-spaces":
        name = f"{i:05d}  with   spaces {ext}"
    elif kind == "name-250-bytes":
        name = f"{i:05d}-" + "x" * (250 - 6 - len(ext)) + ext
    path = os.path.join(folder, name)
    if kind == "symlink-dangling":
        os.symlink(f"missing-{i}.jpg", path)  # links are relative to their folder
        return [(path, kind, expect)]
    if kind == "symlink-loop":
        other = os.path.join(folder, f"{i:05d}-{kind}-b{ext}")
        os.symlink(os.path.basename(other), path)
        os.symlink(os.path.basename(path), other)
        return [(path, kind, expect), (other, kind, expect)]
    if kind == "fifo-named-jpg":
        os.mkfifo(path)
        return [(path, kind, expect)]
    data = maker(rng)
    if kind == "symlink-to-image":
        target = os.path.join(folder, f".target-{i}.png")  # hidden: listed only through the link
        with open(target, "wb") as fh:
            fh.write(data)
        os.symlink(os.path.basename(target), path)
        return [(path, kind, expect)]
    with open(path, "wb") as fh:
        fh.write(data)
    if kind == "unreadable-permissions":
        os.chmod(path, 0)
        if os.geteuid() == 0:  # root reads it anyway: then it must be read like any image
            expect = "ok"
    return [(path, kind, expect)]


def make_corpus(root: str, n: int = 1000, seed: int = 0, kinds=None) -> list:
    """At least n files cycling through `kinds` (default: all), in root/{train,val}/{a,b}/ (3 of 4 in train).
    Each class folder also gets two plain JPEGs so no class ends up without a readable image, and
    root/train/a/loop -> root/train/a, a symlinked folder loop. -> [(path, kind, expect)]."""
    rng = np.random.default_rng(seed)
    kinds = list(kinds or KINDS)
    folders = {(s, c): os.path.join(root, s, c) for s in ("train", "val") for c in ("a", "b")}
    for f in folders.values():
        os.makedirs(f, exist_ok=True)
    out = []
    for (s, c), f in folders.items():
        for j in range(2):
            out += make_file(f, 90_000 + j, "jpeg", rng)
    os.symlink(".", os.path.join(folders["train", "a"], "loop"))
    i = 0
    while len(out) < n:
        kind = kinds[i % len(kinds)]
        split = "val" if i % 4 == 3 else "train"
        out += make_file(folders[split, "ab"[(i // len(kinds)) % 2]], i, kind, rng)
        i += 1
    return out


def restore_permissions(root: str) -> None:
    """chmod 000 files make a tmp folder hard to delete for a non-root user: give them back."""
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p) and os.path.isfile(p):
                os.chmod(p, 0o644)


# what `tudui serve` answers for an upload of each bad kind with bytes (src/tudui/serve/guards.py); any other bad
# kind gets one of 400, 413, 415, and a good file 200
SERVE_STATUS = {"png-decompression-bomb": {413}, "png-header-30000x30000": {413}, "text-named-jpg": {415},
                "jpeg-zero-bytes": {400}, "png-zero-bytes": {400}}


def expected_status(kind: str, expect: str) -> set:
    return {200} if expect == "ok" else SERVE_STATUS.get(kind, {400, 413, 415})


def client_bytes(path: str):
    """The file's bytes as a client would upload them, or None when no client could read it (a FIFO, a broken
    or looping link, no read permission): the file system's to report, not the server's."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None
