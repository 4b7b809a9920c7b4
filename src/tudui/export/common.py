"""What the exporters share: the error type, the metadata written into every exported file, and turning an
exporter's long exception into one line."""
from __future__ import annotations

import json
import os
import re

import torch

from ..errors import TuduiError
from ..infer.onnx_model import META_FORMAT as FORMAT  # the reader's name for the format: one definition
from ..version import __version__

FORMAT_VERSION = 1
# metadata keys whose (string) values are JSON; the others are plain strings
JSON_KEYS = ("format_version", "classes", "num_classes", "input_size", "channels", "mean", "std", "preprocess",
             "model", "config", "metrics", "class_names", "input_stats")


class ExportError(TuduiError):
    pass


def metadata(clf) -> dict:
    """Everything a program without tudui needs to feed the file and name its answers."""
    pre = clf.preprocess
    meta = clf.meta or {}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "classes": list(clf.classes),
        "num_classes": len(clf.classes),
        "input_size": [int(pre["size"][0]), int(pre["size"][1])],
        "channels": int(pre["channels"]),
        "mean": list(pre["mean"]),
        "std": list(pre["std"]),
        "preprocess": pre,
        "input": "input",
        "output": "logits",
        "layout": "input float32 (batch, channels, height, width): the image converted to RGB (3 channels) or "
                  "grayscale (1), resized to input_size, scaled to 0-1, then (x - mean) / std per channel; "
                  "output: logits (batch, num_classes), softmax gives probabilities in the order of classes",
        "model": meta.get("model", {}),
        **{k: meta[k] for k in ("class_names", "input_stats") if meta.get(k)},
        "config": meta.get("config", {}),
        "metrics": meta.get("metrics", {}),
        "source": os.path.basename(meta["path"]) if meta.get("path") else "",
        "tudui_version": __version__,
        "torch_version": str(torch.__version__),
    }


def as_strings(meta: dict) -> dict:
    """ONNX metadata_props are strings: JSON for structured values, the plain text otherwise."""
    return {k: (json.dumps(v, ensure_ascii=False, default=str) if k in JSON_KEYS else str(v)) for k, v in meta.items()}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def reason(e: BaseException) -> str:
    """The informative line of an exporter's exception (torch.onnx puts it under '## Exception summary')."""
    text = _ANSI.sub("", str(e))
    if "## Exception summary" in text:
        text = text.split("## Exception summary", 1)[1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(("⬆", "("))]
    line = lines[0] if lines else type(e).__name__
    line = re.sub(r"^<class '([\w.]+)'>:\s*", lambda m: m.group(1).rsplit(".", 1)[-1] + ": ", line)
    if "data-dependent" in line:
        line += " (Python control flow on tensor values, e.g. `if x.mean() > 0`; use torch.where or torch.cond)"
    return line if len(line) <= 300 else line[:297] + "..."
