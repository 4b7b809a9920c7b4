"""Workers: the wall time of one `tudui tune` study run by 1 worker (all threads) against `--workers 2` (one
thread each, one machine), and two separate `tudui tune` processes on one SQLite study (as two machines
would share a database): no trial lost or run twice, and the best trial the same in the database, in
best.yaml and in `tudui eval` of its best.pt.

Each variant is a fresh study with the same settings (no pruning, a fixed space, so every trial runs every
epoch). Run each variant as its own command under `cpulock bench` (the machine held alone):

    cpulock bench python benchmarks/tune_workers.py --variant one --save benchmarks/results/tune_workers-one.json
    cpulock bench python benchmarks/tune_workers.py --variant workers2 --save benchmarks/results/tune_workers-workers2.json
    cpulock bench python benchmarks/tune_workers.py --variant two_processes --save benchmarks/results/tune_workers-two_processes.json

JSON on stdout (and in --save); progress on stderr.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

import yaml

from _report import emit, machine  # benchmarks/_report.py, beside this script
from _tune_data import subset

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def tune_cmd(root: str, out: str, name: str, trials: int, epochs: int, extra=()) -> list:
    return [sys.executable, "-m", "tudui", "tune", "--data", root, "--recipe", "course", "--trials", str(trials),
            "--epochs", str(epochs), "--pruner", "none", "--space-only", "--space", "lr=log:1e-3:1e-1",
            "--space", "batch_size=choice:32,64,128", "--space", "model_args.dropout=float:0:0.5",
            "--out", out, "--name", name, *extra]


def check(study_dir: str, name: str, trials: int) -> dict:
    """Trials lost or duplicated, and whether the database, best.yaml and `tudui eval` agree on the best."""
    import optuna

    import tudui
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{study_dir}/study.db")
    ts = study.trials
    numbers = [t.number for t in ts]
    folders = sorted(d for d in os.listdir(study_dir) if d.startswith("trial-"))
    runs = [t.user_attrs.get("run_dir") for t in ts]
    best = study.best_trial
    with open(os.path.join(study_dir, "best.yaml"), encoding="utf-8") as fh:
        header = fh.readline()
    eval_acc = tudui.evaluate(os.path.join(study_dir, best.user_attrs["run_dir"], "best.pt"))["accuracy"]
    params = [tuple(sorted(t.params.items())) for t in ts]
    return {"trials_in_db": len(ts), "trials_asked": trials, "states": sorted({t.state.name for t in ts}),
            "numbers_contiguous": numbers == list(range(len(ts))), "run_folders": len(folders),
            "run_folders_unique_per_trial": sorted(runs) == folders and len(set(runs)) == len(runs),
            "duplicate_params": len(params) - len(set(params)),
            "workers": sorted({t.user_attrs.get("worker") for t in ts}),
            "best_trial": best.number, "best_value_db": best.value, "best_eval_acc": eval_acc,
            "best_yaml_names_best": f"best trial ({best.number})" in header,
            "agree": eval_acc == best.value and f"best trial ({best.number})" in header}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=["one", "workers2", "two_processes"], required=True)
    ap.add_argument("--data", choices=["mnist", "cifar10"], default="mnist")
    ap.add_argument("--n", default="5000,1000,2000")
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--work", default="/tmp/tune-bench")
    ap.add_argument("--save", default=None)
    a = ap.parse_args()
    n_train, n_val, n_test = (int(v) for v in a.n.split(","))
    root = subset(a.data, a.work, n_train, n_val, n_test)
    out, name = os.path.join(a.work, "workers"), f"w-{a.variant}"
    shutil.rmtree(os.path.join(out, name), ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=SRC)
    t0 = time.perf_counter()
    if a.variant == "one":
        subprocess.run(tune_cmd(root, out, name, a.trials, a.epochs, ["--threads", "2"]), env=env, check=True)
    elif a.variant == "workers2":
        subprocess.run(tune_cmd(root, out, name, a.trials, a.epochs, ["--workers", "2"]), env=env, check=True)
    else:  # two independent commands, as on two machines, one thread each
        procs = [subprocess.Popen(tune_cmd(root, out, name, a.trials, a.epochs, ["--threads", "1"]), env=env)
                 for _ in range(2)]
        if any(p.wait() for p in procs):
            sys.exit("a tudui tune process failed")
    wall = time.perf_counter() - t0
    result = check(os.path.join(out, name), name, a.trials)
    emit({"benchmark": "tune_workers", "variant": a.variant, "machine": machine(), "data": a.data,
          "subset": {"train": n_train, "val": n_val}, "trials": a.trials, "epochs": a.epochs,
          "wall_seconds": round(wall, 1), "check": result,
          "command": " ".join(["python", "benchmarks/tune_workers.py"] + sys.argv[1:])}, a.save)


if __name__ == "__main__":
    main()
