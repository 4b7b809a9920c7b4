"""Duplicates: exact (identical decoded pixels) and near (re-encoded, resized, slightly cropped or mirrored
copies), found without ever holding an N x N matrix.

- exact: a BLAKE2 hash of every image's pixels at the size the models see; equal hashes are one group.
- perceptual: imagehash's DCT hash (64 bits) of every image and of its mirror; pairs within `max_bits` Hamming
  distance, compared a block of rows at a time against all (memory: block x N bytes).
- features: the k nearest neighbours in a model's feature space (scikit-learn, brute force in chunks of its
  working memory); pairs above a cosine similarity.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

BLOCK_BYTES = 32 << 20  # scratch memory of one block of Hamming distances
CHUNK = 8192  # pairs compared at a time


def exact_groups(images: torch.Tensor) -> list:
    """Groups (lists of row numbers, ascending) of identical images; singletons left out."""
    seen: dict = {}
    for r in range(len(images)):
        h = hashlib.blake2b(images[r].numpy().tobytes(), digest_size=16).digest()
        seen.setdefault(h, []).append(r)
    return [g for g in seen.values() if len(g) > 1]


def _to_gray(images: torch.Tensor) -> np.ndarray:
    x = images.numpy()
    if x.shape[1] == 3:
        x = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).round().astype(np.uint8)
    else:
        x = x[:, 0]
    return x


def phashes(images: torch.Tensor, flip: bool = False) -> tuple:
    """-> (hashes uint64 (N,), hashes of the mirrored images or None). imagehash is an optional extra
    (`pip install tudui[audit]`); imported here only."""
    import imagehash
    from PIL import Image

    gray = _to_gray(images)

    def pack(img) -> int:
        bits = imagehash.phash(Image.fromarray(img)).hash.reshape(-1)
        return int(np.packbits(bits).view(">u8")[0])
    h = np.fromiter((pack(g) for g in gray), dtype=np.uint64, count=len(gray))
    hf = np.fromiter((pack(g[:, ::-1]) for g in gray), dtype=np.uint64, count=len(gray)) if flip else None
    return h, hf


def hamming_pairs(h: np.ndarray, max_bits: int, hf=None, per_row: int = 10) -> dict:
    """{(i, j): bits} for i < j with Hamming distance <= max_bits between h[i] and h[j] (or h[i] and the mirror
    hf[j]), at most the `per_row` closest for each i (thousands of alike "1"s must not make millions of pairs).
    Each block of rows is compared with the rows after it: about BLOCK_BYTES of scratch memory."""
    n = len(h)
    block = max(1, BLOCK_BYTES // (8 * max(1, n)))
    out: dict = {}
    for start in range(0, n, block):
        rows_h = h[start:start + block]
        for other in (h, hf) if hf is not None else (h,):
            d = np.bitwise_count(rows_h[:, None] ^ other[None, start:])
            d[np.arange(len(rows_h)), np.arange(len(rows_h))] = 255  # an image and its own mirror
            if d.shape[1] > per_row:
                cols = np.argpartition(d, per_row, axis=1)[:, :per_row]
            else:
                cols = np.broadcast_to(np.arange(d.shape[1]), d.shape)
            near = np.take_along_axis(d, cols, 1)
            rows, k = np.nonzero(near <= max_bits)
            for r, c, bits in zip(rows.tolist(), cols[rows, k].tolist(), near[rows, k].tolist()):
                i, j = start + r, start + c
                if j > i and bits < out.get((i, j), 65):
                    out[(i, j)] = int(bits)
    return out


def neighbours(features: np.ndarray, k: int, rows=None) -> tuple:
    """k nearest neighbours by cosine distance (features L2-normalized) -> (distances (n, k), indices (n, k))
    for `rows` (default all), excluding each row itself."""
    from sklearn.neighbors import NearestNeighbors

    f = normalize(features)
    k = min(k, len(f) - 1)
    if k < 1:
        return np.zeros((len(f), 0)), np.zeros((len(f), 0), dtype=np.int64)
    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric="euclidean").fit(f)
    q = f if rows is None else f[rows]
    dist, idx = nn.kneighbors(q)
    own = np.arange(len(f)) if rows is None else np.asarray(rows)
    keep = idx != own[:, None]
    # drop self (normally column 0; with exact duplicates it may be elsewhere), keep k columns
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    dist = np.take_along_axis(dist, order, 1)
    idx = np.take_along_axis(idx, order, 1)
    return dist ** 2 / 2, idx  # squared euclidean of unit vectors / 2 = cosine distance


def normalize(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, dtype=np.float32)
    f = f - f.mean(0, keepdims=True)  # centred: similarity measured between images, not to the mean image
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def feature_pairs(dist: np.ndarray, idx: np.ndarray, min_sim: float) -> dict:
    """{(i, j): cosine similarity} for neighbour pairs at least min_sim similar."""
    out: dict = {}
    rows, cols = np.nonzero(1 - dist >= min_sim)
    for r, c in zip(rows.tolist(), cols.tolist()):
        j = int(idx[r, c])
        key = (min(r, j), max(r, j))
        out[key] = max(out.get(key, 0.0), float(1 - dist[r, c]))
    return out


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = x.flatten(1)
    x = x - x.mean(1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-6)


def _resize(x: torch.Tensor, side: int) -> torch.Tensor:
    if tuple(x.shape[-2:]) == (side, side):
        return x
    return torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)


def _crops(side: int, most: int) -> list:
    """(top, left, height, width) of every crop losing up to `most` pixels of each dimension (the same number in
    both, as a crop of a share of the area does), each offset."""
    return [(t, l, side - c, side - c) for c in range(1, most + 1) for t in range(c + 1) for l in range(c + 1)]


def pixel_similarity(images: torch.Tensor, pairs, flip: bool = False, side: int = 32, align: float = 0.75,
                     crop: int = 3) -> dict:
    """{(i, j): correlation} of the two images' grayscale pixels at side x side: the better of j as it is and
    mirrored (with flip); for pairs correlating at least `align`, also the best over crops of either image losing
    up to `crop` pixels per side, scaled back (a slightly cropped copy lines up again). The check that turns hash
    candidates into near duplicates; memory is bounded by chunks of pairs."""
    if not pairs:
        return {}
    pairs = list(pairs)
    rows = sorted({r for p in pairs for r in p})
    where = {r: k for k, r in enumerate(rows)}
    g = _resize(torch.as_tensor(_to_gray(images[torch.as_tensor(rows)])).float()[:, None], side)
    a_all = torch.as_tensor([where[i] for i, _ in pairs])
    b_all = torch.as_tensor([where[j] for _, j in pairs])
    x = _unit(g)
    corr = torch.empty(len(pairs))
    for s in range(0, len(pairs), CHUNK):
        a, b = a_all[s:s + CHUNK], b_all[s:s + CHUNK]
        gb = g[b]
        c = (x[a] * x[b]).sum(1)
        if flip:
            c = torch.maximum(c, (x[a] * _unit(gb.flip(-1))).sum(1))
        close = torch.nonzero(c >= align).flatten()
        if len(close):
            c[close] = torch.maximum(c[close], _aligned(g[a[close]], g[b[close]], side, crop, flip))
        corr[s:s + CHUNK] = c
    return {p: float(c) for p, c in zip(pairs, corr.tolist())}


def _aligned(ga: torch.Tensor, gb: torch.Tensor, side: int, crop: int, flip: bool) -> torch.Tensor:
    """Best correlation between crops (scaled back to side) of one image and the other, both ways round."""
    best = torch.full((len(ga),), -1.0)
    for first, second in ((ga, gb), (gb, ga)):
        targets = [_unit(second)] + ([_unit(second.flip(-1))] if flip else [])
        for t, l, h, w in _crops(side, crop):
            v = _unit(_resize(first[..., t:t + h, l:l + w], side))
            for u in targets:
                best = torch.maximum(best, (v * u).sum(1))
    return best
