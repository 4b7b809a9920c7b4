"""Time and peak memory of `tudui audit` as the number of images grows (MNIST's training images: 15,000, 30,000,
60,000), each size in a fresh process. The labels are judged by an existing model (--run: a short MNIST run trained
first, untimed), so what grows with N is what must not grow as N^2: hashing, the blocked Hamming comparison of the
perceptual hashes, the chunked nearest neighbours of the features (duplicates, outliers) and the page.

    python benchmarks/audit_scale.py --data-dir ../shared/datasets --save benchmarks/results/audit_scale-mnist.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))


def child(n: int, run: str, data_dir: str, out: str) -> dict:
    import numpy as np

    import tudui
    from tudui.data import load_source
    src = load_source("mnist", data_dir=data_dir)
    idx = np.sort(np.random.default_rng(0).permutation(len(src.train))[:n]).tolist()
    src.splits = {"train": src.train.subset(idx)}
    t0 = time.perf_counter()
    res = tudui.audit(src, out=out, run=run, folds=0, split="train", near="both", device="cpu", progress=False)
    seconds = time.perf_counter() - t0
    return {"images": n, "seconds": round(seconds, 1), "duplicate_and_neighbour_seconds": res.summary["duplicate_seconds"],
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "counts": res.counts()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--sizes", default="15000,30000,60000")
    ap.add_argument("--work", default="/tmp/audit_scale")
    ap.add_argument("--child", type=int, default=None)
    ap.add_argument("--run", default=None)
    ap.add_argument("--save", default=None)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child, a.run, a.data_dir, os.path.join(a.work, f"audit-{a.child}"))))
        return 0
    from _report import emit, machine

    import tudui
    run = a.run or tudui.train("mnist", data_dir=a.data_dir, epochs=1, device="cpu", progress=False,
                               out=os.path.join(a.work, "runs"), name="model").run_dir
    results = {"machine": machine(), "command": " ".join(sys.argv), "run": run, "sizes": []}
    for n in [int(x) for x in a.sizes.split(",")]:
        p = subprocess.run([sys.executable, __file__, "--data-dir", a.data_dir, "--work", a.work, "--child", str(n),
                            "--run", run], capture_output=True, text=True, check=True)
        row = json.loads(p.stdout.strip().splitlines()[-1])
        results["sizes"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    emit(results, a.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
