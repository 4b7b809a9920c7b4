"""One trial of benchmarks/faults.py in the normal suite: SIGKILL a `tudui train --save-every 1` process while a
checkpoint is being written; the newest checkpoint loads, --resume completes, no temporary file is left, and the
final weights equal an uninterrupted run's bit for bit. The 50-trial run is the benchmark."""
import os
import random
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import faults  # noqa: E402


def test_sigkill_during_a_checkpoint_write_then_resume_is_bit_exact(tmp_path):
    out = str(tmp_path)
    p = faults.tudui("train", *faults.TRAIN, "--out", out, "--name", "reference")
    faults.wait_first_checkpoint(p, os.path.join(out, "reference", "last.pt"))
    t = time.time()
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    window = os.stat(os.path.join(out, "reference", "last.pt")).st_mtime - t
    rec = faults.trial(0, "during-save", out, os.path.join(out, "reference", "last.pt"), random.Random(3),
                       window * 0.5)
    assert rec["problems"] == [], rec
    assert not rec["finished_before_kill"] and rec["killed_at"]["step"] >= 1
