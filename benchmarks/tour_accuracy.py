"""The README tour's accuracy: `tudui train --epochs 3` on the digits at the default batch (64) and with the
tour's `--batch-size 8`, over several seeds: best.pt's validation accuracy (and `tudui.evaluate`'s on the same
file) and the wall time of each training run. JSON on stdout.

    python benchmarks/tour_accuracy.py --seeds 0,1,2,3,4 --save benchmarks/results/tour_accuracy.json
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time

import tudui
from _report import emit, machine  # benchmarks/_report.py, beside this script


def one(batch_size: int, seed: int, out: str) -> dict:
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        r = tudui.train("digits", epochs=3, batch_size=batch_size, seed=seed, out=out, progress=False)
    seconds = time.perf_counter() - t0
    ev = tudui.evaluate(r.best_path)
    return {"batch_size": batch_size, "seed": seed, "best_val_acc": r.best["val_acc"], "eval_accuracy": ev["accuracy"],
            "seconds": round(seconds, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--batch-sizes", default="64,8")
    ap.add_argument("--save", default=None)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            for seed in (int(s) for s in args.seeds.split(",")):
                rows.append(one(bs, seed, out))
    summary = {}
    for bs in sorted({r["batch_size"] for r in rows}):
        accs = [r["best_val_acc"] for r in rows if r["batch_size"] == bs]
        secs = [r["seconds"] for r in rows if r["batch_size"] == bs]
        summary[str(bs)] = {"min": min(accs), "max": max(accs), "mean": sum(accs) / len(accs),
                            "mean_seconds": sum(secs) / len(secs)}
    emit({"benchmark": "tour_accuracy", "command": "tudui train --epochs 3 [--batch-size B] --seed S",
          "machine": machine(), "runs": rows, "summary": summary}, args.save)


if __name__ == "__main__":
    main()
