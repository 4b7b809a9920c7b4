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
            workers: Optional[int] = None, *, verify: bool = True, unsafe_load: bool = False,
            invert: bool = False) -> list:
    """-> [{'path', 'topk': [{'label', 'index', 'prob'}]}] in the order of the inputs. checkpoint: a tudui
    checkpoint or run folder, an exported .onnx or TorchScript file, or a loaded Classifier/Predictor. A file
    that cannot be read gives {'path', 'error': reason} in its place (reported once, never fatal for the others);
    a path that does not exist, or a folder without images, is an error. verify / unsafe_load: see
    checkpoint.load. A row gets a 'note' when its image is far outside the training images' brightness;
    invert classifies each image's negative (a digit drawn dark on light, for a model of light-on-dark digits)."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    predictor = open_predictor(checkpoint, device=device, verify=verify, unsafe_load=unsafe_load)
    predictor.invert = bool(invert)
    return list(iter_predictions(predictor, paths, topk=topk, batch_size=batch_size, workers=workers,
                                 on_error="row"))
