"""TensorBoard, in one place: opening an event writer, what tudui writes into it (epoch scalars, the learning
rate, image grids, hyperparameters) and `tudui board` (TensorBoard on the runs folder, with an absolute
logdir and a free port). The engine logs through a writer from here; the end-of-training pages
(report/summary.py) and `tudui preview` write images through it."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Optional

from .console import notice
from .errors import TuduiError


def open_writer(log_dir: str, purge_step: Optional[int] = None):
    """A SummaryWriter on `log_dir`, or None when tensorboard (a dependency) is broken: training goes on.
    purge_step: hide events from this step on (the steps a resumed run replays after its checkpoint)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # import-time cost: only when events are written
    except ImportError:
        notice("tensorboard is not importable; no event files are written")
        return None
    return SummaryWriter(log_dir=os.path.expanduser(log_dir), purge_step=purge_step)


def epoch_scalars(tb, row: dict) -> None:
    """An epoch's row of metrics.jsonl: train loss, and validation loss and accuracy when evaluated."""
    e = row["epoch"]
    tb.add_scalar("train/loss", row["train_loss"], e)
    if row.get("val_loss") is not None:
        tb.add_scalar("val/loss", row["val_loss"], e)
        tb.add_scalar("val/acc", row["val_acc"], e)
    tb.flush()


def batch_grid(tb, images, tag: str = "train/batch", step: int = 0) -> None:
    """One grid image of a batch (de-normalized to 0-1), as the course's add_image lesson."""
    import torchvision  # import-time cost: only for the first batch of a run
    grid = torchvision.utils.make_grid(images[:64].float().cpu(), nrow=8, normalize=True)
    tb.add_image(tag, grid, step)


def rgb_image(tb, tag: str, array, step: int = 0) -> None:
    """An (H, W, 3) uint8 picture (a rendered figure or grid)."""
    tb.add_image(tag, array, step, dataformats="HWC")


def hparams(cfg_dict: dict) -> dict:
    """The config keys TensorBoard's HPARAMS tab can show (numbers, strings, booleans; None as text)."""
    out = {}
    for k, v in cfg_dict.items():
        if isinstance(v, (bool, int, float, str)):
            out[k] = v
        elif v is None:
            out[k] = "None"
        else:
            out[k] = str(v)
    return out


# ---- `tudui board` ----
def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def free_port(preferred: int = 6006, host: str = "127.0.0.1") -> int:
    for p in range(preferred, preferred + 50):
        if port_free(p, host):
            return p
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def board_command(runs_dir: str = "runs", port: int = 6006, host: str = "127.0.0.1") -> tuple:
    """-> (argv, url): the TensorBoard command for an absolute log dir on a free port."""
    logdir = os.path.abspath(os.path.expanduser(runs_dir))
    if not os.path.isdir(logdir):
        raise TuduiError(f"runs folder not found: {logdir}; train first (`tudui train`) or name the folder")
    port = free_port(port, host)
    argv = [sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--port", str(port), "--host", host]
    return argv, f"http://{host}:{port}/"


# what TensorBoard says on every start that is no news to a tudui user (tudui prints the URL itself)
NOISE = ("TensorFlow installation not found", "Serving TensorBoard on", "TensorBoard caught SIGTERM",
         "(Press CTRL+C to quit)", "NOTE: Using experimental fast data loading")


def _forward(stream, out) -> None:
    """Copy TensorBoard's output to `out` without its start-up notes (a NOTE's indented lines go with it)."""
    in_note = False
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        if in_note and (raw[:1] in (b" ", b"\t") or not line):
            continue
        in_note = line.startswith("NOTE:")
        if not line or in_note or any(n in line for n in NOISE):
            continue
        print(line, file=out, flush=True)
    stream.close()


def _die_with_parent() -> None:
    """Runs in the child before TensorBoard starts: on Linux, a SIGTERM to it when tudui dies in any way
    (even SIGKILL), so no TensorBoard is left serving without its parent."""
    try:
        import ctypes  # Linux's prctl(PR_SET_PDEATHSIG); elsewhere the parent's handlers stop the child
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def stop(proc, timeout: float = 5.0) -> None:
    """Stop a child process: SIGTERM, then SIGKILL if it is still there after `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def board(runs_dir: str = "runs", port: int = 6006, host: str = "127.0.0.1", wait: bool = True):
    """Start TensorBoard on `runs_dir` and print its URL (once). With wait, block until it ends or tudui is
    stopped (Ctrl-C, SIGTERM, SIGHUP), and stop TensorBoard with it -> (exit code, url); without, -> (process, url)."""
    argv, url = board_command(runs_dir, port, host)
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=preexec)
    threading.Thread(target=_forward, args=(proc.stdout, sys.stderr), daemon=True).start()
    print(f"TensorBoard on {url}  (logdir {argv[4]}; Ctrl-C stops it)", flush=True)
    if not wait:
        return proc, url
    previous = {}

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                previous[sig] = signal.signal(sig, on_signal)
    try:
        return proc.wait(), url
    except KeyboardInterrupt:
        return 0, url
    finally:
        stop(proc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
