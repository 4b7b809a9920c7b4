"""`tudui report` against `tudui eval` on the same checkpoint and split: wall time of each command (fresh
processes, the decoded split already in the cache for both), and the report's own split between its one
model pass and everything else (figures, Grad-CAM, page). The issue's budget: report <= 1.5 x eval + a few
seconds of plotting.

    cpu-bench python benchmarks/report_vs_eval.py [--data ~/.cache/tudui/cifar10-jpeg] [--ckpt CKPT]
        [--split test] [--repeats 2] [--save benchmarks/results/report_vs_eval-cifar10.json]

Without --ckpt a quick checkpoint is trained first (not timed): fastnet, one epoch, on the data's train split.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _report import emit, machine  # noqa: E402


def timed(cmd: list) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.expanduser("~/.cache/tudui/cifar10-jpeg"))
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--split", default="test")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--save", default=None)
    args = ap.parse_args()
    tudui = [sys.executable, "-m", "tudui"]
    work = tempfile.mkdtemp(prefix="tudui-report-bench-")
    train_s = None
    ckpt = args.ckpt
    if ckpt is None:
        t0 = time.perf_counter()
        subprocess.run(tudui + ["train", "--data", args.data, "--model", "fastnet", "--epochs", "1", "--out", work,
                                "--name", "run", "--no-progress"], check=True, stdout=subprocess.DEVNULL)
        train_s = time.perf_counter() - t0
        ckpt = os.path.join(work, "run", "best.pt")
    ev = tudui + ["eval", ckpt, "--split", args.split, "--json"]
    out = os.path.join(work, "report.html")
    rep = tudui + ["report", ckpt, "--split", args.split, "--out", out]
    subprocess.run(ev, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm the decode cache
    evals, reports, inner = [], [], []
    for _ in range(args.repeats):
        evals.append(timed(ev))
        reports.append(timed(rep))
        with open(os.path.join(work, "report", "report.json"), encoding="utf-8") as fh:
            inner.append(json.load(fh))
    acc = json.loads(subprocess.run(ev, check=True, capture_output=True, text=True).stdout)["accuracy"]
    e, r = min(evals), min(reports)
    best = inner[reports.index(r)]
    emit({"benchmark": "report_vs_eval", "command": "python benchmarks/report_vs_eval.py " + " ".join(sys.argv[1:]),
          "machine": machine(), "data": args.data, "split": args.split, "images": best["metrics"]["num_samples"],
          "checkpoint_accuracy": acc, "train_seconds_untimed_setup": train_s,
          "eval_seconds": [round(x, 3) for x in evals], "report_seconds": [round(x, 3) for x in reports],
          "eval_best": round(e, 3), "report_best": round(r, 3), "ratio": round(r / e, 3),
          "report_model_pass_seconds": best["model_seconds"],
          "report_inside_seconds": best["seconds"],
          "report_rest_seconds": round(best["seconds"] - best["model_seconds"], 3),
          "budget_seconds_1_5x_eval_plus_5": round(1.5 * e + 5, 3), "within_budget": r <= 1.5 * e + 5},
         save=args.save)


if __name__ == "__main__":
    main()
