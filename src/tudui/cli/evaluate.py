from __future__ import annotations

from .common import add_device, add_load_flags, print_json


def add_parser(sub, name):
    p = sub.add_parser(name, help="evaluate a checkpoint: loss, accuracy, per-class metrics, confusion matrix",
                       description="Evaluate a checkpoint or an exported model on the held-out split of the data it "
                                   "was trained on (or --data): loss, top-1 (and top-5) accuracy, per-class precision, "
                                   "recall and F1, and the confusion matrix, with the model's own preprocessing.")
    p.add_argument("checkpoint", help="a tudui checkpoint (.pt), a run folder, or a file made by `tudui export` "
                                      "(.onnx, run by onnxruntime; or TorchScript)")
    p.add_argument("--data", default=None, help="data spec (default: the data the checkpoint was trained on)")
    p.add_argument("--data-dir", default=None, help="root of built-in datasets (default: as in training)")
    p.add_argument("--download", action="store_true", help="allow downloading a missing built-in dataset")
    p.add_argument("--split", default=None, choices=["train", "val", "test"],
                   help="which split (default: the held-out split)")
    p.add_argument("--tta", action=__import__("argparse").BooleanOptionalAction, default=None,
                   help="test-time augmentation (default: as the checkpoint was trained)")
    p.add_argument("--exclude", default=None, metavar="CSV",
                   help="leave these images out (a path column, e.g. an audit's issues.csv filtered to its leaks)")
    p.add_argument("--relabel", default=None, metavar="CSV", help="CSV of path,label: count these images as this class")
    p.add_argument("--decisions", default=None, metavar="CSV",
                   help="CSV of path,action,label as `tudui audit`'s page saves it. On the run's own data, the "
                        "images its training left out or relabelled are always treated the same way")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_device(p)
    add_load_flags(p)
    return p


def run(args):
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..api import evaluate
    r = evaluate(args.checkpoint, data=args.data, split=args.split, device=args.device, tta=args.tta,
                 data_dir=args.data_dir, download=args.download, verify=args.verify, unsafe_load=args.unsafe_load,
                 exclude=args.exclude, relabel=args.relabel, decisions=args.decisions)
    if args.json:
        print_json(r)
        return 0
    d = r.get("decisions")
    changed = f" ({d['dropped']} left out, {d['relabelled']} relabelled by {d['origin']})" if d else ""
    print(f"split {r['split']}: {r['num_samples']} images{changed}")
    print(f"loss {r['loss']:.4f}  accuracy {r['accuracy']:.4f}" + (f"  top5 {r['top5']:.4f}" if "top5" in r else ""))
    w = max(8, max(len(c) for c in r["classes"]))
    print(f"{'class':<{w}}  precision  recall     f1  support")
    for c, m in r["per_class"].items():
        print(f"{c:<{w}}  {m['precision']:9.3f}  {m['recall']:6.3f}  {m['f1']:5.3f}  {m['support']:7d}")
    print("confusion matrix (rows: true, columns: predicted)")
    for c, row in zip(r["classes"], r["confusion_matrix"]):
        print(f"{c:<{w}}  " + " ".join(f"{v:5d}" for v in row))
    return 0
