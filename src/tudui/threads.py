"""The CPU thread policy, applied before torch loads (OpenMP reads its settings then).

Measured in benchmarks/thread_load.py (results in benchmarks/results/thread_load.json): with one other busy
process on a 2-core machine, torch's default (one OpenMP thread per core, waiting threads spinning) made a
training epoch several times slower, because a spinning thread waits for a partner that has no core.
With OMP_WAIT_POLICY=PASSIVE the waiting threads sleep instead: the busy case stays within 2x of the idle one
and the idle case keeps torch's speed. A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins, and so does
`--threads`; it has no effect when torch was imported before tudui.

This module must not import torch.
"""
from __future__ import annotations

import os
import sys

WAIT_POLICY = "PASSIVE"


def apply_default_policy() -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user chose a wait policy or torch is already loaded -> applied?"""
    if "torch" in sys.modules or os.environ.get("OMP_WAIT_POLICY") or os.environ.get("GOMP_SPINCOUNT"):
        return False
    os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    return True


def describe() -> str:
    return os.environ.get("OMP_WAIT_POLICY") or ("GOMP_SPINCOUNT=" + os.environ["GOMP_SPINCOUNT"]
                                                 if os.environ.get("GOMP_SPINCOUNT") else "OpenMP default")
