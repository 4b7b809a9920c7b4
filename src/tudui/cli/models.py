"""`tudui models`: every model name with its parameter count (10 classes), counted on the meta device."""
from __future__ import annotations

import sys

from .common import print_json


def add_parser(sub, name):
    p = sub.add_parser(name, help="list model names with their parameter counts (10 classes)",
                       description="List tudui's and torchvision's models with their parameter counts for 10 "
                                   "classes. Also usable: timm:<name> (pip install 'tudui[timm]') and "
                                   "package.module:Class for your own nn.Module.")
    p.add_argument("pattern", nargs="?", default=None, help="only names containing this text (e.g. resnet)")
    p.add_argument("--json", action="store_true", help="print a JSON list of {name, params}")
    return p


def run(args):
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..api import list_models
    rows = list_models(args.pattern)
    if args.json:
        print_json([{"name": n, "params": c} for n, c in rows])
        return 0
    if not rows:
        print(f"no model name contains '{args.pattern}'", file=sys.stderr)
        return 1
    for n, c in rows:
        print(f"{n:<24} {c:>14,}" if c is not None else f"{n:<24} {'?':>14}")
    print("also: timm:<name> (pip install 'tudui[timm]'), package.module:Class (your own nn.Module); "
          "options: --pretrained, --weights FILE, --freeze backbone, --backbone-lr", file=sys.stderr)
    return 0
