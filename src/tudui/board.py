"""`tudui board`: start TensorBoard on the runs folder, with an absolute logdir and a free port."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

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


def board(runs_dir: str = "runs", port: int = 6006, host: str = "127.0.0.1", wait: bool = True):
    argv, url = board_command(runs_dir, port, host)
    print(f"TensorBoard on {url} (logdir {argv[4]}); Ctrl-C stops it", file=sys.stderr, flush=True)
    print(url, flush=True)
    proc = subprocess.Popen(argv)
    if not wait:
        return proc, url
    try:
        return proc.wait(), url
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        return 0, url
