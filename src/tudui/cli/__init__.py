"""The `tudui` command. Each subcommand lives in its own module with `add_parser(sub)` and `run(args)`,
and is a thin layer over the public Python API."""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import TuduiError

# subcommand name -> module (in this package)
COMMANDS = {
    "env": "env",
    "train": "train",
    "eval": "evaluate",
    "predict": "predict",
    "board": "board",
    "models": "models",
    "stats": "stats",
    "preview": "preview",
    "lr-find": "lr_find",
    "import": "import_model",
    "report": "report",
    "runs": "runs",
    "compare": "compare",
    "serve": "serve",
    "export": "export_model",
    "audit": "audit",
    "tune": "tune",
    "bench": "bench",
}


def build_parser() -> argparse.ArgumentParser:
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from .. import __version__
    parser = argparse.ArgumentParser(prog="tudui", description="Train, evaluate and use image classifiers "
                                     "(the PyTorch course workflow as one tool).")
    parser.add_argument("--version", action="version", version=f"tudui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in COMMANDS.items():
        m = importlib.import_module(f"{__name__}.{mod}")
        p = m.add_parser(sub, name)
        p.set_defaults(_run=m.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2  # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from .. import console as runlog
    runlog.CLI_ARGV = list(argv) if argv is not None else None  # the command line a run records
    try:
        return int(args._run(args) or 0)
    except TuduiError as e:
        print(f"tudui {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        runlog.CLI_ARGV = None
