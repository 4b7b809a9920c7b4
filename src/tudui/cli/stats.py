"""`tudui stats SPEC`: images per class, sizes and modes, and the exact per-channel mean/std of each split."""
from __future__ import annotations

from .common import print_json


def add_data_flags(p) -> None:
    """The flags that say where a data spec's files are (shared with `tudui preview`)."""
    p.add_argument("data", metavar="SPEC", help="built-in name (digits, mnist, fashion-mnist, cifar10, cifar100), "
                                                "image folder, or labels CSV")
    p.add_argument("--data-dir", default=None,
                   help="root of the built-in datasets, torchvision's layout (default: $TUDUI_DATA_DIR, else <user cache folder>/data)")
    p.add_argument("--download", action="store_true", default=None, help="fetch a missing built-in dataset")
    p.add_argument("--val-split", type=float, default=None,
                   help="fraction held out when the data has no held-out split (default: 0.2)")
    p.add_argument("--seed", type=int, default=None, help="seed of that hold-out (default: 0)")
    p.add_argument("--allow-outside", action="store_true", default=None,
                   help="accept a labels CSV whose paths lead outside its folder (refused by default)")


def data_options(args) -> dict:
    """The data flags that were given (so a config file's values are kept otherwise)."""
    return {k: getattr(args, k) for k in ("data_dir", "download", "val_split", "seed", "allow_outside") if getattr(args, k) is not None}


def add_parser(sub, name):
    p = sub.add_parser(name, help="dataset statistics: images per class, sizes, modes, per-channel mean/std",
                       description="Per split: images per class, image sizes and modes, and the per-channel mean "
                                   "and std (0-1 scale) over every pixel of every readable image at its native "
                                   "size; and the files that could not be read.")
    add_data_flags(p)
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: up to 8)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args):
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..api import format_stats, stats
    r = stats(args.data, workers=args.workers, **data_options(args))
    if args.json:
        print_json(r)
    else:
        print(format_stats(r))
    return 0
