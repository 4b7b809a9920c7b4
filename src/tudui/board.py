"""`tudui board`: start TensorBoard on the runs folder, with an absolute logdir and a free port."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading

from .errors import TuduiError


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
