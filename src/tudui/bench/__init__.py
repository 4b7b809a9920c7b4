"""`tudui bench`: the formats a model can run in (eager, channels_last, torch.compile, TorchScript, torch.export,
AOTInductor, ONNX float32 and int8, OpenVINO), measured side by side on this machine."""
from .api import bench, parse_formats
from .runners import FORMATS

__all__ = ["bench", "parse_formats", "FORMATS"]
