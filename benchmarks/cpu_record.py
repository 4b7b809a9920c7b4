"""The CPU speed record, side by side: `tudui train --recipe R` against the airbench anchor
(`../shared/anchors/airbench_cpu.py 93 1 bf16`), one seed of each per pair, alternating which side goes first,
timed as whole processes (interpreter start to exit: data loading, init, training, the final TTA evaluation).

    python benchmarks/cpu_record.py --recipe cifar10-speed94 --seeds 0,1,2 \\
        --data ~/.cache/tudui/cifar10-jpeg --anchor-dir /tmp/ab --save benchmarks/results/cpu_record-xeon.json

--anchor-dir must hold cifar10/train.pt and cifar10/test.pt (made by ../shared/anchors/cifar_pt.py from the same
JPEG folder) and airbench==0.1.8 must be installed. tudui's accuracy is the run's own final evaluation with the
recipe's TTA (what `tudui eval` reports for last.pt); the anchor's is its printed tta_acc. tudui's decoded-data
cache is built before any clock starts. Any further arguments go to `tudui train` unchanged (e.g. --epochs 15).
Run it alone on the machine: two trainings at once distort both.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from _report import emit, machine  # benchmarks/_report.py, beside this script
from cifar_speed import earlier_runs, warm_cache

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHOR = os.path.join(HERE, "..", "..", "shared", "anchors", "airbench_cpu.py")


def run_tudui(recipe: str, data: str, seed: int, out: str, extra: list) -> dict:
    name = f"{recipe}-seed{seed}"
    cmd = [sys.executable, "-m", "tudui", "train", "--recipe", recipe, "--data", data, "--seed", str(seed),
           "--out", out, "--name", name, "--no-progress", *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    with open(os.path.join(out, name, "metrics.jsonl")) as fh:
        rows = [json.loads(ln) for ln in fh if ln.strip()]
    return {"side": "tudui", "seed": seed, "accuracy": rows[-1]["val_acc"], "seconds": round(seconds, 1),
            "epoch_seconds": [round(r["seconds"], 1) for r in rows], "command": " ".join(cmd[1:])}


def run_anchor(anchor: str, which: str, cwd: str, seed: int, bf16: bool) -> dict:
    # airbench seeds nothing: every run of it is a fresh random draw, so the pair's seed only labels it
    cmd = [sys.executable, anchor, which, "1"] + (["bf16"] if bf16 else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=True, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    m = re.search(r"RESULT \S+ run=\d+ tta_acc=([\d.]+) wall_s=([\d.]+)", proc.stdout)
    if not m:
        sys.exit(f"no RESULT line from {anchor}:\n{proc.stdout[-2000:]}")
    return {"side": f"airbench{which}" + ("-bf16" if bf16 else ""), "seed": seed, "accuracy": float(m.group(1)),
            "seconds": round(seconds, 1), "own_clock_seconds": float(m.group(2)), "command": " ".join(cmd[1:])}


def mean(xs: list) -> float:
    return round(sum(xs) / len(xs), 5) if xs else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="cifar10-speed94")
    ap.add_argument("--data", default=os.path.expanduser("~/.cache/tudui/cifar10-jpeg"))
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one pair each")
    ap.add_argument("--first", choices=["tudui", "anchor"], default="tudui",
                    help="which side runs first in the first pair (the order alternates from pair to pair)")
    ap.add_argument("--only", choices=["tudui", "anchor"], default=None, help="run one side only")
    ap.add_argument("--anchor", default=ANCHOR)
    ap.add_argument("--anchor-which", default="93")
    ap.add_argument("--anchor-dir", required=True, help="folder holding cifar10/train.pt and cifar10/test.pt")
    ap.add_argument("--fp32", action="store_true", help="the anchor in fp32 (default: bf16 autocast)")
    ap.add_argument("--include", default=None, metavar="JSON", help="an earlier result of this script to add to")
    ap.add_argument("--out", default=None)
    ap.add_argument("--save", default=None)
    args, extra = ap.parse_known_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="tudui-record-")
    config = warm_cache(args.recipe, args.data, extra)  # the decoded-data cache, built before any clock starts
    runs = earlier_runs(args.include, config, args.recipe)
    first = args.first
    for seed in [int(s) for s in args.seeds.split(",")]:
        order = ["tudui", "anchor"] if first == "tudui" else ["anchor", "tudui"]
        for side in order:
            if args.only and side != args.only:
                continue
            load, started = round(os.getloadavg()[0], 2), time.strftime("%H:%M:%S")
            r = (run_tudui(args.recipe, args.data, seed, out, extra) if side == "tudui" else
                 run_anchor(os.path.abspath(args.anchor), args.anchor_which, args.anchor_dir, seed, not args.fp32))
            r.update(loadavg_1min_before=load, started=started, finished=time.strftime("%H:%M:%S"))
            runs.append(r)
            print(f"{r['side']} seed {seed}: {r['accuracy']:.4f} in {r['seconds']:.0f} s", file=sys.stderr, flush=True)
        first = "anchor" if first == "tudui" else "tudui"
    ours = [r for r in runs if r["side"] == "tudui"]
    theirs = [r for r in runs if r["side"] != "tudui"]
    summary = {"tudui_mean_accuracy": mean([r["accuracy"] for r in ours]),
               "tudui_mean_seconds": mean([r["seconds"] for r in ours]),
               "anchor_mean_accuracy": mean([r["accuracy"] for r in theirs]),
               "anchor_mean_seconds": mean([r["seconds"] for r in theirs])}
    if ours and theirs:
        summary["time_ratio"] = round(summary["tudui_mean_seconds"] / summary["anchor_mean_seconds"], 3)
    emit({"recipe": args.recipe, "extra_args": extra, "config": config, "runs": runs, "summary": summary,
          "machine": machine("cpu"), "date": time.strftime("%Y-%m-%d")}, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
