"""The study: Optuna's storage (SQLite in the study folder by default, any RDB URL, or a journal file), its
sampler and pruner, and one worker's loop over trials.

Failures: a trial whose process died stays RUNNING in the storage until someone notices. Two things notice:
the storage's heartbeat (RDB storages: a worker records one every HEARTBEAT seconds; another worker fails a
trial that missed it for GRACE seconds), and, on this machine, any worker that starts (a trial recorded as
running in a process of this host that no longer exists is failed at once). Either way the failed trial is
queued again (Optuna's RetryHeartbeatStaleTrialCallback) up to MAX_RETRY times."""
from __future__ import annotations

import os
import socket
import time
import warnings
import zlib

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from ..errors import ConfigError
from ..fileio import pid_alive
from .trial import Objective, worker_id

HEARTBEAT, GRACE, MAX_RETRY = 10, 30, 2
CREATE_TRIES = 5
RACES = ("IntegrityError", "OperationalError")  # two processes creating the same new database's tables at once
PRUNERS = ("median", "halving", "none")
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


def quiet_optuna() -> None:
    """tudui prints one line per trial itself (a failed trial's too): Optuna's own lines and experimental-feature
    warnings go."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


def retry_callback() -> RetryHeartbeatStaleTrialCallback:
    return RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


def default_storage(study_dir: str) -> str:
    return "sqlite:///" + os.path.abspath(os.path.join(study_dir, "study.db"))


def open_storage(url: str):
    """An RDB URL (sqlite:///..., postgresql://..., mysql://...) with the heartbeat on, or a journal file path
    (anything without '://'; for a shared disk where SQLite's locking is unreliable, e.g. NFS)."""
    if "://" not in url:
        from optuna.storages.journal import JournalFileBackend, JournalStorage
        path = os.path.abspath(os.path.expanduser(url))
        if not os.path.isdir(os.path.dirname(path)):
            raise ConfigError(f"--storage {url}: the folder of the journal file does not exist")
        return JournalStorage(JournalFileBackend(path))
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(CREATE_TRIES):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT,
                                              grace_period=GRACE, heartbeat_stale_trial_callback=retry_callback())
        except ImportError:
            raise ConfigError(f"study storage {url}: the database driver for this URL is not installed "
                              "(e.g. pip install psycopg2-binary or PyMySQL)") from None
        except Exception as e:  # sqlalchemy's errors: a bad URL, an unreachable server, or a creation race
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            if attempt + 1 == CREATE_TRIES or type(e).__name__ not in RACES:
                raise ConfigError(f"study storage {url}: cannot open the study database ({first[:200]})") from None
            time.sleep(0.5 * (attempt + 1))  # two workers creating one new database: the loser tries again


def make_pruner(pruner, epochs: int = 6):
    """median: below the median of the earlier trials at the same epoch, once 3 trials finished, from a third of
    the configured epochs on (at least epoch 2: a slow starter such as the course's plain SGD looks hopeless
    after one epoch). halving: asynchronous successive halving, rungs at epochs 1, 3, 9, ..."""
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if pruner in (None, "none"):
        return optuna.pruners.NopPruner()
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=max(2, epochs // 3))
    if pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    raise ConfigError(f"unknown pruner '{pruner}'; choose one of: {', '.join(PRUNERS)}")


def make_sampler(seed: int, n_trials, done: int, worker: int):
    """TPE, the first third of the trials (3 to 10) drawn at random. Its seed mixes --seed with how many trials
    the study already has and this worker process, so a resumed study, a second worker or another machine never
    redraws the same settings (two `tudui tune` commands started at once drew identical first trials when the
    seed was --seed alone); constant_liar keeps parallel workers from sampling the same point."""
    startup = max(3, min(10, (n_trials or 30) // 3))
    mixed = zlib.crc32(f"{seed}:{done}:{worker}:{worker_id()}".encode())
    return optuna.samplers.TPESampler(seed=mixed, n_startup_trials=startup, constant_liar=True)


def open_study(storage, name: str, sampler=None, pruner=None):
    return optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True,
                               sampler=sampler, pruner=pruner)


def fail_dead_trials(study) -> list:
    """Fail (and queue again) the RUNNING trials recorded by a process of this host that no longer exists.
    -> their numbers. Trials of other hosts are left to the heartbeat."""
    host, failed = socket.gethostname(), []
    storage, retry = study._storage, retry_callback()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        who = str(t.user_attrs.get("worker", ""))
        h, _, pid = who.rpartition(":")
        if h != host or not pid.isdigit() or pid_alive(int(pid)):
            continue
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                failed.append(t.number)
                retry(study, storage.get_trial(t._trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first
            pass
    return failed


def counted(study, running: bool = True) -> int:
    """Finished trials (complete or pruned), plus the ones running now when `running`."""
    states = COUNTED + ((TrialState.RUNNING,) if running else ())
    return len(study.get_trials(deepcopy=False, states=states))


class StopAt:
    """Stop this worker once the study holds n finished-or-running trials (so N workers end at N trials, not
    N + workers - 1)."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, study, trial) -> None:
        if counted(study) >= self.n:
            study.stop()


def run_worker(spec: dict, worker: int = 0) -> None:
    """One worker's loop: open the study, fail dead trials, run trials until the study has spec['trials'] or
    spec['timeout'] seconds passed. spec: storage, study_name, study_dir, base, space (Params), config_file,
    pruner, seed, trials, timeout, verbose, tag. A Ctrl-C (SIGINT/SIGTERM) during a trial saves its last.pt,
    fails it and queues it again; the study stays intact and the same command continues it."""
    quiet_optuna()
    storage = open_storage(spec["storage"])
    study = open_study(storage, spec["study_name"])
    fail_dead_trials(study)
    trials, timeout = spec.get("trials"), spec.get("timeout")
    remaining = None if trials is None else trials - counted(study)
    if remaining is not None and remaining <= 0:
        return
    study = open_study(storage, spec["study_name"],
                       sampler=make_sampler(spec.get("seed", 0), trials, counted(study, running=False), worker),
                       pruner=make_pruner(spec.get("pruner", "median"), spec.get("epochs", 6)))
    objective = Objective(spec["base"], spec["space"], spec["study_dir"], spec.get("config_file"),
                          verbose=spec.get("verbose", False), tag=spec.get("tag", ""))
    callbacks = [StopAt(trials)] if trials is not None else []
    try:
        study.optimize(objective, n_trials=remaining, timeout=timeout, callbacks=callbacks)
        if objective.stop_signal is not None:
            raise KeyboardInterrupt
    except KeyboardInterrupt:  # optuna failed the running trial; queue it again for the next run
        mine = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                if t.user_attrs.get("interrupted") and t.user_attrs.get("worker") == worker_id()]
        if mine:
            retry_callback()(study, mine[-1])
        raise


def worker_main(spec_json: str) -> int:
    """Entry point of a worker process started by `tudui tune --workers N` -> exit status."""
    import json
    import sys

    from ..errors import TuduiError
    from .space import parse_mapping
    spec = json.loads(spec_json)
    spec["space"] = parse_mapping(spec["space"])
    try:
        run_worker(spec, worker=int(spec.get("worker", 0)))
    except KeyboardInterrupt:
        return 130
    except TuduiError as e:
        print(f"tudui tune: {spec.get('tag', '')}error: {e}", file=sys.stderr)
        return 2
    return 0
