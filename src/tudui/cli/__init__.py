"""The `tudui` command. Each subcommand lives in its own module with `add_parser(sub)` and `run(args)`,
and is a thin layer over the public Python API."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import TuduiError
from .parser import Parser, parse

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
    parser = Parser(prog="tudui", description="Train, evaluate and use image classifiers "
                                     "(the PyTorch course workflow as one tool).")
    parser.add_argument("--version", action="version", version=f"tudui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, mod in COMMANDS.items():
        m = importlib.import_module(f"{__name__}.{mod}")
        p = m.add_parser(sub, name)
        p.set_defaults(_run=m.run, _parser=p)
    return parser


def main(argv=None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `tudui ... | head` closed the pipe: end quietly, as Unix tools do
        _quiet_stdout()
        return 141


def _main(argv=None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2  # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from .. import console as runlog
    runlog.CLI_ARGV = list(argv) if argv is not None else None  # the command line a run records
    try:
        code = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except TuduiError as e:
        print(f"tudui {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        runlog.CLI_ARGV = None


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush finds no closed pipe to complain about."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (a notebook, a test)
        pass
