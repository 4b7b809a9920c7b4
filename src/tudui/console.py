"""The ONE way tudui prints a line for a person: progress, notices and warnings go to stderr (so stdout can
carry JSON), nothing at all in quiet mode or in the ranks above 0 of a torchrun job (rank 0 speaks for all)."""
from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from typing import Optional

_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Silence `say` in this process (e.g. a library caller that wants no output)."""
    global _QUIET
    _QUIET = bool(quiet)


def rank() -> int:
    """This process's rank under torchrun (its RANK variable with WORLD_SIZE > 1), else 0."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return 0
    return int(os.environ.get("RANK", "0") or 0)


def quiet() -> bool:
    return _QUIET or rank() > 0


def say(msg: str) -> None:
    """One line (or a few) on stderr, unless quiet."""
    if not quiet():
        print(msg, file=sys.stderr, flush=True)


def notice(msg: str) -> None:
    say(f"notice: {msg}")


def warn(msg: str) -> None:
    say(f"warning: {msg}")


CLI_ARGV: Optional[list] = None  # set by tudui.cli.main while it runs a command given as a list


def command_line() -> list:
    """This process's command line as the user typed it: `tudui ...`, `python -c ...` or `python script ...`
    (`tudui ...` too for tudui.cli.main(argv) called from Python)."""
    if CLI_ARGV is not None:
        return ["tudui"] + list(CLI_ARGV)
    argv = list(sys.argv) or [""]
    if os.path.basename(argv[0]) in ("tudui", "__main__.py"):
        return ["tudui"] + argv[1:]
    return ["python"] + argv


# Progress bars: a widget in Jupyter, a bar in a terminal, nothing where stderr is a file or a pipe (a log
# then gets the one line per epoch the trainer says anyway, never a bar redrawn frame by frame).
def in_notebook() -> bool:
    """Running in a Jupyter kernel (notebook, lab, VS Code) that can show widgets."""
    return "ipykernel.zmqshell" in sys.modules and importlib.util.find_spec("ipywidgets") is not None


def interactive() -> bool:
    """Whether a progress bar has somewhere to live: a Jupyter kernel with widgets, or stderr on a terminal."""
    if in_notebook():
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def progress_bar(total: int, desc: str, enabled: bool = True, **kwargs):
    """tqdm.auto's bar (a widget in Jupyter) on stderr, disabled unless `enabled` and `interactive()`."""
    with warnings.catch_warnings():  # tqdm.auto's note that notebook mode is experimental
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm  # import-time cost: tqdm, only when a bar is made
    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not (enabled and interactive()), **kwargs)
