"""Tuned against the default: `--recipe course` (plain SGD, where the settings matter most) as the recipe
sets it, against the best of N `tudui tune` trials, each judged on a held-out test split no search sees.

Per seed: the default run (`tudui train --recipe course --seed K`, the recipe's own 10 epochs) and a study
(`tudui tune --recipe course --trials N --epochs E --seed K`, the default space: lr, weight decay, batch size,
augmentation, label smoothing, hidden width and dropout of the course network; median pruning). The tuned
model is the best trial's own best.pt (best.yaml reproduces it exactly, tests/test_tune.py). Compute spent:
epochs and seconds of every trial, against the default run's.

    python benchmarks/tune_vs_default.py --data mnist --seeds 0 --save benchmarks/results/tune_vs_default-mnist-s0.json

JSON on stdout (and in --save); progress on stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from _report import emit, machine  # benchmarks/_report.py, beside this script
from _tune_data import subset


def one_seed(root: str, seed: int, trials: int, epochs: int, work: str, tag: str) -> dict:
    import shutil

    import tudui
    shutil.rmtree(os.path.join(work, "default", f"{tag}-s{seed}"), ignore_errors=True)  # a fresh default run
    t0 = time.perf_counter()
    d = tudui.train(root, recipe="course", seed=seed, out=os.path.join(work, "default"), name=f"{tag}-s{seed}",
                    progress=False)
    default_wall = time.perf_counter() - t0
    default = {"val_acc": tudui.evaluate(d.best_path)["accuracy"],
               "test_acc": tudui.evaluate(d.best_path, split="test")["accuracy"],
               "epochs": len(d.history), "seconds": round(default_wall, 1)}
    t0 = time.perf_counter()
    r = tudui.tune(root, recipe="course", trials=trials, epochs=epochs, seed=seed, out=os.path.join(work, "studies"),
                   name=f"{tag}-s{seed}-t{trials}-e{epochs}")
    wall = time.perf_counter() - t0
    best_ckpt = os.path.join(r.best["run_dir"], "best.pt")
    states = {}
    for t in r.trials:
        states[t["state"]] = states.get(t["state"], 0) + 1
    tuned = {"best_trial": r.best["number"], "params": r.best_params, "val_acc": r.best_value,
             "test_acc": tudui.evaluate(best_ckpt, split="test")["accuracy"], "trials": states,
             "epochs_total": sum(t["epochs"] or 0 for t in r.trials),
             "trial_seconds_total": round(sum(t["seconds"] or 0 for t in r.trials), 1),
             "wall_seconds": round(wall, 1)}
    return {"seed": seed, "default": default, "tuned": tuned,
            "test_gain": round(tuned["test_acc"] - default["test_acc"], 4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["mnist", "cifar10"], default="mnist")
    ap.add_argument("--n", default="5000,1000,2000", help="train,val,test images of the subset (default 5000,1000,2000)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=5, help="epochs of every trial (the default run keeps the recipe's 10)")
    ap.add_argument("--work", default="/tmp/tune-bench")
    ap.add_argument("--save", default=None)
    a = ap.parse_args()
    n_train, n_val, n_test = (int(v) for v in a.n.split(","))
    root = subset(a.data, a.work, n_train, n_val, n_test)
    runs = []
    for s in (int(v) for v in a.seeds.split(",")):
        print(f"seed {s}", file=sys.stderr)
        runs.append(one_seed(root, s, a.trials, a.epochs, a.work, a.data))
    emit({"benchmark": "tune_vs_default", "machine": machine(), "data": a.data,
          "subset": {"train": n_train, "val": n_val, "test": n_test, "folder": root},
          "trials": a.trials, "trial_epochs": a.epochs, "default_epochs": 10, "pruner": "median",
          "command": " ".join(["python", "benchmarks/tune_vs_default.py"] + sys.argv[1:]), "runs": runs}, a.save)


if __name__ == "__main__":
    main()
