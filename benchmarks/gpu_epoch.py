"""A CIFAR-10 epoch of `tudui train` against its bound, on a GPU (or, for a smoke run, the CPU).

- epoch: `Trainer(...).fit()`, its epoch seconds as logged (loader, augmentation, the training steps,
  evaluation, logging and last.pt included); the last epoch is the one compared. --net course (default): the
  course network, SGD lr 0.01, basic augmentation, batch 256, as benchmarks/throughput.py and the earlier H200
  figures (44,700 images/s against a bound of 125,000); --net speed: `--recipe cifar10-speed` with progressive
  resizing off, so every epoch trains at 32 px like the bound.
- bound: the same model, loss and optimizer stepping over batches already on the device (no loader, no
  augmentation, no evaluation, no logging): images/s of the training step alone.
- with --profile: the top operations of 30 real training steps (torch.profiler), to see where the rest goes.
- with --recipe-run: the whole `tudui train --recipe cifar10-speed` run (its accuracy and wall time), and with
  --airbench DIR also `airbench.train94()` run from DIR (which holds cifar10/train.pt and test.pt, written by
  ../shared/anchors/cifar_pt.py), on the same device, back to back.

    python benchmarks/gpu_epoch.py --device cuda --save benchmarks/results/gpu_epoch-h200.json
    python benchmarks/gpu_epoch.py --device cpu --images 2048 --epochs 1     # smoke run, figures meaningless

JSON on stdout (and in --save); progress on stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from _report import emit, machine  # benchmarks/_report.py, beside this script
from throughput import find_data, subset_folder  # the CIFAR-10 JPEG copy and its subsets

REPO = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


NET = "course"  # set by --net


def config(folder: Path, device: str, epochs: int, out: str):
    from tudui.config import resolve
    common = {"data": str(folder), "device": device, "epochs": epochs, "out": out, "name": "epoch", "seed": 0,
              "img_size": 32}
    if NET == "speed":
        return resolve({**common, "recipe": "cifar10-speed", "progressive_resize": None})
    return resolve({**common, "batch_size": 256, "lr": 0.01, "momentum": 0.0, "weight_decay": 0.0,
                    "augment": "basic"})


def epoch_time(folder: Path, device: str, epochs: int) -> dict:
    from tudui.engine.trainer import Trainer
    with tempfile.TemporaryDirectory() as out:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            t = Trainer(config(folder, device, epochs, out), progress=False)
            n = t.data.train.n
            res = t.fit()
    secs = [r["seconds"] for r in res.history]
    return {"train_images": n, "epoch_seconds": secs, "images_per_s_last_epoch": round(n / secs[-1]),
            "val_acc": res.history[-1]["val_acc"],
            "data_line": next((ln for ln in err.getvalue().splitlines() if ln.startswith("data:")), "")}


def bound(folder: Path, device: str, images: int) -> dict:
    """The Trainer's own model, loss and optimizer step on batches already on the device."""
    from tudui.engine.trainer import Trainer
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stderr(io.StringIO()):
        t = Trainer(config(folder, device, 1, out), progress=False)
    dev = t.device
    batches = []
    for x, y in t.data.train.iterate(0):  # augmented once, then reused: the bound does no data work
        batches.append((x.clone(), y.clone()))
    t.model.train()

    def steps(k):
        n = 0
        for x, y in batches[:k]:
            loss = t.compute_loss(x, y)
            t.scaler.scale(loss).backward()
            t.optimizer_step(schedule=False)
            n += len(y)
        return n
    steps(min(5, len(batches)))  # warm-up: kernel selection, allocator
    sync(dev)
    k = max(1, min(len(batches), images // t.cfg.batch_size))
    t0 = time.perf_counter()
    n = steps(k)
    sync(dev)
    seconds = time.perf_counter() - t0
    return {"images": n, "seconds": round(seconds, 3), "images_per_s": round(n / seconds)}


def profile(folder: Path, device: str, steps: int = 30) -> list:
    """The top operations of `steps` real training steps (loader and augmentation included)."""
    from torch.profiler import ProfilerActivity, profile as prof
    from tudui.engine.trainer import Trainer
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stderr(io.StringIO()):
        t = Trainer(config(folder, device, 1, out), progress=False)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if t.device.type == "cuda" else [])
    t.model.train()

    def batches():  # epoch after epoch, as long as asked
        epoch = 0
        while True:
            yield from enumerate(t.data.train.iterate(epoch))
            epoch += 1
    it = batches()
    for _ in range(5):
        b, (x, y) = next(it)
        t.train_step(x, y, b)
    with prof(activities=acts) as p:
        for _ in range(steps):
            b, (x, y) = next(it)
            t.train_step(x, y, b)
    key = "self_cuda_time_total" if t.device.type == "cuda" else "self_cpu_time_total"
    rows = sorted(p.key_averages(), key=lambda e: getattr(e, key, 0), reverse=True)[:15]
    return [{"op": e.key, "calls": e.count, "self_ms": round(getattr(e, key, 0) / 1e3, 2)} for e in rows]


def recipe_run(device: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "tudui", "train", "--recipe", "cifar10-speed", "--data", str(find_data(None)),
               "--device", device, "--out", out, "--name", "r", "--no-progress", "--seed", "0"]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        acc = next((ln.split()[2] for ln in p.stderr.splitlines() if ln.startswith("final val_acc")), None)
    return {"command": " ".join(cmd[1:]), "returncode": p.returncode, "val_acc": acc, "wall_s": round(wall, 1)}


def airbench_run(folder: str) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", "import airbench; airbench.train94()"], cwd=folder,
                       capture_output=True, text=True)
    return {"returncode": p.returncode, "wall_s": round(time.perf_counter() - t0, 1),
            "output_tail": p.stdout[-1500:] + p.stderr[-500:]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--net", default="course", choices=["course", "speed"])
    ap.add_argument("--data", default=None, help="CIFAR-10 folder with train/ and test/ (default: the JPEG copy)")
    ap.add_argument("--images", type=int, default=None, help="train on a subset of this many images (smoke runs)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of the timed run; the last is compared")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--recipe-run", action="store_true")
    ap.add_argument("--airbench", metavar="DIR", default=None)
    ap.add_argument("--save")
    args = ap.parse_args(argv)
    global NET
    NET = args.net
    folder = find_data(args.data)
    work = tempfile.mkdtemp(prefix="gpu-epoch-")
    if args.images:
        folder = subset_folder(folder, Path(work), args.images, max(500, args.images // 5))
    log("timing the bound ...")
    b = bound(folder, args.device, args.images or 50000)
    log(f"bound: {b['images_per_s']} images/s; timing {args.epochs} epoch(s) of tudui train ...")
    e = epoch_time(folder, args.device, args.epochs)
    result = {"device": args.device, "net": args.net, "bound": b, "epoch": e,
              "epoch_vs_bound": round(e["images_per_s_last_epoch"] / b["images_per_s"], 3),
              "machine": machine(args.device)}
    if args.profile:
        result["profile_top_ops"] = profile(folder, args.device)
    if args.recipe_run:
        result["recipe_run"] = recipe_run(args.device)
    if args.airbench:
        result["airbench94"] = airbench_run(args.airbench)
    emit(result, args.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
