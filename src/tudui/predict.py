"""Classify image files or folders with a checkpoint or an exported model (.onnx, TorchScript)."""
from __future__ import annotations

import os
from typing import Optional

from .infer import iter_files, iter_predictions, open_predictor
from .infer import predict_to_file as _predict_to_file

__all__ = ["predict", "predict_to_file", "expand_paths", "iter_predictions", "open_predictor"]


def expand_paths(paths) -> list:
    """Files as given; a folder's images in sorted order (recursively). Missing paths are errors."""
    return list(iter_files(paths))


def predict(checkpoint, paths, topk: int = 5, device: str = "cpu", batch_size: int = 64,
            workers: Optional[int] = None, *, verify: bool = True, unsafe_load: bool = False,
            engine: str = "torch") -> list:
    """-> [{'path', 'topk': [{'label', 'index', 'prob'}]}] in the order of the inputs. checkpoint: a tudui
    checkpoint or run folder, an exported .onnx or TorchScript file, or a loaded Classifier/Predictor. A file
    that cannot be read gives {'path', 'error': reason} in its place (reported once, never fatal for the others);
    a path that does not exist, or a folder without images, is an error. verify / unsafe_load: see
    checkpoint.load. engine='onnx': run a checkpoint through onnxruntime (exported and checked at start)."""
    from .export.engine import open_engine
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    predictor = open_engine(checkpoint, engine, device=device, verify=verify, unsafe_load=unsafe_load)
    return list(iter_predictions(predictor, paths, topk=topk, batch_size=batch_size, workers=workers,
                                 on_error="row"))


def predict_to_file(model, paths, out: str, topk: int = 5, batch_size: int = 64, workers: Optional[int] = None,
                    device: str = "cpu", progress: bool = True, *, verify: bool = True, unsafe_load: bool = False,
                    engine: str = "torch") -> dict:
    """tudui.infer.predict_to_file (rows streamed to a .csv or .jsonl file), with engine='onnx' as in predict()."""
    from .export.engine import open_engine
    from .infer.stream import check_paths, output_format
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    output_format(out)
    check_paths(paths)  # a mistyped folder fails before the model is exported
    if engine != "torch":
        model = open_engine(model, engine, device=device, verify=verify, unsafe_load=unsafe_load)
    return _predict_to_file(model, paths, out, topk=topk, batch_size=batch_size, workers=workers, device=device,
                            progress=progress, verify=verify, unsafe_load=unsafe_load)
