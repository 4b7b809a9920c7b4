"""The run folder and everything written into it, from one place: config.yaml, metrics.jsonl, run.json and
the TensorBoard events (through tudui.board). Checkpoints are written by the trainer through `checkpoint`."""
from __future__ import annotations

import json
import os
import time
from typing import Optional

import yaml

from .. import board
from ..console import command_line
from ..errors import ConfigError, TuduiError
from ..fileio import pid_alive, write_text


def unique_run_name(prefix: str = "") -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{prefix}{stamp}-{os.getpid() % 10000:04d}"


def make_run_dir(out: str, name: Optional[str], resume: bool = False) -> str:
    """Create the run folder. A named folder that already holds files is never reused by a new run (that would
    overwrite its checkpoints and logs): ConfigError, unless `resume`."""
    out = os.path.expanduser(out)
    if name is None:
        name = unique_run_name()
        while os.path.exists(os.path.join(out, name)):
            time.sleep(0.01)
            name = unique_run_name()
    path = os.path.join(out, name)
    if not resume and os.path.isdir(path) and os.listdir(path):
        raise ConfigError(f"run folder {path} already exists and is not empty; continue it with "
                          f"`tudui train --resume {path}`, or pick another --name (or none for a new folder)")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the run folder {path}: {e.strerror or e}; choose another --out") from None
    return path


def write_error(path: str, e: OSError):
    """A full disk or an unwritable run folder -> one-line TuduiError naming the folder."""
    return TuduiError(f"cannot write {os.path.basename(path)} in {os.path.dirname(os.path.abspath(path))}: "
                      f"{e.strerror or e}; free space or make the folder writable (or choose another --out)")


class RunLog:
    def __init__(self, run_dir: str, tensorboard: bool = True, append: bool = False,
                 purge_step: Optional[int] = None):
        """append: continue a resumed run's logs. purge_step: hide TensorBoard events from this step on
        (the steps a resumed run replays after its checkpoint)."""
        self.run_dir = run_dir
        self.metrics_path = os.path.join(run_dir, "metrics.jsonl")
        self.tb = None
        try:
            if not append and os.path.exists(self.metrics_path):
                os.remove(self.metrics_path)
            if tensorboard:
                self.tb = board.open_writer(run_dir, purge_step=purge_step)
        except OSError as e:
            raise write_error(self.metrics_path, e) from None

    def _write(self, name: str, text: str, mode: str = "w") -> None:
        path = os.path.join(self.run_dir, name)
        try:
            if mode == "a":
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(text)
                return
            write_text(path, text)  # whole files are replaced atomically: a kill leaves the old or the new one
        except OSError as e:
            raise write_error(path, e) from None

    def write_config(self, cfg_dict: dict) -> None:
        self._write("config.yaml", yaml.safe_dump(cfg_dict, sort_keys=False, allow_unicode=True))

    def write_json(self, name: str, obj) -> None:
        self._write(name, json.dumps(obj, indent=1, ensure_ascii=False))

    def restore(self, rows: list) -> None:
        """Rewrite metrics.jsonl to exactly `rows` (a resumed run drops epochs logged after its checkpoint)."""
        self._write("metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    def epoch(self, row: dict) -> None:
        self._write("metrics.jsonl", json.dumps(row) + "\n", mode="a")
        if self.tb:
            board.epoch_scalars(self.tb, row)

    def step_lr(self, step: int, lr: float) -> None:
        if self.tb:
            self.tb.add_scalar("train/lr", lr, step)

    def batch_grid(self, images, tag: str = "train/batch") -> None:
        """One grid image of a training batch (de-normalized to 0-1), as the course's add_image lesson."""
        if self.tb is not None:
            board.batch_grid(self.tb, images, tag)

    # ---- run status (run.json), read by `tudui runs` and the report ----
    def start(self, epochs: int, resumed: bool = False) -> None:
        """Record that the run is going: the command line, when, the planned epochs. A resumed run keeps its
        first command and start time and adds this one."""
        old = read_status(self.run_dir) if resumed else {}
        argv = command_line()
        self.status = {"status": "running", "pid": os.getpid(), "started": old.get("started", time.time()),
                       "command": old.get("command", list(argv)), "epochs_planned": int(epochs),
                       "wall_seconds": float(old.get("wall_seconds", 0.0))}
        if resumed:
            self.status["resumed"] = old.get("resumed", []) + [{"at": time.time(), "command": list(argv)}]
        self._t0 = time.time()
        self.write_json("run.json", self.status)

    def end(self, status: str, epochs_done: int, error: Optional[BaseException] = None,
            reason: Optional[str] = None) -> None:
        """Record how the run ended: finished, stopped_early, stopped (a callback asked, for `reason`),
        interrupted (a stop signal) or failed (with the error's first line)."""
        if not getattr(self, "status", None):
            return
        st = dict(self.status, status=status, ended=time.time(), epochs_done=int(epochs_done),
                  wall_seconds=round(self.status["wall_seconds"] + time.time() - self._t0, 3))
        if error is not None and status == "failed":
            st["error"] = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        if reason:
            st["stop_reason"] = reason
        st.pop("pid", None)
        self.write_json("run.json", st)

    def close(self) -> None:
        if self.tb:
            self.tb.close()
            self.tb = None


class NullLog:
    """What the ranks other than 0 log to: nothing (rank 0 alone writes the run folder)."""
    tb = None

    def __getattr__(self, name):
        return lambda *a, **k: None


def read_status(run_dir: str) -> dict:
    """run.json of a run folder ({} when absent or unreadable). A 'running' run whose process is gone
    (killed without a chance to record it) reads as 'interrupted'."""
    try:
        with open(os.path.join(run_dir, "run.json"), encoding="utf-8") as fh:
            st = json.load(fh)
    except (OSError, ValueError):
        return {}
    if not isinstance(st, dict):
        return {}
    if st.get("status") == "running" and st.get("pid") and not pid_alive(int(st["pid"])):
        st["status"] = "interrupted"
    return st
