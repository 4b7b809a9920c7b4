"""Training under load: the seconds of a training epoch with 0 and 1 other busy processes (a CPU-bound Python
loop this script starts), for candidate CPU thread policies. Each measurement is a fresh process (OpenMP reads
its settings when torch loads) training the course network on 32x32 RGB images (CIFAR-sized, random pixels)
for --epochs epochs (3 unless set); the figure is the median of epochs 2.. (epoch 1 warms up).

Policies:
  default       what torch does alone: one thread per core, OpenMP threads spin while waiting (libgomp)
  threads-1     torch.set_num_threads(1)
  passive       one thread per core, OMP_WAIT_POLICY=PASSIVE: waiting threads sleep instead of spinning
  spin-short    one thread per core, GOMP_SPINCOUNT=10000 (spin briefly, then sleep)
  spin-100k     one thread per core, GOMP_SPINCOUNT=100000
  spin-1k       GOMP_SPINCOUNT=1000, --threads not given: tudui's default (since issue 22 with the thread governor:
                one thread per core, the cores other programs leave free after an epoch that measured them busy)
  fixed-2       GOMP_SPINCOUNT=1000, --threads 2: two threads whatever else runs (the governor is off)
Each (policy, load) pair is measured --rounds times, rounds interleaved; the figure is the median.

    cpu-bench python benchmarks/thread_load.py --save benchmarks/results/thread_load.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _report import emit, machine  # noqa: E402

POLICIES = {
    "default": ({}, None),
    "threads-1": ({}, 1),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, None),
    "spin-short": ({"GOMP_SPINCOUNT": "10000"}, None),
    "spin-100k": ({"GOMP_SPINCOUNT": "100000"}, None),
    "spin-1k": ({"GOMP_SPINCOUNT": "1000"}, None),
    "fixed-2": ({"GOMP_SPINCOUNT": "1000"}, 2),
}

WORKER = r"""
import json, sys, torch
from torch.utils.data import TensorDataset
import tudui
n, threads, epochs = int(sys.argv[1]), (int(sys.argv[2]) if sys.argv[2] != "none" else None), int(sys.argv[4])
g = torch.Generator().manual_seed(0)
x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
y = torch.arange(n) % 10
ds = TensorDataset(x.float() / 255, y)
r = tudui.train(ds, epochs=epochs, batch_size=64, threads=threads, out=sys.argv[3], progress=False, val_split=0.1,
                eval_every=epochs)
print(json.dumps({"epochs_s": [row["seconds"] for row in r.history], "threads": torch.get_num_threads()}))
"""


def measure(policy: str, busy: int, n: int, out: str, epochs: int = 3) -> dict:
    env_extra, threads = POLICIES[policy]
    env = {**os.environ, **env_extra}
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(0.5 if busy else 0)
        p = subprocess.run([sys.executable, "-c", WORKER, str(n), str(threads or "none"), out, str(epochs)], env=env,
                           capture_output=True, text=True, timeout=900)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    if p.returncode != 0:
        raise SystemExit(f"{policy} busy={busy} failed:\n{p.stderr[-2000:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return {"epoch_s": round(statistics.median(r["epochs_s"][1:]), 3), "epochs_s": r["epochs_s"],
            "torch_threads": r["threads"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1280, help="images per epoch (90%% train)")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per process; the figure is the median of epochs 2..")
    ap.add_argument("--save", default=None)
    a = ap.parse_args()
    import tempfile
    out = tempfile.mkdtemp(prefix="tudui-threads-")
    res = {}
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    raw = {}
    for _ in range(a.rounds):
        for pol in a.policies.split(","):
            for b in (0, 1):
                raw.setdefault((pol, b), []).append(measure(pol, b, a.images, out, a.epochs))
    for pol in a.policies.split(","):
        res[pol] = {f"busy{b}": {"epoch_s": round(statistics.median(m["epoch_s"] for m in raw[pol, b]), 3),
                                 "rounds": raw[pol, b]} for b in (0, 1)}
        res[pol]["busy/idle"] = round(res[pol]["busy1"]["epoch_s"] / res[pol]["busy0"]["epoch_s"], 2)
        per_round = [b["epoch_s"] / i["epoch_s"] for i, b in zip(raw[pol, 0], raw[pol, 1])]
        res[pol]["busy/idle per round"] = [round(x, 2) for x in per_round]
    base = res.get("default", {}).get("busy0", {}).get("epoch_s")
    for pol in res:
        if base:
            res[pol]["idle/default_idle"] = round(res[pol]["busy0"]["epoch_s"] / base, 3)
    ok = [p for p in res if res[p]["busy/idle"] <= 2 and res[p].get("idle/default_idle", 1) <= 1.05]
    emit({"benchmark": "thread_load", "command": " ".join(["python", "benchmarks/thread_load.py"] + sys.argv[1:]),
          "machine": machine(), "workload": f"course network, 3x32x32, batch 64, {a.images} images (90% train), "
                                            "median epoch seconds of epochs 2-{a.epochs}",
          "results": res, "policies_meeting_both_limits": ok, "wall_s": round(time.perf_counter() - t0, 1),
          "load_before": load_before, "load_after": os.getloadavg(),
          "note": "cpu-bench keeps tests and other benchmarks off the machine, not every process: the load "
                  "averages show what else ran"}, a.save)
    import shutil
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
