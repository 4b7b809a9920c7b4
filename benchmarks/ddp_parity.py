"""Does training under torchrun give the numbers one process gives? For each seed, `tudui train` in one
process (batch B, --threads 2) against `torchrun --nproc-per-node=2 -m tudui train` (batch B = 2 x B/2, one
thread each), same options otherwise; the final validation accuracy of both, and the spread over seeds of the
single process (the seed noise a difference has to be compared with). With --weights, also the largest
weight difference after one epoch of the course network (no batch norm) without augmentation, where the two
should agree to float rounding.

    python benchmarks/ddp_parity.py --data digits --seeds 0,1,2,3,4 --epochs 15 --weights
    python benchmarks/ddp_parity.py --data mnist --data-dir ../shared/datasets --seeds 0,1,2 --epochs 1

JSON on stdout (and in --save); progress on stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from _report import emit, machine  # benchmarks/_report.py, beside this script


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(procs: int, args: list, out: str, name: str) -> dict:
    """One training run; -> its final row of metrics.jsonl and the wall time."""
    env = dict(os.environ, OMP_NUM_THREADS=str(2 // procs))
    train = ["-m", "tudui", "train", *args, "--out", out, "--name", name, "--no-progress", "--threads", str(2 // procs)]
    if procs == 1:
        cmd = [sys.executable, *train]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={procs}", "--master-addr=127.0.0.1",
               f"--master-port={free_port()}", *train]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    rows = [json.loads(line) for line in open(os.path.join(out, name, "metrics.jsonl"))]
    return {"val_acc": rows[-1]["val_acc"], "val_loss": round(rows[-1]["val_loss"], 5), "wall_s": round(wall, 1),
            "epoch_s": round(sum(r["seconds"] for r in rows), 1)}


def summary(accs: list) -> dict:
    return {"mean": round(statistics.mean(accs), 4), "std": round(statistics.stdev(accs), 4) if len(accs) > 1 else None,
            "min": min(accs), "max": max(accs)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=64, help="the global batch of both")
    ap.add_argument("--weights", action="store_true", help="also the weight difference after one epoch, no aug")
    ap.add_argument("--save")
    args = ap.parse_args(argv)
    common = ["--data", args.data, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    if args.data_dir:
        common += ["--data-dir", os.path.abspath(args.data_dir)]
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for s in seeds:
            one = run(1, common + ["--seed", str(s)], out, f"one-{s}")
            two = run(2, common + ["--seed", str(s)], out, f"two-{s}")
            rows.append({"seed": s, "one_process": one, "two_processes": two})
            print(f"seed {s}: 1 process {one['val_acc']:.4f}, 2 processes {two['val_acc']:.4f}", file=sys.stderr)
        weights = None
        if args.weights:
            plain = common[:2] + ["--epochs", "1", "--batch-size", str(args.batch_size), "--augment", "none"]
            if args.data_dir:
                plain += ["--data-dir", os.path.abspath(args.data_dir)]
            run(1, plain, out, "w-one")
            run(2, plain, out, "w-two")
            a = torch.load(os.path.join(out, "w-one", "last.pt"), weights_only=True)
            b = torch.load(os.path.join(out, "w-two", "last.pt"), weights_only=True)
            diff = max((a["state_dict"][k] - b["state_dict"][k]).abs().max().item() for k in a["state_dict"])
            weights = {"steps": a["step"], "max_abs_weight_diff": diff, "options": plain}
    one = [r["one_process"]["val_acc"] for r in rows]
    two = [r["two_processes"]["val_acc"] for r in rows]
    emit({"what": "final val_acc, 1 process x batch B (2 threads) vs torchrun 2 processes x B/2 (1 thread each)",
          "options": common, "rows": rows, "one_process": summary(one), "two_processes": summary(two),
          "mean_difference": round(statistics.mean(two) - statistics.mean(one), 4),
          "paired_differences": [round(b - a, 4) for a, b in zip(one, two)],
          "weights_after_one_epoch_no_aug": weights, "machine": machine()}, args.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
