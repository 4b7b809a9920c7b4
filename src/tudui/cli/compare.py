"""`tudui compare`: several runs' curves overlaid, with the config keys where they differ."""
from __future__ import annotations

import os
import sys


def add_parser(sub, name):
    p = sub.add_parser(name, help="overlay the curves of runs and list their differing config keys",
                       description="Overlay the loss, accuracy and learning-rate curves of two or more runs and "
                                   "list the config keys where they differ. Writes compare.html next to the runs "
                                   "(compare-2.html... when one exists) or --out; prints the path and a summary.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or checkpoints inside them), two or more")
    p.add_argument("--out", default=None, metavar="FILE.png|FILE.html",
                   help="a PNG of the curves, or a self-contained HTML page with the curves and the table of "
                        "differing config keys (default: compare.html in the runs' folder, never overwritten)")
    return p


def run(args):
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..api import compare, compare_summary, config_diff, read_config, resolve_run
    replaced = args.out is not None and os.path.exists(args.out)
    path = compare(args.runs, out=args.out)
    if path.lower().endswith(".png"):  # the table goes to the terminal
        dirs = [resolve_run(r) for r in args.runs]
        for k, vals in config_diff({d: read_config(d) for d in dirs}):
            print(f"{k}: " + "  |  ".join(str(v) for v in vals))
    print(path)
    print(compare_summary(args.runs) + (f"; replaced the previous {args.out}" if replaced else ""), file=sys.stderr)
    return 0
