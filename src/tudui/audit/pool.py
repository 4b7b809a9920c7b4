"""Every image of every split, decoded once into one uint8 tensor: what the audit trains on, hashes and shows.

Row r of the pool is sample `index[r]` of split `split[r]`; `ids[r]` names it as decision files do (its path
relative to the dataset, or SPLIT:INDEX). Unreadable files are not in the pool; they are kept as rows to report.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from PIL import Image

from ..data.cache import cached_decode
from ..data.decisions import sample_id
from ..data.splits import DataSource, FileSplit


@dataclass
class Pool:
    images: torch.Tensor  # uint8 (N, C, H, W) at the size the models see
    labels: np.ndarray  # int64 (N,)
    split: np.ndarray  # split name per row (object)
    index: np.ndarray  # int64: position inside its split
    ids: list  # decision-file names
    classes: list
    split_names: list  # in the source's order ('train' first)
    unreadable: list = field(default_factory=list)  # [(split, id, reason)]
    native: list = field(default_factory=list)  # [(W, H) or None] native size per row (files: from the header)

    def __len__(self) -> int:
        return len(self.labels)

    def rows_of(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def build_pool(source: DataSource, channels: int, size: tuple, root: Optional[str], cache_dir=None,
               workers: int = 0, splits: Optional[list] = None) -> Pool:
    """Decode the splits (all, or `splits`) at (channels, size) through the decode cache."""
    chunks, labels, names, index, ids, bad, native = [], [], [], [], [], [], []
    names_used = [s for s in source.splits if splits is None or s in splits]
    for name in names_used:
        split = source.splits[name]
        images, kept, failed, _ = cached_decode(split, channels, size, cache_dir, workers=workers,
                                                desc=f"decode {name}")
        kept_set = set(kept)
        reasons = iter(failed)
        for i in range(len(split)):
            if i not in kept_set:
                text = next(reasons, "")
                where = split.describe(i)
                reason = text[len(where) + 2:] if text.startswith(where + ": ") else text
                bad.append((name, sample_id(name, split, i, root), reason))
        chunks.append(images)
        labels += [split.targets[i] for i in kept]
        names += [name] * len(kept)
        index += list(kept)
        ids += [sample_id(name, split, i, root) for i in kept]
        native += header_sizes(split, kept)
    images = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
    return Pool(images=images, labels=np.asarray(labels, dtype=np.int64), split=np.asarray(names, dtype=object),
                index=np.asarray(index, dtype=np.int64), ids=ids, classes=list(source.classes),
                split_names=names_used, unreadable=bad, native=native)


def header_sizes(split, kept: list) -> list:
    """(W, H) of each kept file from its header (cheap: no pixels decoded); None for samples without a file."""
    if not isinstance(split, FileSplit):
        return [None] * len(kept)
    def size(i):
        try:
            with Image.open(split.paths[i]) as im:
                return im.size
        except Exception:  # it decoded a moment ago; a race with the user's edits only loses this fact
            return None
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(size, kept, chunksize=256))
