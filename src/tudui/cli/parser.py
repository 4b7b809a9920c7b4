"""The argument parser every tudui command uses: no prefix matching (`--epoch 3` is a mistake, not
`--epochs 3`), and a mistyped flag is answered with the subcommand's own usage line and the nearest flag."""
from __future__ import annotations

import argparse
import difflib


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def option_names(self) -> list:
        return [s for a in self._actions for s in a.option_strings if s.startswith("--")]

    def unknown(self, extras: list):
        """Exit 2 with this parser's usage and, for each unknown flag, the nearest known one."""
        hints = []
        for arg in extras:
            if arg.startswith("-"):
                near = difflib.get_close_matches(arg.split("=", 1)[0], self.option_names(), n=1, cutoff=0.6)
                if near:
                    hints.append(f"did you mean {near[0]}?")
        msg = "unrecognized arguments: " + " ".join(extras)
        self.error(msg + ("; " + " ".join(hints) if hints else ""))


def parse(parser: Parser, argv) -> argparse.Namespace:
    """Parse with the top-level parser; leftovers are reported by the subcommand that got them."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        getattr(args, "_parser", parser).unknown(extras)
    return args
