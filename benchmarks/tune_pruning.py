"""Pruning against no pruning: the same `tudui tune` search (same data, space, seed, trials and epochs per
trial) with --pruner none, median and halving; the epochs every trial actually ran, the best validation
accuracy, and the best trial's accuracy on the held-out test split.

    python benchmarks/tune_pruning.py --seeds 0 --pruners none,median,halving --save benchmarks/results/tune_pruning-s0.json

JSON on stdout (and in --save); progress on stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from _report import emit, machine  # benchmarks/_report.py, beside this script
from _tune_data import subset


def one(root: str, pruner: str, seed: int, trials: int, epochs: int, work: str) -> dict:
    import tudui
    t0 = time.perf_counter()
    r = tudui.tune(root, recipe="course", trials=trials, epochs=epochs, seed=seed, pruner=pruner,
                   out=os.path.join(work, "pruning"), name=f"p-{pruner}-s{seed}-t{trials}-e{epochs}")
    wall = time.perf_counter() - t0
    states = {}
    for t in r.trials:
        states[t["state"]] = states.get(t["state"], 0) + 1
    return {"pruner": pruner, "seed": seed, "trials": states,
            "epochs_total": sum(t["epochs"] or 0 for t in r.trials), "epochs_budget": trials * epochs,
            "best_val_acc": r.best_value, "best_trial": r.best["number"],
            "best_test_acc": tudui.evaluate(os.path.join(r.best["run_dir"], "best.pt"), split="test")["accuracy"],
            "trial_seconds_total": round(sum(t["seconds"] or 0 for t in r.trials), 1), "wall_seconds": round(wall, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["mnist", "cifar10"], default="mnist")
    ap.add_argument("--n", default="5000,1000,2000")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--pruners", default="none,median,halving")
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--work", default="/tmp/tune-bench")
    ap.add_argument("--save", default=None)
    a = ap.parse_args()
    n_train, n_val, n_test = (int(v) for v in a.n.split(","))
    root = subset(a.data, a.work, n_train, n_val, n_test)
    runs = []
    for s in (int(v) for v in a.seeds.split(",")):
        for p in a.pruners.split(","):
            print(f"seed {s} pruner {p}", file=sys.stderr)
            runs.append(one(root, p, s, a.trials, a.epochs, a.work))
    emit({"benchmark": "tune_pruning", "machine": machine(), "data": a.data,
          "subset": {"train": n_train, "val": n_val, "test": n_test}, "recipe": "course", "trials": a.trials,
          "epochs_per_trial": a.epochs, "command": " ".join(["python", "benchmarks/tune_pruning.py"] + sys.argv[1:]),
          "runs": runs}, a.save)


if __name__ == "__main__":
    main()
