from __future__ import annotations

import sys

from .common import add_device, add_load_flags, print_json


def add_parser(sub, name):
    p = sub.add_parser(name, help="classify image files or folders with a checkpoint",
                       description="Applies exactly the preprocessing stored in the checkpoint.")
    p.add_argument("checkpoint", help="a tudui checkpoint (.pt) or a run folder")
    p.add_argument("paths", nargs="+", help="image files or folders (a folder's images in sorted order)")
    p.add_argument("--topk", type=int, default=3, help="how many classes to show per image (default 3)")
    p.add_argument("--json", action="store_true", help="print a JSON list in the order of the inputs")
    add_device(p)
    add_load_flags(p)
    return p


def run(args):
    from ..predict import predict
    results = predict(args.checkpoint, args.paths, topk=args.topk, device=args.device,
                      verify=args.verify, unsafe_load=args.unsafe_load)
    if results and all("error" in r for r in results):  # nothing could be read: a user mistake, exit 2
        from ..errors import DataError
        first = results[0]
        raise DataError(f"cannot read image {first['path']}: {first['error']}" if len(results) == 1 else
                        f"cannot read any of the {len(results)} images (first: {first['path']}: {first['error']})")
    if args.json:
        print_json(results)
        return 0
    for r in results:
        if "error" in r:
            print(f"{r['path']}: unreadable ({r['error']})", file=sys.stderr)
            continue
        best = "  ".join(f"{t['label']} {t['prob']:.3f}" for t in r["topk"])
        print(f"{r['path']}: {best}")
    return 0
