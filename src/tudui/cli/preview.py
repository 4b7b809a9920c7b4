"""`tudui preview SPEC`: see what the training augmentation does, as a labelled PNG grid (and in TensorBoard)."""
from __future__ import annotations

import sys

from .stats import add_data_flags, data_options


def add_parser(sub, name):
    p = sub.add_parser(name, help="a labelled grid of augmented training samples (PNG and TensorBoard)",
                       description="Draw training samples through the training augmentation and write them as a "
                                   "grid with their class names, to a PNG and to TensorBoard (add_image).")
    add_data_flags(p)
    p.add_argument("--augment", choices=["none", "basic", "strong"], default=None,
                   help="augmentation preset (default: basic, or the config file's)")
    p.add_argument("--img-size", type=int, default=None, help="resize to N x N (default: as training would)")
    p.add_argument("--cutout", type=int, default=None, help="cutout square size with the basic preset")
    p.add_argument("--config", default=None, help="a training YAML config (its augment / img_size / transforms)")
    p.add_argument("--num", type=int, default=32, help="number of samples (default: 32)")
    p.add_argument("--out", default="preview.png", help="PNG file to write (default: preview.png)")
    p.add_argument("--logdir", default="runs/preview",
                   help="TensorBoard folder for the grid (default: runs/preview); 'none' to skip")
    return p


def run(args):
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..api import preview
    opts = data_options(args)
    for key in ("augment", "img_size", "cutout"):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    logdir = None if args.logdir.lower() == "none" else args.logdir
    path = preview(args.data, out=args.out, n=args.num, logdir=logdir, config=args.config, **opts)
    print(f"wrote {path}" + (f"; in TensorBoard: tudui board {logdir}" if logdir else ""), file=sys.stderr)
    return 0
