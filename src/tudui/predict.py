"""Classify image files or folders with a checkpoint or an exported model (.onnx, TorchScript)."""
from __future__ import annotations

import os
from typing import Optional

from .infer import iter_files, iter_predictions, open_predictor, predict_to_file

__all__ = ["predict", "predict_to_file", "expand_paths", "iter_predictions", "open_predictor"]


def expand_paths(paths) -> list:
    """Files as given; a folder's images in sorted order (recursively). Missing paths are errors."""
    return list(iter_files(paths))


def predict(checkpoint, paths, topk: int = 5, device: str = "cpu", batch_size: int = 64,
            workers: Optional[int] = None) -> list:
    """-> [{'path', 'topk': [{'label', 'index', 'prob'}]}] in the order of the inputs. checkpoint: a tudui
    checkpoint or run folder, an exported .onnx or TorchScript file, or a loaded Classifier/Predictor. An
    unreadable image is an error here; `predict_to_file` records it as a row and goes on."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    predictor = open_predictor(checkpoint, device=device)
    return list(iter_predictions(predictor, paths, topk=topk, batch_size=batch_size, workers=workers))
