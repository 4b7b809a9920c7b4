"""`tudui compare`: several runs' curves overlaid, with the config keys where they differ."""
from __future__ import annotations


def add_parser(sub, name):
    p = sub.add_parser(name, help="overlay the curves of runs and list their differing config keys")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or checkpoints inside them), two or more")
    p.add_argument("--out", default="compare.html", metavar="FILE.png|FILE.html",
                   help="a PNG of the curves, or a self-contained HTML page with the curves and the table of "
                        "differing config keys (default: compare.html)")
    return p


def run(args):
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..report.runs import compare, config_diff, read_config, resolve_run
    path = compare(args.runs, out=args.out)
    if path.lower().endswith(".png"):  # the table goes to the terminal
        dirs = [resolve_run(r) for r in args.runs]
        for k, vals in config_diff({d: read_config(d) for d in dirs}):
            print(f"{k}: " + "  |  ".join(str(v) for v in vals))
    print(path)
    return 0
