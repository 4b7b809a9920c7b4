from __future__ import annotations

import sys

from .common import add_load_flags, print_json


def add_parser(sub, name):
    p = sub.add_parser(name, help="export a checkpoint to ONNX (float32 or int8), torch.export .pt2 or TorchScript "
                                     "(checked against PyTorch)",
                       description="Writes a file another program runs without tudui: eval mode, EMA weights where "
                                   "the checkpoint has them, a dynamic batch axis, and the class names, input size, "
                                   "channels and normalization in its metadata. The file is loaded back and compared "
                                   "with PyTorch on 64 inputs at batch sizes 1, 2 and 7 before it is kept. With --int8, the "
                                   "checked float32 ONNX model is quantized (onnxruntime static quantization, QDQ, "
                                   "per-channel weights) on images of the run's training split, and kept only if its "
                                   "top-1 on the run's validation split is within --max-drop points of float32.")
    p.add_argument("checkpoint", help="a tudui checkpoint (.pt) or a run folder")
    p.add_argument("--format", default="onnx", choices=["onnx", "pt2", "torchscript"],
                   help="file format (default onnx); pt2: a torch.export program for PyTorch consumers; torchscript: "
                        "deprecated by torch, for older consumers")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="where to write (default: next to the checkpoint, best.pt -> best.onnx, best.int8.onnx, "
                        "best.pt2 or best.torchscript.pt)")
    p.add_argument("--int8", action="store_true",
                   help="write an int8 ONNX model, calibrated on the run's training images and checked on its "
                        "validation split")
    p.add_argument("--calibration", type=int, default=256, metavar="N",
                   help="--int8: training images to calibrate on (default 256)")
    p.add_argument("--max-drop", type=float, default=1.0, metavar="POINTS",
                   help="--int8: the most top-1 accuracy (in points) int8 may lose against float32; more refuses "
                        "(default 1)")
    p.add_argument("--max-float-layers", type=int, default=3, metavar="N",
                   help="--int8: when the drop is too large, keep up to N of the layers that lose most in float32 "
                        "(default 3; 0: never)")
    p.add_argument("--force", action="store_true", help="--int8: keep the file even when the drop exceeds --max-drop")
    p.add_argument("--data", default=None,
                   help="--int8: the data to calibrate and measure on (default: the data the run was trained on)")
    p.add_argument("--opset", type=int, default=None,
                   help="ONNX opset (default 18; below 18 uses torch's older TorchScript-based exporter)")
    p.add_argument("--json", action="store_true", help="print the result (path, exporter, largest difference) as JSON")
    add_load_flags(p)
    return p


def run(args):
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..api import export
    r = export(args.checkpoint, out=args.out, format=args.format, opset=args.opset,
               verify=args.verify, unsafe_load=args.unsafe_load, int8=args.int8, calibration=args.calibration,
               max_drop=args.max_drop, force=args.force, max_float_layers=args.max_float_layers, data=args.data)
    if args.json:
        print_json(r)
        return 0
    kind = {"onnx": f"ONNX opset {r['opset']}", "pt2": "torch.export program",
            "torchscript": "TorchScript"}[r["format"]] + (", int8" if r.get("int8") else "")
    print(f"wrote {r['path']} ({kind}, {r['bytes'] / 1e6:.1f} MB, dynamic batch, input "
          f"{r['channels']}x{r['input_size'][0]}x{r['input_size'][1]}, {r['classes']} classes)")
    for note in r["warnings"]:
        print(f"warning: the tracer fixed a value computed from the input; check this line: {note}", file=sys.stderr)
    ties = f", {r['top1_ties']} top-1 ties within the tolerance" if r["top1_ties"] else ""
    what = "the float32 model " if r.get("int8") else ""
    print(f"{what}checked against PyTorch on {r['checked_inputs']} inputs at batch sizes "
          f"{', '.join(map(str, r['batch_sizes']))}: largest difference {r['max_abs_diff']:.2g}{ties}", file=sys.stderr)
    q = r.get("int8")
    if q:
        print(f"top-1 on {q['val_images']} validation images: float32 {q['accuracy_fp32']:.2f}%, int8 "
              f"{q['accuracy_int8']:.2f}% (drop {q['drop']:.2f} points, limit {q['max_drop']:g}; calibrated on "
              f"{q['calibration_images']} training images)")
        if q["float_layers"]:
            print("kept in float32 (they lost most when quantized): "
                  + ", ".join(f"{f['layer']} ({f['node']})" for f in q["float_layers"]))
        if q["drop"] > q["max_drop"]:
            print(f"warning: kept with --force although int8 loses more than --max-drop {q['max_drop']:g}",
                  file=sys.stderr)
    return 0
