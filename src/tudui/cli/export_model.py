from __future__ import annotations

import sys

from .common import add_load_flags, print_json


def add_parser(sub, name):
    p = sub.add_parser(name, help="export a checkpoint to ONNX or TorchScript (checked against PyTorch)",
                       description="Writes a file another program runs without tudui: eval mode, EMA weights where "
                                   "the checkpoint has them, a dynamic batch axis, and the class names, input size, "
                                   "channels and normalization in its metadata. The file is loaded back and compared "
                                   "with PyTorch on 64 inputs at batch sizes 1, 2 and 7 before it is kept.")
    p.add_argument("checkpoint", help="a tudui checkpoint (.pt) or a run folder")
    p.add_argument("--format", default="onnx", choices=["onnx", "torchscript"], help="file format (default onnx)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="where to write (default: next to the checkpoint, best.pt -> best.onnx or best.torchscript.pt)")
    p.add_argument("--opset", type=int, default=None,
                   help="ONNX opset (default 18; below 18 uses torch's older TorchScript-based exporter)")
    p.add_argument("--json", action="store_true", help="print the result (path, exporter, largest difference) as JSON")
    add_load_flags(p)
    return p


def run(args):
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..export import export
    r = export(args.checkpoint, out=args.out, format=args.format, opset=args.opset,
               verify=args.verify, unsafe_load=args.unsafe_load)
    if args.json:
        print_json(r)
        return 0
    kind = f"ONNX opset {r['opset']}" if r["format"] == "onnx" else "TorchScript"
    print(f"wrote {r['path']} ({kind}, {r['bytes'] / 1e6:.1f} MB, dynamic batch, input "
          f"{r['channels']}x{r['input_size'][0]}x{r['input_size'][1]}, {r['classes']} classes)")
    for note in r["warnings"]:
        print(f"warning: the tracer fixed a value computed from the input; check this line: {note}", file=sys.stderr)
    ties = f", {r['top1_ties']} top-1 ties within the tolerance" if r["top1_ties"] else ""
    print(f"checked against PyTorch on {r['checked_inputs']} inputs at batch sizes "
          f"{', '.join(map(str, r['batch_sizes']))}: largest difference {r['max_abs_diff']:.2g}{ties}", file=sys.stderr)
    return 0
