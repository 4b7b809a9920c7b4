"""`tudui report`: one self-contained HTML page about a trained model (tudui.report)."""
from __future__ import annotations

import argparse

from .common import add_device, add_load_flags


def add_parser(sub, name):
    p = sub.add_parser(name, help="write an HTML report: curves, confusion matrix, mistakes with Grad-CAM, calibration",
                       description="Write one self-contained HTML file about a run or checkpoint (every image "
                                   "inlined; opens without network) and its figures as PNG files beside it.")
    p.add_argument("path", metavar="RUN_DIR|CKPT", help="a run folder (its best.pt, else last.pt) or a checkpoint")
    p.add_argument("--data", default=None, help="data spec (default: the data the checkpoint was trained on)")
    p.add_argument("--split", default=None, choices=["train", "val", "test"],
                   help="which split to report on (default: the held-out split)")
    p.add_argument("--out", default=None, metavar="FILE.html",
                   help="the page to write (default: RUN_DIR/report.html; figures go to FILE/ beside it)")
    p.add_argument("--top", type=int, default=16, metavar="N",
                   help="how many most-confident mistakes (and correct predictions) to show (default: 16)")
    p.add_argument("--cam", action=argparse.BooleanOptionalAction, default=True,
                   help="Grad-CAM maps beside the mistakes (default: on)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="test-time augmentation (default: as the checkpoint was trained)")
    p.add_argument("--data-dir", default=None, help="root of built-in datasets (default: as in training)")
    p.add_argument("--download", action="store_true", help="allow downloading a missing built-in dataset")
    add_device(p)
    add_load_flags(p)
    return p


def run(args):
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..api import report
    path = report(args.path, args.data, split=args.split, out=args.out, top=args.top, device=args.device,
                  tta=args.tta, data_dir=args.data_dir, download=args.download, cam=args.cam,
                  verify=args.verify, unsafe_load=args.unsafe_load)
    print(path)
    return 0
