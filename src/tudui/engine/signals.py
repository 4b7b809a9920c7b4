"""Stop signals during fit(): the first SIGINT/SIGTERM asks the run to finish its step, save last.pt and
stop; a second one stops at once. Handlers are installed only from the main thread and restored after."""
from __future__ import annotations

import os
import shlex
import signal
import threading
import time
from typing import Optional

from ..console import say


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped fit(). `checkpoint` (last.pt, or None after a second signal) resumes with
    `command`; `exit_code` is 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, signum: int, checkpoint: Optional[str] = None, launcher: str = ""):
        self.exit_code = 128 + int(signum)
        self.checkpoint = checkpoint
        self.command = f"{launcher}tudui train --resume {shlex.quote(checkpoint)}" if checkpoint else None
        super().__init__(f"resume with: {self.command}" if checkpoint else "stopped at once")


class StopSignals:
    """`signum` is the first stop signal received while installed (None until then).

    repeat_grace: seconds after the first signal during which another one counts as the same request. Under
    torchrun a Ctrl-C reaches every process twice, from the terminal and forwarded by torchrun."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, repeat_grace: float = 0.0, announce: bool = True):
        self.signum: Optional[int] = None
        self.repeat_grace, self.announce = repeat_grace, announce
        self._at = 0.0
        self._old: dict = {}

    def _on_signal(self, signum, frame) -> None:
        if self.signum is not None:
            if time.monotonic() - self._at < self.repeat_grace:
                return
            raise TrainingInterrupted(signum)
        self.signum, self._at = signum, time.monotonic()
        if not self.announce:
            return
        # os.write, not print: a handler may run in the middle of another write to stderr
        os.write(2, f"\n{signal.Signals(signum).name}: finishing this step and saving last.pt "
                    f"(press Ctrl-C again to stop at once)\n".encode())

    def install(self) -> None:
        """Take over SIGINT and SIGTERM for the run (the handlers found are restored by `restore`).

        A SIGINT that was ignored when training started (a background job of a shell, `nohup`, some
        launchers) stays ignored, as Unix programs conventionally leave it: whoever started the run chose
        that Ctrl-C at the terminal must not reach it. SIGTERM is always handled: it saves last.pt and stops."""
        if threading.current_thread() is not threading.main_thread():
            return
        for s in self.SIGNALS:
            if s == signal.SIGINT and signal.getsignal(s) == signal.SIG_IGN:
                if self.announce:
                    say(f"notice: SIGINT is ignored (started in the background or with nohup), so Ctrl-C will not "
                        f"stop this run; `kill -TERM {os.getpid()}` saves last.pt and stops it")
                continue
            self._old[s] = signal.signal(s, self._on_signal)

    def agreed(self, dist, device, check: bool = True) -> Optional[int]:
        """The stop signal every process acts on, or None: under torchrun a signal to any process stops them
        all at the same step (the largest signal number received wins). check=False: no collective this time."""
        if not dist.enabled:
            return self.signum
        if not check:
            return None
        agreed = dist.max_int(self.signum or 0, device)
        if agreed and self.signum is None:
            self.signum = agreed
        return agreed or None

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}
