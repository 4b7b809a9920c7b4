"""The thread governor (tudui.threads.ThreadGovernor): fed the cores' and this process's busy seconds, it drops to
the cores left when other programs keep one busy through an epoch, and goes back up when they stop."""

from tudui.threads import ThreadGovernor, _cpu_busy_seconds


class Clock:
    def __init__(self):
        self.t, self.busy, self.own = 0.0, 0.0, 0.0

    def epoch(self, seconds, own_cores, other_cores):
        """An epoch of `seconds` in which this process used own_cores and others other_cores on average."""
        self.t += seconds
        self.own += own_cores * seconds
        self.busy += (own_cores + other_cores) * seconds


def governor(full=2, cores=(0, 1)):
    c, calls, lines = Clock(), [], []
    g = ThreadGovernor(calls.append, full, cores=cores, busy=lambda _: c.busy, own=lambda: c.own,
                       clock=lambda: c.t, say=lines.append)
    return g, c, calls, lines


def run_epoch(g, c, seconds, own, other):
    g.epoch_started()
    c.epoch(seconds, own, other)
    return g.epoch_ended()


def test_drops_to_one_thread_while_a_core_is_taken_and_goes_back():
    g, c, calls, lines = governor()
    assert run_epoch(g, c, 10, own=2.0, other=0.0) == 2 and calls == []       # idle: stays at 2
    assert run_epoch(g, c, 10, own=1.0, other=1.0) == 1 and calls == [1]      # a busy loop on the other core
    assert abs(g.others - 1.0) < 1e-9 and "1.0 of 2 cores busy" in lines[-1]
    assert run_epoch(g, c, 10, own=1.0, other=0.9) == 1 and calls == [1]      # still busy: no change
    assert run_epoch(g, c, 10, own=1.0, other=0.45) == 1 and calls == [1]     # in the hysteresis band: keep
    assert run_epoch(g, c, 10, own=1.0, other=0.1) == 2 and calls == [1, 2]   # free again
    assert "free again" in lines[-1] and len(lines) == 2


def test_light_background_work_and_unknown_readings_change_nothing():
    g, c, calls, _ = governor()
    assert run_epoch(g, c, 10, own=1.9, other=0.2) == 2
    g2 = ThreadGovernor(calls.append, 2, cores=(0, 1), busy=lambda _: None)   # no /proc/stat (not Linux)
    g2.epoch_started()
    assert g2.epoch_ended() == 2 and calls == []
    g3, c3, calls3, _ = governor(full=1)                                       # one thread asked for: nothing to drop
    assert run_epoch(g3, c3, 10, own=1.0, other=1.0) == 1 and calls3 == []


def test_reads_this_machine():
    b = _cpu_busy_seconds({0})
    assert b is None or b > 0


def test_the_engine_adds_it_only_when_the_thread_count_is_free_to_choose():
    from types import SimpleNamespace

    import torch

    from tudui.engine.runtime import FreeCoreThreads
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    cfg = SimpleNamespace(threads=None, workers=0)
    assert FreeCoreThreads.applies(cfg, cpu, distributed=False)
    assert not FreeCoreThreads.applies(SimpleNamespace(threads=2, workers=0), cpu, False)  # --threads: yours
    assert not FreeCoreThreads.applies(SimpleNamespace(threads=None, workers=2), cpu, False)  # loader processes
    assert not FreeCoreThreads.applies(cfg, cpu, distributed=True)
    assert not FreeCoreThreads.applies(cfg, cuda, distributed=False)
