from __future__ import annotations

from .common import add_load_flags, print_json


def add_parser(sub, name):
    from ..bench import FORMATS
    p = sub.add_parser(name, help="compare the formats a checkpoint can run in: latency, throughput, size, accuracy",
                       description="Exports the checkpoint to every format (each checked as `tudui export` checks "
                                   "it) and measures each on this machine: latency at batch 1 (p50, p99), throughput "
                                   "at --batch, file size and top-1 on the run's validation split (no TTA). "
                                   "Formats whose engine is not installed are listed as skipped, with the reason.")
    p.add_argument("checkpoint", help="a tudui checkpoint (.pt) or a run folder")
    p.add_argument("--formats", default="all",
                   help=f"comma-separated rows to run (default all): {', '.join(FORMATS)}")
    p.add_argument("--threads", type=int, default=None, help="threads for every engine (default: torch's current)")
    p.add_argument("--batch", type=int, default=64, help="batch size of the throughput column (default 64)")
    p.add_argument("--latency-runs", type=int, default=100, help="calls timed at batch 1 (default 100)")
    p.add_argument("--seconds", type=float, default=3.0,
                   help="about how long each latency and throughput measurement runs (default 3)")
    p.add_argument("--calibration", type=int, default=256, help="int8: training images to calibrate on (default 256)")
    p.add_argument("--val-limit", type=int, default=None,
                   help="measure top-1 on at most this many validation images (default: all)")
    p.add_argument("--data", default=None, help="data to measure accuracy on (default: the run's own)")
    p.add_argument("--keep", default=None, metavar="DIR", help="keep the exported files in DIR")
    p.add_argument("--json", action="store_true", help="print the result as JSON (progress stays on stderr)")
    add_load_flags(p)
    return p


def table(r: dict) -> str:
    def num(v, fmt):
        return format(v, fmt) if isinstance(v, (int, float)) else "-"
    head = ("format", "p50 ms", "p99 ms", f"img/s @{r['batch']}", "size MB", "top-1 %")
    lines = [head]
    for row in r["rows"]:
        if row["status"] != "ok":
            lines.append((row["name"], "skipped", "", "", "", ""))
            continue
        lines.append((row["name"], num(row["latency_p50_ms"], ".2f"), num(row["latency_p99_ms"], ".2f"),
                      num(row["throughput"], ".0f"), num((row["bytes"] or 0) / 1e6, ".2f") if row["bytes"] else "-",
                      num(row["accuracy"], ".2f")))
    widths = [max(len(str(ln[i])) for ln in lines) for i in range(len(head))]
    out = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(ln, widths)))
           for ln in lines]
    m = r["machine"]
    out.append(f"{m['cpu']}, {m['threads']} threads; top-1 on {r['val_images']} validation images")
    for row in r["rows"]:
        out.append(f"  {row['name']}: {row['note']}")
    return "\n".join(out)


def run(args):
    from ..api import bench
    r = bench(args.checkpoint, args.formats, threads=args.threads, batch=args.batch, latency_runs=args.latency_runs,
              seconds=args.seconds, calibration=args.calibration, val_limit=args.val_limit, data=args.data,
              keep=args.keep, verify=args.verify, unsafe_load=args.unsafe_load)
    if args.json:
        print_json(r)
    else:
        print(table(r))
    return 0
