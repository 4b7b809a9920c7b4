"""tudui.bench(checkpoint): every way tudui can run a model, measured on this machine: latency at batch 1,
throughput at a larger batch, file size and top-1 on the run's validation split."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Callable, Optional

import torch

from ..console import say
from ..errors import ConfigError
from . import measure
from .runners import BUILDERS, FORMATS, Build, Skip


def parse_formats(formats) -> list:
    """None or 'all' -> every format; 'a,b' or a list -> those, in the table's order; unknown names are errors."""
    if formats is None or formats == "all":
        return list(FORMATS)
    names = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ConfigError(f"unknown bench format(s) {', '.join(unknown) or '(none given)'}; choose from "
                          f"{', '.join(FORMATS)}")
    return [f for f in FORMATS if f in names]


def machine(threads: int) -> dict:
    import importlib.metadata as md
    import platform

    from ..device import cpu_name

    def version(pkg):
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": threads, "platform": platform.platform(),
            "torch": torch.__version__, "onnxruntime": version("onnxruntime"), "openvino": version("openvino")}


def bench(checkpoint, formats=None, *, threads: Optional[int] = None, batch: int = 64, latency_runs: int = 100,
          seconds: float = 3.0, calibration: int = 256, val_limit: Optional[int] = None, data=None,
          keep: Optional[str] = None, verify: bool = True, unsafe_load: bool = False,
          progress: Callable[[str], None] = say) -> dict:
    """Measure each format (see bench.runners.FORMATS; default all) of a checkpoint on this CPU.

    Latency: milliseconds per call at batch 1 (p50, p99 over up to `latency_runs` calls, about `seconds` each);
    throughput: images/s at batch `batch` for about `seconds`; top-1 (no TTA) on the run's validation split (at
    most `val_limit` images), or on `data`. Exported files are made with tudui.export (checked against PyTorch;
    int8 calibrated on `calibration` training images and kept whatever its drop, which the row shows) in a
    temporary folder, or in `keep`. Formats that cannot run here (an optional engine not installed, no C++
    compiler) are rows with status 'skipped' and the reason.
    -> {'machine', 'checkpoint', 'batch', 'val_images', 'rows': [{'format', 'name', 'status', 'note',
        'latency_p50_ms', 'latency_p99_ms', 'throughput', 'bytes', 'accuracy', ...}]}"""
    from ..infer import open_predictor
    from ..infer.rundata import gather, run_source, split_loader
    names = parse_formats(formats)
    if batch < 1 or latency_runs < 1 or seconds <= 0:
        raise ConfigError("--batch and --latency-runs must be at least 1, --seconds more than 0")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    before = torch.get_num_threads()
    threads = int(threads or before)
    torch.set_num_threads(threads)
    work = os.path.abspath(keep) if keep else tempfile.mkdtemp(prefix="tudui-bench-")
    os.makedirs(work, exist_ok=True)
    try:
        clf = open_predictor(checkpoint, device="cpu", verify=verify, unsafe_load=unsafe_load)
        if clf.kind != "torch":
            raise ConfigError(f"tudui bench takes a checkpoint or run folder; {clf.meta.get('path')} is a "
                              f"{clf.kind} file")
        progress("bench: reading the validation split")
        cfg, source = run_source(clf, data)
        val_x, val_y = gather(split_loader(clf, cfg, source, "val", limit=val_limit))
        reps = -(-batch // len(val_x))
        x1, xb = val_x[:1].contiguous(), val_x.repeat(reps, 1, 1, 1)[:batch].contiguous()
        b = Build(clf, work, threads, val_x[:2].contiguous(), {"calibration": calibration})
        rows = []
        for i, name in enumerate(names, 1):
            tag = f"bench: [{i}/{len(names)}] {FORMATS[name]}"
            rows.append(_row(name, b, x1, xb, val_x, val_y, latency_runs, seconds, lambda m: progress(f"{tag}: {m}")))
        return {"machine": machine(threads), "checkpoint": clf.meta.get("path"), "batch": batch,
                "val_images": len(val_y), "seconds_per_measure": seconds, "latency_runs": latency_runs,
                "rows": rows, "files": work if keep else None}
    finally:
        torch.set_num_threads(before)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _row(name, b, x1, xb, val_x, val_y, runs, seconds, say) -> dict:
    row = {"format": name, "name": FORMATS[name]}
    t0 = time.perf_counter()
    say("preparing")
    try:
        r = BUILDERS[name](b)
    except Skip as e:
        say(f"skipped: {e}")
        return {**row, "status": "skipped", "note": str(e)}
    prep = time.perf_counter() - t0
    say("latency at batch 1")
    lat = measure.latency(r.fn, x1, runs=runs, seconds=seconds)
    say(f"throughput at batch {len(xb)}")
    thr = measure.throughput(r.fn, xb, seconds=seconds)
    say(f"top-1 on {len(val_y)} validation images")
    acc = measure.top1(r.fn, val_x, val_y)
    say(f"{lat['p50_ms']:.2f} ms at batch 1, {thr['images_per_s']:.0f} images/s at batch {len(xb)}, "
        f"top-1 {acc:.2f}%")
    row.update(status="ok", note=r.note, latency_p50_ms=lat["p50_ms"], latency_p99_ms=lat["p99_ms"],
               latency_runs=lat["runs"], throughput=thr["images_per_s"], batch=len(xb), accuracy=acc,
               bytes=os.path.getsize(r.path) if r.path and os.path.isfile(r.path) else None,
               prepare_s=prep)
    if r.extra:
        row.update(r.extra)
    return row
