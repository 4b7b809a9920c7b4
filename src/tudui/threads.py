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
import time
from typing import Callable, Optional

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


# ---------------------------------------------------------------------------------------------------------------
# Other programs on the cores, measured per epoch. With one of two cores taken, two torch threads are bounded by
# 2x the idle epoch (each step waits for the thread that shares a core), and measured 1.65x here for the course
# network and 2.1-2.6x for the CIFAR-10 fast path; one thread on the free core keeps its idle speed. So when
# other processes keep a core busy through an epoch, the next epoch runs on the cores left, and it goes back to
# all of them when they are free (benchmarks/thread_load.py, policy "adaptive").

def _cpu_busy_seconds(cores) -> Optional[float]:
    """Seconds the given cores spent busy (any process) since boot, from /proc/stat; None where unknown."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = 0
    for line in lines:
        name, *vals = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
            v = [int(x) for x in vals[:8]]
            busy += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # user nice system irq softirq steal
    return busy / hz


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class ThreadGovernor:
    """Per epoch: how many cores other processes kept busy; the torch thread count for the next epoch.

    `set_threads(n)` applies a count (the engine passes torch.set_num_threads: this module must not import
    torch, because it runs before torch loads). `busy` and `own` read the cores' and this process's busy
    seconds; they are parameters so that tests can feed them. Hysteresis: drop when others keep >= 0.6 of a
    core busy, go back up when they keep <= 0.3."""

    DROP, RAISE = 0.6, 0.3

    def __init__(self, set_threads: Callable[[int], None], full: int, *, cores=None,
                 busy: Callable = _cpu_busy_seconds, own: Callable = _own_cpu_seconds,
                 clock: Callable = time.monotonic, say: Optional[Callable[[str], None]] = None):
        self.set_threads, self.full, self.threads = set_threads, max(1, int(full)), max(1, int(full))
        self.cores = set(cores) if cores is not None else _affinity()
        self.busy, self.own, self.clock, self.say = busy, own, clock, say
        self._start = None
        self.others = None  # cores other processes kept busy during the last epoch

    def epoch_started(self) -> None:
        b = self.busy(self.cores)
        self._start = None if b is None else (b, self.own(), self.clock())

    def epoch_ended(self) -> int:
        """-> the thread count now set (for the next epoch)."""
        if self._start is None or self.full < 2:
            return self.threads
        b = self.busy(self.cores)
        if b is None:
            return self.threads
        b0, own0, t0 = self._start
        wall = self.clock() - t0
        if wall <= 0.05:  # too short to tell
            return self.threads
        self.others = max(0.0, ((b - b0) - (self.own() - own0)) / wall)
        free = len(self.cores) - self.others
        if self.others >= self.DROP:
            want = max(1, min(self.full, int(free + 0.5)))
        elif self.others <= self.RAISE:
            want = self.full
        else:
            want = self.threads
        if want != self.threads:
            self.set_threads(want)
            if self.say:
                why = (f"other programs kept {self.others:.1f} of {len(self.cores)} cores busy"
                       if want < self.threads else "the cores are free again")
                self.say(f"threads: {want} (from {self.threads}): {why}")
            self.threads = want
        return self.threads


def _affinity() -> set:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))
