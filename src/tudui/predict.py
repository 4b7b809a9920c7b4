"""Classify image files or folders with a checkpoint."""
from __future__ import annotations

import os

from .classifier import Classifier, load
from .data.images import is_image_file, open_image
from .errors import DataError


def expand_paths(paths) -> list:
    """Files as given; a folder's images in sorted order (recursively). Missing paths are errors."""
    out = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            found = []
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found += [os.path.join(dirpath, f) for f in sorted(filenames) if is_image_file(f)]
            if not found:
                raise DataError(f"folder {p} has no images")
            out += found
        elif os.path.isfile(p):
            out.append(p)
        else:
            raise DataError(f"image not found: {p}")
    return out


def predict(checkpoint, paths, topk: int = 5, device: str = "cpu", batch_size: int = 64, *, verify: bool = True,
            unsafe_load: bool = False) -> list:
    """-> [{'path', 'topk': [{'label', 'index', 'prob'}]}] in the order of the inputs."""
    clf = checkpoint if isinstance(checkpoint, Classifier) else load(checkpoint, device=device, verify=verify,
                                                                     unsafe_load=unsafe_load)
    files = expand_paths([paths] if isinstance(paths, (str, os.PathLike)) else paths)
    results = []
    for i in range(0, len(files), batch_size):
        chunk = files[i:i + batch_size]
        preds = clf.predict_images([open_image(f) for f in chunk], topk=topk)
        results += [{"path": f, "topk": p} for f, p in zip(chunk, preds)]
    return results
