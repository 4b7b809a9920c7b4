"""Progress bars: a widget in Jupyter, a bar in a terminal, nothing where stderr is a file or a pipe (a log
then gets the one line per epoch the trainer prints anyway, never a bar redrawn frame by frame)."""
from __future__ import annotations

import importlib.util
import sys
import warnings


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
        from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not (enabled and interactive()), **kwargs)
