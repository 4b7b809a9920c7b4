"""Pull the plug: SIGKILL `tudui train --save-every 1` at random moments, half of them while a checkpoint is
being written, then check what a user would find and resume.

Each trial: start a training run (the built-in digits set, a checkpoint after every optimizer step), wait for
its first checkpoint, then kill it with SIGKILL after a random delay drawn over the training's length (as
measured in the uninterrupted run): at once ("random"), or at the first instant after that delay when a
temporary checkpoint file exists in the run folder ("during-save"); then
  1. the newest checkpoint (last.pt) loads, its SHA-256 verified;
  2. `tudui train --resume` completes (exit 0);
  3. no temporary file is left in the run folder;
  4. the final weights, optimizer state, epoch and step equal an uninterrupted run's, bit for bit (CPU).
A trial that breaks any of these is a failure.

    cpu-bench python benchmarks/faults.py --trials 50 --save benchmarks/results/faults.json
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _report import emit, machine  # noqa: E402

EPOCHS = 3
TRAIN = ["--data", "digits", "--epochs", str(EPOCHS), "--batch-size", "32", "--save-every", "1", "--threads", "1",
         "--seed", "7", "--no-progress", "--model-arg", "dropout=0.2", "--ema", "0.9"]


def tudui(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "tudui", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kw)


def temp_files(folder: str) -> list:
    try:
        return [n for n in os.listdir(folder) if n.endswith(".tmp")]
    except FileNotFoundError:
        return []


def same_run(a: str, b: str) -> list:
    """Differences between two last.pt files that must be bit-equal."""
    import torch

    from tudui import checkpoint as ckpt_io
    x, y = ckpt_io.load(a), ckpt_io.load(b)
    diffs = [k for k in ("epoch", "step") if x[k] != y[k]]
    for part in ("state_dict", "ema_state_dict"):
        diffs += [f"{part}.{k}" for k in x[part] if not torch.equal(x[part][k], y[part][k])]
    ox, oy = x["train_state"]["optimizer"]["state"], y["train_state"]["optimizer"]["state"]
    diffs += [f"optimizer.{k}" for k in ox if not torch.equal(ox[k]["momentum_buffer"], oy[k]["momentum_buffer"])]
    return diffs


def wait_first_checkpoint(p, last: str) -> float:
    while not os.path.exists(last) and p.poll() is None:
        time.sleep(0.002)
    return time.perf_counter()


def trial(i: int, mode: str, out: str, reference: str, rng: random.Random, window_s: float) -> dict:
    name = f"t{i:03d}"
    run_dir = os.path.join(out, name)
    p = tudui("train", *TRAIN, "--out", out, "--name", name)
    last = os.path.join(run_dir, "last.pt")
    rec = {"trial": i, "mode": mode, "problems": []}
    t0 = time.perf_counter()
    deadline = wait_first_checkpoint(p, last) + rng.uniform(0, window_s)
    while time.perf_counter() < deadline and p.poll() is None:
        time.sleep(0.001)
    if mode == "during-save":  # then the first instant a temporary checkpoint file exists
        while p.poll() is None and not [n for n in temp_files(run_dir) if n.startswith(".")]:
            time.sleep(0)
    finished_first = p.poll() is not None
    p.send_signal(signal.SIGKILL)
    p.wait()
    rec["killed_after_s"] = round(time.perf_counter() - t0, 3)
    rec["temp_files_after_kill"] = len(temp_files(run_dir))
    if finished_first:
        rec["problems"].append("the run ended before the kill (not a trial)")
        return rec
    from tudui import checkpoint as ckpt_io
    from tudui.errors import TuduiError
    try:
        ck = ckpt_io.load(last)
        rec["killed_at"] = {"epoch": ck["epoch"], "step": ck["step"]}
    except (TuduiError, OSError) as e:
        rec["problems"].append(f"newest checkpoint does not load: {e}")
        return rec
    r = tudui("train", "--resume", last, "--no-progress")
    _, err = r.communicate(timeout=300)
    rec["finished_before_kill"] = ck["epoch"] == EPOCHS
    if rec["finished_before_kill"]:  # killed after its last checkpoint: resuming says so, nothing else to do
        if r.returncode != 2 or "already finished" not in err:
            rec["problems"].append(f"resume of a finished run: exit {r.returncode}")
    elif r.returncode != 0:
        rec["problems"].append(f"resume exited {r.returncode}: {err.strip().splitlines()[-1:]}")
        return rec
    left = temp_files(run_dir)
    if left:
        rec["problems"].append(f"temporary files left: {left}")
    diffs = same_run(last, reference)
    if diffs:
        rec["problems"].append(f"differs from the uninterrupted run: {diffs[:5]}")
    try:
        ckpt_io.load(os.path.join(run_dir, "best.pt"))
    except TuduiError as e:
        rec["problems"].append(f"best.pt does not load: {e}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--parallel", type=int, default=2, help="trials at once (each uses one thread)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", default=None)
    a = ap.parse_args()
    out = tempfile.mkdtemp(prefix="tudui-faults-")
    t0 = time.perf_counter()
    p = tudui("train", *TRAIN, "--out", out, "--name", "reference")
    wait_first_checkpoint(p, os.path.join(out, "reference", "last.pt"))
    first = time.time()
    _, err = p.communicate()
    if p.returncode != 0:
        sys.exit(f"the reference run failed: {err}")
    reference_s = time.perf_counter() - t0
    # from the first checkpoint to the last one (not to the process's exit)
    window_s = os.stat(os.path.join(out, "reference", "last.pt")).st_mtime - first
    reference = os.path.join(out, "reference", "last.pt")
    rng = random.Random(a.seed)
    plans = [(i, "during-save" if i % 2 else "random", random.Random(rng.random())) for i in range(a.trials)]
    with ThreadPoolExecutor(a.parallel) as pool:
        recs = list(pool.map(lambda t: trial(t[0], t[1], out, reference, t[2], window_s), plans))
    failures = [r for r in recs if r["problems"]]
    emit({"benchmark": "faults", "command": " ".join(["python", "benchmarks/faults.py"] + sys.argv[1:]),
          "machine": machine(), "train_args": TRAIN, "reference_run_s": round(reference_s, 2),
          "kill_window_s": round(window_s, 2),
          "trials": len(recs), "failures": len(failures),
          "killed_while_a_temp_file_existed": sum(r["temp_files_after_kill"] > 0 for r in recs),
          "modes": {m: sum(r["mode"] == m for r in recs) for m in ("random", "during-save")},
          "finished_before_kill": sum(bool(r.get("finished_before_kill")) for r in recs),
          "killed_at_steps": sorted(r["killed_at"]["step"] for r in recs if "killed_at" in r),
          "wall_s": round(time.perf_counter() - t0, 1), "failed_trials": failures, "trials_detail": recs}, a.save)
    shutil.rmtree(out, ignore_errors=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
