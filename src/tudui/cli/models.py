from __future__ import annotations

from .common import print_json


def add_parser(sub, name):
    p = sub.add_parser(name, help="list model names with their parameter counts (10 classes)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    return p


def run(args):
    from ..models import list_models
    rows = list_models()
    if args.json:
        print_json([{"name": n, "params": c} for n, c in rows])
        return 0
    for n, c in rows:
        print(f"{n:<28} {c:>14,}" if c is not None else f"{n:<28} {'?':>14}")
    return 0
