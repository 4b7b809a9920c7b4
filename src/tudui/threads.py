"""The CPU thread policy, applied before torch loads (OpenMP reads its settings then).

Measured in benchmarks/thread_load.py (benchmarks/results/thread_load.json, a 2-core machine): with one other
busy process, torch's default (one OpenMP thread per core; a waiting thread spins for a long while before it
sleeps) made a training epoch 3.5x slower than on the idle machine, because a spinning thread waits for a
partner that has no core. Spinning only briefly (GOMP_SPINCOUNT=1000) kept the busy epoch at 2.0x the idle one
and the idle epoch within 5% of torch's default; sleeping at once (OMP_WAIT_POLICY=PASSIVE) was 20% slower
when idle, and one thread 1.8x slower. So tudui sets GOMP_SPINCOUNT=1000 (libgomp: the OpenMP of torch's
Linux wheels; other OpenMP runtimes ignore it). A user's own GOMP_SPINCOUNT or OMP_WAIT_POLICY wins, and
`--threads` still sets the thread count; nothing changes when torch was imported before tudui.

This module must not import torch.
"""
from __future__ import annotations

import os
import sys

SPINCOUNT = "1000"


def apply_default_policy() -> bool:
    """Set GOMP_SPINCOUNT unless the user chose a wait policy or torch is already loaded -> applied?"""
    if "torch" in sys.modules or os.environ.get("OMP_WAIT_POLICY") or os.environ.get("GOMP_SPINCOUNT"):
        return False
    os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
    return True


def describe() -> str:
    """The wait policy in effect, for `tudui env`."""
    parts = [f"{k}={os.environ[k]}" for k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY") if os.environ.get(k)]
    return ", ".join(parts) or "OpenMP default"
