"""Export a trained classifier to ONNX or TorchScript, checked against PyTorch before it is reported done."""
from .api import FORMATS, export
from .common import ExportError

__all__ = ["export", "ExportError", "FORMATS"]
