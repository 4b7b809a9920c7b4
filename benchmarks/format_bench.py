"""`tudui bench` on one checkpoint, recorded with the machine: every format's latency at batch 1 (p50, p99),
throughput at batch 64, file size and top-1 on the run's validation split. Run it under `cpulock bench` (the
machine alone): the figures are timings.

    python benchmarks/format_bench.py runs/r18/best.pt --save benchmarks/results/format_bench-r18.json
    python benchmarks/format_bench.py runs/cifar/best.pt --formats onnx,onnx-int8 --threads 2
Any further arguments go to `tudui bench` unchanged.
"""
from __future__ import annotations

import argparse
import subprocess
import sys

from _report import emit, machine  # benchmarks/_report.py, beside this script


def lscpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--save", default=None)
    p.add_argument("--note", default="", help="conditions worth recording (what else ran, which model)")
    args, rest = p.parse_known_args()
    import json

    from tudui.cli import main as tudui_main
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = tudui_main(["bench", args.checkpoint, "--json", *rest])
    if rc:
        sys.exit(rc)
    result = json.loads(buf.getvalue())
    result["lscpu_model_name"] = lscpu_model()
    result["host"] = machine()
    result["command"] = ["tudui", "bench", args.checkpoint, "--json", *rest]
    result["note"] = args.note
    emit(result, args.save)


if __name__ == "__main__":
    main()
