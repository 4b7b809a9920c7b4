"""One batched inference path (checkpoint, ONNX or TorchScript) shared by predict, eval, report and serve."""
from .open import open_predictor
from .predictor import Predictor
from .stream import iter_files, iter_predictions, predict_to_file

__all__ = ["open_predictor", "Predictor", "iter_files", "iter_predictions", "predict_to_file"]
