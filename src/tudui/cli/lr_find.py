"""`tudui lr-find`: the learning-rate range test; prints the suggested rate and writes the loss-vs-lr plot."""
from __future__ import annotations

import os
import sys

from .common import print_json
from .train import add_config_flags, collect_overrides


def add_parser(sub, name):
    p = sub.add_parser(name, help="learning-rate range test: suggest a --lr and plot loss against lr",
                       description="Train from the initial weights for up to --steps batches while the learning rate "
                                   "grows exponentially from --start-lr to --end-lr; stop when the loss diverges. "
                                   "Takes the same options as `tudui train` (data, model, optimizer, ...).")
    p.add_argument("--config", default=None, help="YAML file of training options")
    p.add_argument("--start-lr", type=float, default=1e-7, help="first learning rate (default: 1e-7)")
    p.add_argument("--end-lr", type=float, default=10.0, help="last learning rate (default: 10)")
    p.add_argument("--steps", type=int, default=100, help="number of batches, one per rate (default: 100)")
    p.add_argument("--out", default=".", help="folder for lr_find.png, or a .png path (default: the current folder)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_config_flags(p, skip=("out", "name", "epochs", "save_every", "eval_every", "patience", "min_delta",
                              "monitor", "scheduler", "step_size", "gamma", "warmup_epochs", "ema", "ema_every",
                              "tta"))
    return p


def run(args):
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..config import resolve
    from ..api import lr_find
    cfg = resolve(collect_overrides(args), config_file=args.config)
    path = args.out if args.out.lower().endswith(".png") else os.path.join(args.out, "lr_find.png")
    r = lr_find(cfg, plot=path, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps,
                progress=args.progress)
    if args.json:
        print_json(r)
        return 0
    print(f"stopped after {len(r['lrs'])} steps ({r['stopped']}); lowest loss at lr {r['min_loss_lr'] * 10:.3g}",
          file=sys.stderr)
    print(f"suggested lr: {r['suggested_lr']:.3g}   (try: tudui train --lr {r['suggested_lr']:.3g} ...)")
    print(f"plot: {path}")
    return 0
