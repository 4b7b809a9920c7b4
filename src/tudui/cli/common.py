"""Helpers shared by the subcommands."""
from __future__ import annotations

import json
import sys


def print_json(obj) -> None:
    """Only JSON goes to stdout with --json."""
    json.dump(obj, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def add_device(p, default="cpu"):
    p.add_argument("--device", default=default, help=f"auto, cpu, cuda, cuda:N or mps (default: {default})")
