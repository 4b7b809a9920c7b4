"""The run folder and everything written into it, from one place: config.yaml, metrics.jsonl,
TensorBoard events, and the console lines. Checkpoints are written by the trainer through `checkpoint`."""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Optional

import yaml


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
        from ..errors import ConfigError
        raise ConfigError(f"run folder {path} already exists and is not empty; continue it with "
                          f"`tudui train --resume {path}`, or pick another --name (or none for a new folder)")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        from ..errors import ConfigError
        raise ConfigError(f"cannot create the run folder {path}: {e.strerror or e}; choose another --out") from None
    return path


def write_error(path: str, e: OSError):
    """A full disk or an unwritable run folder -> one-line TuduiError naming the folder."""
    from ..errors import TuduiError
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
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(log_dir=run_dir, purge_step=purge_step)
        except OSError as e:
            raise write_error(self.metrics_path, e) from None
        except ImportError:  # tensorboard is a dependency; keep training if it is broken
            print("notice: tensorboard is not importable; no event files are written", file=sys.stderr)

    def _write(self, name: str, text: str, mode: str = "w") -> None:
        path = os.path.join(self.run_dir, name)
        try:
            if mode == "a":
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(text)
                return
            tmp = path + ".tmp"  # whole files are replaced atomically: a kill leaves the old or the new one
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
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
            e = row["epoch"]
            self.tb.add_scalar("train/loss", row["train_loss"], e)
            if row.get("val_loss") is not None:
                self.tb.add_scalar("val/loss", row["val_loss"], e)
                self.tb.add_scalar("val/acc", row["val_acc"], e)
            self.tb.flush()

    def step_lr(self, step: int, lr: float) -> None:
        if self.tb:
            self.tb.add_scalar("train/lr", lr, step)

    def batch_grid(self, images, tag: str = "train/batch") -> None:
        """One grid image of a training batch (de-normalized to 0-1), as the course's add_image lesson."""
        if self.tb is None:
            return
        import torchvision
        grid = torchvision.utils.make_grid(images[:64].float().cpu(), nrow=8, normalize=True)
        self.tb.add_image(tag, grid, 0)

    def close(self) -> None:
        if self.tb:
            self.tb.close()
            self.tb = None


def say(msg: str) -> None:
    """Progress and notices go to stderr, so stdout can carry JSON."""
    print(msg, file=sys.stderr, flush=True)
