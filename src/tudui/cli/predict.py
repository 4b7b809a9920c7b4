from __future__ import annotations

import sys

from .common import add_device, add_engine, add_load_flags, print_json


def add_parser(sub, name):
    p = sub.add_parser(name, help="classify image files or folders with a checkpoint or an exported model",
                       description="Applies exactly the preprocessing stored in the checkpoint (or in the exported "
                                   "file's metadata). With --out, results stream to a CSV or JSONL file as they are "
                                   "computed, and an unreadable file becomes a row with its error.")
    p.add_argument("checkpoint", help="a tudui checkpoint (.pt), a run folder, or a file made by `tudui export` "
                                      "(.onnx, run by onnxruntime; or TorchScript)")
    p.add_argument("paths", nargs="+", help="image files or folders (a folder's images in sorted order)")
    p.add_argument("--topk", type=int, default=3, help="how many classes to show per image (default 3)")
    p.add_argument("--json", action="store_true", help="print a JSON list in the order of the inputs")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="stream results to FILE (.csv or .jsonl): one complete row per image, written as computed")
    p.add_argument("--batch-size", type=int, default=64, help="images per model call (default 64)")
    p.add_argument("--workers", type=int, default=None,
                   help="threads decoding images ahead of the model (default: up to 4; 0 decodes in the main thread)")
    p.add_argument("--invert", action="store_true",
                   help="classify each image's negative: for a digit drawn dark on light when the model was trained "
                        "on light-on-dark digits (predict says when an image looks like that)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="with --out: no progress bar on stderr")
    add_engine(p)
    add_device(p)
    add_load_flags(p)
    return p


def run(args):
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..errors import ConfigError
    if args.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    if args.out:
        from ..api import predict_to_file
        r = predict_to_file(args.checkpoint, args.paths, args.out, topk=args.topk, batch_size=args.batch_size,
                            workers=args.workers, device=args.device, progress=args.progress,
                            verify=args.verify, unsafe_load=args.unsafe_load, engine=args.engine,
                            invert=args.invert)
        rate = r["images"] / r["seconds"] if r["seconds"] > 0 else 0.0
        note = f"; {r['failed']} could not be read (see the error column)" if r["failed"] else ""
        print(f"wrote {r['images']} rows to {r['out']} in {r['seconds']:.1f} s ({rate:.0f} images/s){note}",
              file=sys.stderr)
        if args.json:
            print_json(r)
        return 0
    from ..api import predict
    results = predict(args.checkpoint, args.paths, topk=args.topk, device=args.device, batch_size=args.batch_size,
                      workers=args.workers, verify=args.verify, unsafe_load=args.unsafe_load, engine=args.engine,
                      invert=args.invert)
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
        if r.get("note"):
            print(f"  note: {r['note']}", file=sys.stderr)
    return 0
