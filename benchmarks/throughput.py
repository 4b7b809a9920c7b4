"""Training throughput on CIFAR-10 (images/s), in one run and interleaved so that load from other processes
hits every variant alike:

  course_w0, course_w2  the course's way: torchvision ImageFolder + PIL transforms (RandomCrop with
                        padding, RandomHorizontalFlip, ToTensor, Normalize) + DataLoader(num_workers=0 / 2)
  tudui                 tudui.train(...) as users run it, defaults: the in-memory fast path, channels_last
                        on CPU, TensorBoard logging, everything
  tudui_nchw            the same with channels_last=False (the model's compute exactly as in the bound)
  bound                 the same model and optimizer on batches already in memory: no data work at all

The model is the course's `Tudui` network with the course's optimizer (SGD, lr 0.01), the `basic`
augmentation (translate by up to 4 px with reflection, horizontal flip), batch 64 and 256. Each figure is the
median over --repeats rounds of --images training images; the course and bound loops are timed from their
second batch (worker start-up not counted), tudui by the epoch time it reports (which includes its tiny
evaluation and its first batch). The full mode also times whole epochs as `tudui train` runs them (50,000
training images + evaluation of the 10,000 test images) against the bound's time for 50,000 images.

    python benchmarks/throughput.py            # full: 3 to 6 minutes on 2 quiet cores
    python benchmarks/throughput.py --quick    # about 1 minute
    python benchmarks/throughput.py --save benchmarks/results/NAME.json

JSON goes to stdout, progress to stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import shlex
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from _report import emit  # benchmarks/_report.py, beside this script

REPO = Path(__file__).resolve().parents[1]
SHARED_TAR = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
DEFAULT_DATA = Path("~/.cache/tudui/cifar10-jpeg").expanduser()
LR, MOMENTUM, WD, PAD = 0.01, 0.0, 0.0, 4  # the course's optimizer: SGD(lr=1e-2)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def find_data(arg: str | None) -> Path:
    """--data, or the JPEG copy of CIFAR-10 extracted (once) into the user cache."""
    if arg:
        root = Path(arg).expanduser()
        if not (root / "train").is_dir():
            sys.exit(f"error: {root} has no train/ folder of class folders")
        return root
    if not (DEFAULT_DATA / "train").is_dir():
        if not SHARED_TAR.is_file():
            sys.exit(f"error: no CIFAR-10 JPEG copy at {DEFAULT_DATA} or {SHARED_TAR}; pass --data")
        log(f"extracting {SHARED_TAR} into {DEFAULT_DATA} ...")
        DEFAULT_DATA.mkdir(parents=True, exist_ok=True)
        with tarfile.open(SHARED_TAR) as tf:
            tf.extractall(DEFAULT_DATA, filter="data")
    return DEFAULT_DATA


def subset_folder(root: Path, work: Path, n_train: int, n_val: int) -> Path:
    """A folder of symlinks to the first n/10 images of each class (train/ and test/), so every variant
    reads the same files and tudui's decode cache keys on them like on any folder."""
    out = work / f"subset-{n_train}-{n_val}"
    held = next(d for d in ("test", "val", "valid") if (root / d).is_dir())
    for split, n in (("train", n_train), (held, n_val)):
        classes = sorted(d.name for d in (root / split).iterdir() if d.is_dir())
        for c in classes:
            dst = out / split / c
            dst.mkdir(parents=True, exist_ok=True)
            for f in sorted((root / split / c).iterdir())[:max(1, n // len(classes))]:
                link = dst / f.name
                if not link.exists():
                    link.symlink_to(f.resolve())
    return out


def course_model(device, channels_last=False):
    from tudui.models.course import Tudui
    torch.manual_seed(0)
    model = Tudui().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    return model, opt, nn.CrossEntropyLoss()


def course_way(folder: Path, bs: int, workers: int, device, mean, std) -> float:
    """(1) The course's loop: ImageFolder + PIL transforms + DataLoader, then the model."""
    import torchvision
    import torchvision.transforms as T
    tf = T.Compose([T.RandomCrop(32, padding=PAD, padding_mode="reflect"), T.RandomHorizontalFlip(),
                    T.ToTensor(), T.Normalize(mean, std)])
    ds = torchvision.datasets.ImageFolder(str(folder / "train"), transform=tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, num_workers=workers)
    model, opt, loss_fn = course_model(device)
    return _timed_steps(model, opt, loss_fn, ((x.to(device), y.to(device)) for x, y in dl), device)


def bound(batches: list, device, channels_last=False) -> float:
    """(3) The same model and optimizer on batches already in memory, as the course writes the loop."""
    model, opt, loss_fn = course_model(device, channels_last)
    return _timed_steps(model, opt, loss_fn, batches, device)


def _timed_steps(model, opt, loss_fn, batches, device) -> float:
    """Train on `batches`; images/s with the clock started after the first batch (worker start-up and
    first-call overheads are not counted)."""
    model.train()
    n, t0 = 0, None
    for x, y in batches:
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if t0 is None:
            _sync(device)
            t0 = time.perf_counter()
        else:
            n += len(y)
    _sync(device)
    return n / (time.perf_counter() - t0)


def tudui_train(folder: Path, bs: int, device, cache_dir: str, channels_last=None) -> dict:
    """(2) tudui.train as a user calls it; returns its epoch time and what it logged about the loader."""
    import tudui
    err = io.StringIO()
    extra = {} if channels_last is None else {"channels_last": channels_last}
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stderr(err):
        t0 = time.perf_counter()
        res = tudui.train(str(folder), epochs=1, batch_size=bs, img_size=32, lr=LR, momentum=MOMENTUM,
                          weight_decay=WD, augment="basic", device=str(device), cache_dir=cache_dir,
                          out=out, name="bench", progress=False, seed=0, **extra)
        wall = time.perf_counter() - t0
    data_line = next((ln for ln in err.getvalue().splitlines() if ln.startswith("data:")), "")
    if "loader: memory" not in data_line:
        log(f"warning: tudui did not use the in-memory loader: {data_line}")
    return {"seconds": res.history[0]["seconds"], "wall": wall, "val_acc": res.history[0]["val_acc"],
            "data_line": data_line}


def memory_batches(folder: Path, bs: int, device, cache_dir: str, n: int):
    """Decoded, normalized batches held in memory for the bound, plus the data's mean and std."""
    from tudui.config import TrainConfig
    from tudui.data import load_source
    from tudui.data.pipeline import prepare
    cfg = TrainConfig(data=str(folder), img_size=32, batch_size=bs, augment="none", cache_dir=cache_dir,
                      loader="memory", device=str(device))
    with contextlib.redirect_stderr(io.StringIO()):
        data = prepare(load_source(str(folder)), cfg, device)
    batches = []
    for x, y in data.train.iterate(0):
        batches.append((x, y))
        if len(batches) * bs >= n:
            break
    return batches, data.pre["mean"], data.pre["std"]


def data_only(folder: Path, bs: int, workers: int, device, mean, std, limit: int) -> float:
    """Images/s of a loader alone (no model): the course's DataLoader."""
    import torchvision
    import torchvision.transforms as T
    tf = T.Compose([T.RandomCrop(32, padding=PAD, padding_mode="reflect"), T.RandomHorizontalFlip(),
                    T.ToTensor(), T.Normalize(mean, std)])
    ds = torchvision.datasets.ImageFolder(str(folder / "train"), transform=tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, num_workers=workers)
    n, t0 = 0, None
    for x, y in dl:
        x = x.to(device)
        if t0 is None:
            t0 = time.perf_counter()
        else:
            n += len(y)
        if n >= limit:
            break
    return n / (time.perf_counter() - t0)


def tudui_data_only(folder: Path, bs: int, device, cache_dir: str) -> float:
    """Images/s of tudui's in-memory loader alone over a whole epoch: gather, translate, flip, normalize."""
    from tudui.config import TrainConfig
    from tudui.data import load_source
    from tudui.data.pipeline import prepare
    cfg = TrainConfig(data=str(folder), img_size=32, batch_size=bs, augment="basic", cache_dir=cache_dir,
                      loader="memory")
    with contextlib.redirect_stderr(io.StringIO()):
        data = prepare(load_source(str(folder)), cfg, device)
    n = 0
    t0 = time.perf_counter()
    for x, y in data.train.iterate(0):
        n += len(y)
    _sync(device)
    return n / (time.perf_counter() - t0)


def startup_seconds(folder: Path, device, cache_dir: str) -> float:
    """Scanning the folder, checking the cache and loading the decoded tensors (cache already warm)."""
    from tudui.config import TrainConfig
    from tudui.data import load_source
    from tudui.data.pipeline import prepare
    cfg = TrainConfig(data=str(folder), img_size=32, cache_dir=cache_dir)
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        prepare(load_source(str(folder)), cfg, device)
    return time.perf_counter() - t0


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": cores, "torch_threads": torch.get_num_threads(), "gpu": gpu,
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform()}


def load_avg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="an ImageFolder-style CIFAR-10 copy (train/, test/); "
                                                "default: the shared JPEG copy, extracted into ~/.cache/tudui")
    p.add_argument("--quick", action="store_true", help="fewer images and one round, no whole epochs")
    p.add_argument("--images", type=int, default=None, help="training images per measurement (default 5120, quick 1280)")
    p.add_argument("--repeats", type=int, default=None, help="rounds of every variant (default 3, quick 1)")
    p.add_argument("--batch-sizes", default="64,256")
    p.add_argument("--no-epoch", action="store_true", help="skip the whole-epoch timing")
    p.add_argument("--device", default="cpu", help="cpu (the target), cuda, auto")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for every variant")
    p.add_argument("--cache-dir", default="~/.cache/tudui", help="tudui's decode cache (and the subset folders)")
    p.add_argument("--save", default=None, help="also write the JSON to this file")
    p.add_argument("--note", default=None, help="a remark stored with the results (e.g. how busy the machine was)")
    args = p.parse_args(argv)

    from tudui.device import resolve_device
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    n_img = args.images or (1280 if args.quick else 5120)
    repeats = args.repeats or (1 if args.quick else 3)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    cache_dir = str(Path(args.cache_dir).expanduser())
    root = find_data(args.data)
    work = Path(cache_dir) / "bench"
    sub = subset_folder(root, work, n_img, 100)
    t_start, load_start = time.perf_counter(), load_avg()
    log(f"benchmark: {n_img} images per measurement, {repeats} rounds, batch {sizes}, device {device}, "
        f"{torch.get_num_threads()} threads, load average {load_start}")

    # decode (or read from the cache) once up front, so no variant pays for it
    t0 = time.perf_counter()
    data = {bs: memory_batches(sub, bs, device, cache_dir, n_img) for bs in sizes}
    mean, std = data[sizes[0]][1], data[sizes[0]][2]
    full_prepare = None
    if not (args.quick or args.no_epoch):
        t1 = time.perf_counter()
        startup_seconds(root, device, cache_dir)  # the first time: decode 60,000 JPEGs and cache them
        full_prepare = time.perf_counter() - t1
    log(f"data ready in {time.perf_counter() - t0:.1f}s")

    variants = {
        "course_w0": lambda bs: course_way(sub, bs, 0, device, mean, std),
        "course_w2": lambda bs: course_way(sub, bs, 2, device, mean, std),
        "tudui": lambda bs: n_img / tudui_train(sub, bs, device, cache_dir)["seconds"],
        "tudui_nchw": lambda bs: n_img / tudui_train(sub, bs, device, cache_dir, channels_last=False)["seconds"],
        "bound": lambda bs: bound(data[bs][0], device),
    }
    # one tiny run first, so that one-time imports (TensorBoard, PNG encoding) fall on no variant
    tudui_train(subset_folder(root, work, 320, 100), sizes[0], device, cache_dir)
    raw = {bs: {k: [] for k in variants} for bs in sizes}
    names = list(variants)
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]  # rotate: no variant always goes first
        for bs in sizes:
            for k in order:
                raw[bs][k].append(round(variants[k](bs), 1))
                log(f"round {r + 1}/{repeats} batch {bs:>3} {k:<10} {raw[bs][k][-1]:8.1f} img/s")

    results = {}
    for bs in sizes:
        med = {k: statistics.median(v) for k, v in raw[bs].items()}
        best_course = max(med["course_w0"], med["course_w2"])
        results[str(bs)] = {**{k: round(v, 1) for k, v in med.items()},
                            "tudui/bound": round(med["tudui"] / med["bound"], 3),
                            "tudui/best_course": round(med["tudui"] / best_course, 3),
                            "tudui_nchw/bound": round(med["tudui_nchw"] / med["bound"], 3)}

    out = {"benchmark": "tudui training throughput, CIFAR-10 32x32, course network, basic augmentation",
           "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0]] + list(argv or sys.argv[1:])),
           "machine": machine(), "device": str(device), "images_per_measurement": n_img, "repeats": repeats,
           "data": str(root), "note": args.note, "results_images_per_s": results, "raw_images_per_s": {str(k): v for k, v in raw.items()}}

    if not (args.quick or args.no_epoch):
        # whole epochs as `tudui train` runs them, each between two bound measurements at batch 64
        bs = 64 if 64 in data else sizes[0]
        epoch = {"prepare_first_run_s": round(full_prepare, 2),
                 "prepare_cached_s": round(startup_seconds(root, device, cache_dir), 2)}
        bounds = [bound(data[bs][0], device)]
        for name, cl in (("tudui", None), ("tudui_nchw", False)):
            log(f"whole epoch: {name} ...")
            e = tudui_train(root, bs, device, cache_dir, channels_last=cl)
            bounds.append(bound(data[bs][0], device))
            epoch[name] = {"epoch_s": e["seconds"], "wall_s": round(e["wall"], 1), "val_acc": e["val_acc"]}
        b = statistics.median(bounds + raw[bs]["bound"])
        n_train = sum(1 for f in (root / "train").rglob("*") if f.is_file())
        epoch["bound_img_per_s"] = round(b, 1)
        epoch["train_images"] = n_train
        epoch["bound_train_images_s"] = round(n_train / b, 2)
        for name in ("tudui", "tudui_nchw"):  # target: at most 1.12
            epoch[name]["epoch/bound"] = round(epoch[name]["epoch_s"] / (n_train / b), 3)
        out["whole_epoch_batch_%d" % bs] = epoch

        out["data_only_images_per_s"] = {
            "course_w0": round(data_only(sub, 64, 0, device, mean, std, n_img), 1),
            "course_w2": round(data_only(sub, 64, 2, device, mean, std, n_img), 1),
            "tudui_memory": round(tudui_data_only(root, 64, device, cache_dir), 1)}

    out["load_average_start_end"] = [load_start, load_avg()]
    out["benchmark_seconds"] = round(time.perf_counter() - t_start, 1)
    emit(out, args.save, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
