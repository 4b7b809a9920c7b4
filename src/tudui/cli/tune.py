"""`tudui tune`: search training settings with Optuna (a thin layer over tudui.tune)."""
from __future__ import annotations

import dataclasses

from .common import print_json
from .train import add_config_flags, collect_overrides

# flags of tune's own that share a name with a config key: --out/--name name the study folder, --workers counts
# worker processes (a trial's DataLoader workers stay settable in --config)
OWN = ("out", "name", "workers")


def add_parser(sub, name):
    p = sub.add_parser(name, help="search learning rate, batch size, augmentation, ... with Optuna",
                       description="Search training settings with Optuna. Each trial is an ordinary run folder "
                                   "under the study folder; its value is the accuracy of its best.pt on the held-out "
                                   "split. Any training flag given here is fixed for every trial and leaves the "
                                   "default search space. Running the same command again continues the study.")
    p.add_argument("--trials", type=int, default=None, metavar="N",
                   help="finished (complete or pruned) trials the study should hold")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="stop starting trials after this")
    p.add_argument("--space", action="append", default=None, metavar="KEY=KIND:...",
                   help="search KEY over a range: log:LOW:HIGH, float:LOW:HIGH, int:LOW:HIGH[:STEP], choice:A,B,C, "
                        "or off (repeatable; KEY a config key or model_args.NAME)")
    p.add_argument("--space-file", default=None, metavar="YAML", help="the search space as a YAML mapping")
    p.add_argument("--space-only", action="store_true", help="search only the --space / --space-file keys")
    p.add_argument("--pruner", default="median", choices=["median", "halving", "none"],
                   help="stop hopeless trials early from their per-epoch validation accuracy (default: median)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes on this machine; the CPU threads are split between them (default: 1)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage shared by workers: postgresql://..., mysql://..., sqlite:///..., or a "
                        "journal file path (default: study.db in the study folder)")
    p.add_argument("--out", default="runs", help="parent folder of the study folder (default: runs)")
    p.add_argument("--name", default=None, help="study name and folder (default: tune-<data>[-<recipe>])")
    p.add_argument("--config", default=None, help="YAML file of fixed training options")
    p.add_argument("--verbose", action="store_true", help="show each trial's training lines")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    add_config_flags(p, skip=OWN)
    return p


def run(args):
    from ..api import tune
    options = {k: v for k, v in collect_overrides(args).items() if k not in OWN}
    result = tune(trials=args.trials, timeout=args.timeout, space=args.space, space_file=args.space_file,
                  default_space=not args.space_only, pruner=args.pruner, workers=args.workers,
                  storage=args.storage, out=args.out, name=args.name, config=args.config, verbose=args.verbose,
                  **options)
    if args.json:
        print_json(dataclasses.asdict(result))
    return 0
