"""tudui: the PyTorch course workflow as software. Train, evaluate and use image classifiers.

    import tudui
    result = tudui.train("digits", epochs=5)
    print(tudui.evaluate(result.best_path)["accuracy"])
    print(tudui.predict(result.best_path, ["my_digit.png"]))
    tudui.export(result.best_path, "digits.onnx")
"""
from .threads import apply_default_policy as _threads  # (before anything imports torch)

_threads()

from .version import __version__  # noqa: E402

from . import models  # noqa: E402  (tudui.models.create after a bare `import tudui`)
from .api import audit, bench, evaluate, predict, report, train, tune  # noqa: E402  (notebook-friendly results)
from .config import TrainConfig  # noqa: E402
from .device import resolve_device  # noqa: E402
from .engine.hooks import Callback, StopTraining  # noqa: E402
from .env import env_info  # noqa: E402
from .errors import TuduiError  # noqa: E402
from .export import export  # noqa: E402  (the function; the package stays importable as tudui.export.api etc.)
from .importer import import_pth  # noqa: E402
from .infer import open_predictor  # noqa: E402
from .infer.checkpoint import Classifier, load  # noqa: E402
from .serve import serve  # noqa: E402  (the function; the package is tudui.serve.app etc.)

__all__ = ["train", "evaluate", "audit", "predict", "load", "models", "Classifier", "TrainConfig", "env_info",
           "resolve_device", "TuduiError", "import_pth", "report", "serve", "export", "open_predictor", "bench",
           "Callback", "StopTraining", "tune", "__version__"]
