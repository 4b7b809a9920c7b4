"""Latency at batch 1 (percentiles over repeated calls), throughput at a larger batch, top-1 over a split:
the same measurements for every format."""
from __future__ import annotations

import time

import torch


def percentile(values: list, q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between the closest ranks."""
    v = sorted(values)
    if not v:
        return float("nan")
    pos = (len(v) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def latency(fn, x: torch.Tensor, runs: int = 100, seconds: float = 5.0, warmup: int = 5) -> dict:
    """Milliseconds per call at x's batch size: `runs` timed calls after `warmup`, stopping early (after at least
    10) once `seconds` have passed. -> {'p50_ms', 'p99_ms', 'runs'}"""
    for _ in range(warmup):
        fn(x)
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < runs and (len(times) < 10 or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99), "runs": len(times)}


def throughput(fn, x: torch.Tensor, seconds: float = 5.0, min_calls: int = 3) -> dict:
    """Images per second at x's batch size: calls repeated for about `seconds` (at least `min_calls`), after
    one warm-up call. -> {'images_per_s', 'calls'}"""
    fn(x)
    calls, t0 = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - t0 < seconds:
        fn(x)
        calls += 1
    return {"images_per_s": calls * len(x) / (time.perf_counter() - t0), "calls": calls}


def top1(fn, x: torch.Tensor, y: torch.Tensor, batch: int = 64) -> float:
    """Top-1 accuracy in percent of fn over (x, y), in batches."""
    right = 0
    for i in range(0, len(x), batch):
        right += int((fn(x[i:i + batch]).float().argmax(1).cpu() == y[i:i + batch]).sum())
    return 100.0 * right / len(y) if len(y) else float("nan")
