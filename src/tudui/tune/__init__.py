"""`tudui tune`: search training settings with Optuna. Each trial is an ordinary run folder under the study
folder; its value is the accuracy of its best.pt on the held-out split; hopeless trials are pruned from their
per-epoch validation accuracy. The study lives in an Optuna storage (SQLite in the study folder by default),
so running the same command again continues it, and workers on other machines can share it.

    import tudui
    result = tudui.tune("digits", recipe="course", trials=20, epochs=3)
    print(result.best_value, result.best_params)   # then: tudui train --config <study>/best.yaml
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Optional

from ..config import coerce, load_yaml, resolve
from ..console import say
from ..errors import ConfigError, TuduiError
from . import space as spaces

WHERE = ("data", "data_dir", "cache_dir", "device", "threads", "workers", "download", "memory_budget")
STOP_GRACE = 15.0  # seconds workers get to save and stop after a Ctrl-C before they are sent SIGTERM


@dataclass
class TuneResult:
    study_dir: str
    study_name: str
    storage: str
    best: Optional[dict]  # number, value, params, run_dir (None before any trial completed)
    best_config: Optional[str]  # best.yaml: `tudui train --config` reproduces the best trial
    page: Optional[str]  # study.html
    trials: list = field(default_factory=list)  # every trial: number, state, value, params, run_dir, epochs

    @property
    def best_value(self) -> Optional[float]:
        return self.best["value"] if self.best else None

    @property
    def best_params(self) -> dict:
        return dict(self.best["params"]) if self.best else {}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", os.path.basename(os.path.normpath(str(text)))).strip("-") or "data"


def tune(data=None, *, recipe: Optional[str] = None, config: Optional[str] = None, trials: Optional[int] = None,
         timeout: Optional[float] = None, space=None, space_file: Optional[str] = None, default_space: bool = True,
         pruner="median", workers: int = 1, storage: Optional[str] = None, out: str = "runs",
         name: Optional[str] = None, verbose: bool = False, **options) -> TuneResult:
    """Search training settings on `data` (a built-in name or a path) and return the best trial and every trial.

    trials: the number of finished (complete or pruned) trials the study should hold; a study that already
    has some runs only the rest, so the same call continues an interrupted study. timeout: seconds (per worker).
    space: {key: 'log:1e-4:1e-1' | [choices] | None} or ['key=log:1e-4:1e-1', ...], added to (or, with
    default_space=False, instead of) the default space; space_file: the same as a YAML file.
    pruner: 'median', 'halving', 'none' or an optuna pruner. workers: processes on this machine (CPU threads
    split between them). storage: an RDB URL or a journal file path (default: SQLite in the study folder).
    out/name: the study folder (default runs/tune-<data>[-<recipe>]). Any config key may be passed as a
    keyword: it is fixed for every trial and left out of the default space."""
    try:  # optuna is an optional extra (tudui[tune]); `import tudui` must not need it
        from .study import counted, default_storage, open_storage, open_study, quiet_optuna, run_worker
    except ImportError as e:
        raise ConfigError(f"tudui tune needs Optuna ({e}); install it: pip install 'tudui[tune]'") from None
    quiet_optuna()
    if trials is None and timeout is None:
        raise ConfigError("say how long to search: --trials N (finished trials) or --timeout SECONDS")
    if trials is not None and int(trials) < 1 or timeout is not None and float(timeout) <= 0:
        raise ConfigError("--trials must be at least 1 and --timeout positive")
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    if workers > 1 and not (pruner is None or isinstance(pruner, str)):
        raise ConfigError("with workers > 1 give the pruner by name (median, halving, none)")
    options = dict(options)
    if data is not None:
        if not isinstance(data, (str, os.PathLike)):
            raise ConfigError("tune needs data by name or path (each trial, and `tudui eval`, reloads it)")
        options["data"] = os.fspath(data)
    if recipe is not None:
        options["recipe"] = recipe
    base_cfg = resolve(options, config_file=config)  # every fixed setting checked once, before any trial
    fixed = spaces.fixed_keys(options) | spaces.fixed_keys(load_yaml(config) if config else {})
    user = dict(spaces.load_file(space_file)) if space_file else {}
    user.update(spaces.parse_mapping(space) if isinstance(space, dict) else spaces.parse_flags(space))
    default = spaces.default_space(base_cfg, _train_size(base_cfg), fixed) if default_space else {}
    the_space = spaces.combine(default, user)

    name = name or f"tune-{_slug(base_cfg.data)}" + (f"-{base_cfg.recipe}" if base_cfg.recipe else "")
    study_dir = os.path.join(os.path.expanduser(out), name)
    os.makedirs(study_dir, exist_ok=True)
    url = storage or default_storage(study_dir)
    study = open_study(open_storage(url), name)
    _check_settings(study, options, config, the_space)

    base = dict(options)
    if workers > 1 and "threads" not in options:  # N processes share the cores instead of fighting over them
        base["threads"] = max(1, (os.cpu_count() or 1) // workers)
    spec = {"storage": url, "study_name": name, "study_dir": os.path.abspath(study_dir), "base": base,
            "space": spaces.describe(the_space), "config_file": os.path.abspath(config) if config else None,
            "pruner": pruner if isinstance(pruner, str) or pruner is None else None, "seed": base_cfg.seed,
            "trials": trials, "timeout": timeout, "verbose": verbose, "epochs": base_cfg.epochs}
    before = counted(study, running=False)
    say(f"study {name}: {before} finished trial(s) so far in {url}; searching {', '.join(the_space)}"
        + (f" with {workers} workers" if workers > 1 else ""))
    try:
        if workers == 1:
            run_worker(dict(spec, space=the_space, pruner=pruner))
        else:
            _run_processes(spec, workers)
    except KeyboardInterrupt:
        say(f"stopped: the study is intact in {url}; run the same command to continue it")
        _finish(study, the_space, study_dir, url)
        raise
    return _finish(study, the_space, study_dir, url)


def _train_size(cfg) -> Optional[int]:
    from ..data import load_source
    source = load_source(cfg.data, data_dir=cfg.data_dir, download=cfg.download, seed=cfg.seed,
                         val_split=cfg.val_split, allow_outside=cfg.allow_outside)
    return len(source.train)


def _check_settings(study, options: dict, config, the_space: dict) -> None:
    """A study keeps the fixed settings it was started with; continuing it with others would mix two searches."""
    def same(d: dict) -> dict:  # where data and devices are may differ between machines sharing one study
        return {k: coerce(k, v) for k, v in d.items() if k not in WHERE}  # "2" and 2 alike

    settings = {"options": same(options), "config_file": same(load_yaml(config)) if config else None,
                "space": spaces.describe(the_space)}
    settings = json.loads(json.dumps(settings, default=str))
    old = study.user_attrs.get("settings")
    if old is None:
        study.set_user_attr("settings", settings)
        return
    if old != settings:
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        raise ConfigError(f"study {study.study_name} was started with other settings ({', '.join(diff)} differ); "
                          "continue it with the same command, or pick another --name for a new study")


def _run_processes(spec: dict, workers: int) -> None:
    """N worker processes on this machine, each its own Optuna worker on the shared storage."""
    code = "import sys; from tudui.tune.study import worker_main; raise SystemExit(worker_main(sys.argv[1]))"
    # the workers import the tudui this process runs (a source checkout on PYTHONPATH, not another install)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    procs = []
    for i in range(workers):
        arg = json.dumps(dict(spec, worker=i, tag=f"[worker {i}] "))
        procs.append(subprocess.Popen([sys.executable, "-c", code, arg], env=env))
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:  # the terminal's Ctrl-C reached every worker too: give them time to save
        for p in procs:
            try:
                p.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        raise
    if any(c == 130 or c == 128 + signal.SIGTERM for c in codes):
        raise KeyboardInterrupt
    bad = [i for i, c in enumerate(codes) if c != 0]
    if bad:
        raise TuduiError(f"worker(s) {', '.join(map(str, bad))} failed (exit {', '.join(str(codes[i]) for i in bad)}); "
                         "see their lines above; the study is intact, run the same command to continue")


def _finish(study, the_space: dict, study_dir: str, url: str) -> TuneResult:
    from .page import show_value, trial_rows, write_best_config, write_page
    from .study import fail_dead_trials
    fail_dead_trials(study)  # a worker killed outright left its trial running
    rows = trial_rows(study, study_dir)
    best, best_path = None, None
    done = [r for r in rows if r["state"] == "complete"]
    if done:
        b = max(done, key=lambda r: (r["value"], -r["number"]))
        best = {k: b[k] for k in ("number", "value", "params", "run_dir")}
        best_path = write_best_config(
            b["run_dir"], os.path.join(study_dir, "best.yaml"),
            f"tudui tune: the best trial ({b['number']}) of study {study.study_name}, val acc {b['value']:.6f}\n"
            f"reproduce it: tudui train --config {os.path.join(study_dir, 'best.yaml')}")
        best["config"] = best_path
        best["config_name"] = "best.yaml"
    page = write_page(study, the_space, study_dir, os.path.join(study_dir, "study.html"), best)
    states = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    say(f"study {study.study_name}: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    if best:
        shown = ", ".join(f"{k}={show_value(v)}" for k, v in best["params"].items())
        say(f"best: trial {best['number']}, val acc {best['value']:.4f}; {shown}")
        say(f"  run folder: {best['run_dir']}")
        say(f"  config:     {best_path}   (tudui train --config {best_path})")
    say(f"  page:       {page}")
    return TuneResult(study_dir=study_dir, study_name=study.study_name, storage=url, best=best,
                      best_config=best_path, page=page, trials=rows)


__all__ = ["tune", "TuneResult"]
