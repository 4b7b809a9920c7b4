"""`tudui import`: a .pth saved the course's way -> a tudui checkpoint, without running code from the file."""
from __future__ import annotations

import sys

from .common import print_json


def add_parser(sub, name):
    p = sub.add_parser(name, help="import a .pth saved the course's way (whole model or state_dict, any device)",
                       description="Reads torch.save(model, ...) or torch.save(model.state_dict(), ...) files "
                                   "without executing code from them (anything but tensors and module state is "
                                   "refused), maps the weights onto a tudui model and writes a tudui checkpoint.")
    p.add_argument("file", help="the .pth file")
    p.add_argument("--model", default="tudui",
                   help="the network the weights belong to: tudui (the course's Tudui) or a zoo name such as "
                        "vgg16; the head width is read from the weights (default: tudui)")
    p.add_argument("--classes", default=None,
                   help="class names: cifar10, imagenet, a,b,c or a .txt with one name a line "
                        "(default: 0..N-1, ImageNet's names for a 1000-wide head)")
    p.add_argument("--img-size", type=int, default=None,
                   help="input size N (N x N); default: read from the weights for tudui, 224 for zoo models")
    p.add_argument("--mean", default=None, help="Normalize mean R,G,B (default: none, as the course's ToTensor only)")
    p.add_argument("--std", default=None, help="Normalize std R,G,B (default: none)")
    p.add_argument("--out", required=True, help="where to write the tudui checkpoint (.pt)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    return p


def run(args):
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..api import import_pth
    r = import_pth(args.file, args.out, model=args.model, classes=args.classes, img_size=args.img_size,
                   mean=args.mean, std=args.std)
    if args.classes is None and r["num_classes"] != 1000:
        print(f"note: no --classes given; classes are named 0..{r['num_classes'] - 1}", file=sys.stderr)
    if args.json:
        print_json(r)
        return 0
    saved = f"{r['kind']}" + (f" of {r['saved_class']}" if r["saved_class"] else "")
    print(f"read {r['file']}: {saved}, saved on {', '.join(r['saved_on']) or '?'}; weights mapped {r['mapped']}")
    print(f"wrote {r['out']}: {r['model']}, {r['num_classes']} classes, {r['img_size']}x{r['img_size']} input")
    return 0
