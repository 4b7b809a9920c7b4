"""Files written so that a crash leaves the old version or the new one, never a torn one: a unique temporary
file beside the target, fsynced and renamed over it; temporaries left by killed processes are cleaned up."""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil


def tmp_name(path: str) -> str:
    """`.NAME.PID.HEX.tmp` beside `path`: unique per process and call, so concurrent writers never collide."""
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def replacing(path: str, mode: str = "wb"):
    """Yield a new temporary file (mode 0o666 less the umask, as a plain open() makes) beside `path`; when the
    block ends well it is flushed, fsynced and renamed over `path`, and on any failure it is removed, leaving
    `path` untouched. mode: "wb", or "w" for UTF-8 text."""
    tmp = tmp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with (os.fdopen(fd, "wb") if mode == "wb" else os.fdopen(fd, "w", encoding="utf-8", newline="")) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text(path: str, text: str) -> None:
    """Replace `path` with `text` (UTF-8) atomically."""
    with replacing(os.path.abspath(path), "w") as fh:
        fh.write(text)


def copy(src: str, dst: str) -> None:
    """Copy a file atomically (temporary file, fsync, rename)."""
    with open(src, "rb") as fi, replacing(os.path.abspath(dst)) as fo:
        shutil.copyfileobj(fi, fo, 1 << 20)


def sync_folder(folder: str) -> None:
    """Make a rename in `folder` durable (fsync of the directory; a no-op where that is not possible)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def remove_stale_temps(path: str) -> int:
    """Delete the temporary files (`.NAME.PID.HEX.tmp`) in the folder of `path` that a process killed mid-write
    left behind (its pid is gone) -> how many."""
    folder = os.path.dirname(os.path.abspath(path))
    removed = 0
    for name in os.listdir(folder):
        if not (name.startswith(".") and name.endswith(".tmp")) or name.count(".") < 4:
            continue
        pid = name.split(".")[-3]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            try:
                os.unlink(os.path.join(folder, name))
                removed += 1
            except OSError:
                pass
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (on Windows: assumed, as os.kill(pid, 0) would terminate it there)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True
