"""`tudui runs`: one row per run folder, newest first."""
from __future__ import annotations

from .common import print_json


def add_parser(sub, name):
    p = sub.add_parser(name, help="list runs: data, model, epochs, best val accuracy, wall time, status",
                       description="List the run folders under RUNS_DIR, newest first: data, model, epochs done of "
                                   "planned, best validation accuracy, wall time and status.")
    p.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR",
                   help="the folder holding run folders (default: runs)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of the table")
    return p


def run(args):
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..api import format_table, list_runs
    rows = list_runs(args.runs_dir)
    if args.json:
        print_json(rows)
    elif not rows:
        print(f"no runs in {args.runs_dir}")
    else:
        print(format_table(rows))
    return 0
