"""How `tudui train` treats signals it inherits: a SIGINT ignored at start (a shell's background job, nohup)
stays ignored, SIGTERM still saves a resumable last.pt, and the handlers found are put back after fit()."""
import os
import signal
import subprocess
import sys
import time

import pytest

import tudui
from tudui import checkpoint as ckpt_io
from tudui.config import resolve
from tudui.engine.trainer import Trainer, TrainingInterrupted


def ignore_sigint():
    """preexec_fn: start the child as a non-interactive shell starts a background job."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def train_cmd(tmp_path, name, epochs):
    return [sys.executable, "-m", "tudui", "train", "--out", str(tmp_path), "--name", name, "--epochs", str(epochs),
            "--batch-size", "32", "--threads", "1", "--no-progress"]


def start(cmd, cwd):
    """A child with SIGINT ignored, no standard input, in another working directory."""
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            preexec_fn=ignore_sigint, cwd=cwd)


def lines_until_training(p) -> list:
    err = []
    for line in p.stderr:
        err.append(line)
        if line.startswith("model:"):  # the handlers are in place from here on
            return err
    return err


def test_background_run_leaves_sigint_ignored_and_finishes(tmp_path):
    p = start(train_cmd(tmp_path, "bg", epochs=2), cwd=tmp_path)
    err = lines_until_training(p)
    for _ in range(3):  # Ctrl-C at a terminal does not reach a background job; a stray SIGINT changes nothing
        p.send_signal(signal.SIGINT)
        time.sleep(0.05)
    rest = p.stderr.read()
    assert p.wait(timeout=120) == 0, "".join(err) + rest
    text = "".join(err) + rest
    assert "SIGINT is ignored" in text and "kill -TERM" in text and "stopped in epoch" not in text
    assert ckpt_io.load(tmp_path / "bg" / "last.pt")["epoch"] == 2


def test_background_run_still_stops_on_sigterm_and_resumes(tmp_path):
    p = start(train_cmd(tmp_path, "term", epochs=3), cwd=tmp_path)
    err = lines_until_training(p)
    p.send_signal(signal.SIGTERM)
    rest = p.stderr.read()
    assert p.wait(timeout=120) == 143, "".join(err) + rest
    assert "SIGTERM: finishing this step and saving last.pt" in rest and "resume with: tudui train --resume" in rest
    last = tmp_path / "term" / "last.pt"
    assert ckpt_io.load(last)["epoch"] < 3
    r = tudui.train(resume=str(last), progress=False)
    assert [h["epoch"] for h in r.history] == [1, 2, 3]


def test_fit_keeps_an_ignored_sigint_and_restores_what_it_found(tmp_path):
    found = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cfg = resolve({"data": "digits", "epochs": 1, "batch_size": 128, "threads": 1, "out": str(tmp_path),
                       "name": "ign"})
        t = Trainer(cfg, progress=False)
        orig, seen = t.train_step, []

        def train_step(x, y, b):
            seen.append(signal.getsignal(signal.SIGINT))
            if len(seen) == 2:
                os.kill(os.getpid(), signal.SIGINT)  # ignored: the run goes on
            return orig(x, y, b)
        t.train_step = train_step
        t.fit()
        assert set(seen) == {signal.SIG_IGN} and t.stop_signal is None
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, found)


def test_fit_takes_a_handled_sigint_and_restores_it(tmp_path):
    def mine(signum, frame):
        raise AssertionError("training should have taken SIGINT over")
    found = signal.signal(signal.SIGINT, mine)
    try:
        cfg = resolve({"data": "digits", "epochs": 2, "batch_size": 128, "threads": 1, "out": str(tmp_path),
                       "name": "own"})
        t = Trainer(cfg, progress=False)
        orig, count = t.train_step, [0]

        def train_step(x, y, b):
            count[0] += 1
            if count[0] == 3:
                os.kill(os.getpid(), signal.SIGINT)
            return orig(x, y, b)
        t.train_step = train_step
        with pytest.raises(TrainingInterrupted) as ei:
            t.fit()
        assert ei.value.exit_code == 130
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, found)
