"""Helpers shared by the subcommands."""
from __future__ import annotations

import json
import sys


def print_json(obj) -> None:
    """Only JSON goes to stdout with --json."""
    json.dump(obj, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def add_load_flags(p):
    """--no-verify and --unsafe-load: how a checkpoint is read (see tudui.checkpoint.load)."""
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="load a checkpoint even if its bytes no longer match the SHA-256 recorded when it was saved")
    p.add_argument("--unsafe-load", action="store_true",
                   help="DANGEROUS: unpickle the checkpoint with weights_only=False, which runs any code it holds; "
                        "only for files you made yourself or fully trust (prints a warning)")


def add_device(p, default="cpu"):
    p.add_argument("--device", default=default, help=f"auto, cpu, cuda, cuda:N or mps (default: {default})")


def add_engine(p):
    p.add_argument("--engine", default="torch", choices=["torch", "onnx"],
                   help="what runs a checkpoint: torch (default) or onnx (onnxruntime: the checkpoint is exported "
                        "in memory and checked against PyTorch at start; needs the export extra)")
