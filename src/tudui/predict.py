"""Classify image files or folders with a checkpoint."""
from __future__ import annotations

import os

from .classifier import Classifier, load
from .data.images import describe_failure, is_image_file, open_image
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
    """-> [{'path', 'topk': [{'label', 'index', 'prob'}]}] in the order of the inputs. A file that cannot be
    read gives {'path', 'error': reason} in its place (reported once, never fatal for the others)."""
    clf = checkpoint if isinstance(checkpoint, Classifier) else load(checkpoint, device=device, verify=verify,
                                                                     unsafe_load=unsafe_load)
    files = expand_paths([paths] if isinstance(paths, (str, os.PathLike)) else paths)
    results = []
    for i in range(0, len(files), batch_size):
        chunk = files[i:i + batch_size]
        images, errors = [], {}
        for f in chunk:
            try:
                images.append(open_image(f))
            except Exception as e:
                errors[f] = describe_failure("", e)[2:]
        preds = iter(clf.predict_images(images, topk=topk) if images else [])
        results += [{"path": f, "error": errors[f]} if f in errors else {"path": f, "topk": next(preds)}
                    for f in chunk]
    return results
