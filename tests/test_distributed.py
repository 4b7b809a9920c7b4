"""Data-parallel training under torchrun: 2 CPU processes over gloo on 127.0.0.1 (a free port per launch).

Ranks agree after every step; 2 x B/2 matches 1 x B; every image once per epoch across ranks, in a new order
each epoch; rank 0 alone writes; the checkpoint loads strictly into a plain model; a stopped job saves last.pt
once and resumes bit-exact; a failing rank ends the job quickly."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import tudui
from tudui import checkpoint as ckpt_io
from tudui.config import resolve
from tudui.data.loader import BatchLoader
from tudui.engine.trainer import Trainer
from tudui.errors import ConfigError

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_cmd(*args, nproc=2):
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--master-addr=127.0.0.1",
            f"--master-port={free_port()}", *args]


def env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))


def torchrun(*args, timeout=120):
    t0 = time.monotonic()
    p = subprocess.run(torchrun_cmd(*args), capture_output=True, text=True, timeout=timeout, env=env())
    return p, time.monotonic() - t0


def without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


# ---- what needs no second process ----

def test_shards_cover_each_global_batch_once():
    for n, bs, world, shuffle in ((10, 4, 3, False), (1438, 64, 2, True), (7, 8, 2, False), (101, 10, 4, True)):
        parts = []
        for r in range(world):
            ld = BatchLoader(targets=torch.zeros(n, dtype=torch.long), batch_size=bs, pre={"mean": [0], "std": [1]},
                             device="cpu", shuffle=shuffle, seed=5)
            ld.shard(r, world)
            parts.append(ld.batch_indices(3))
        whole = ld.order(3)
        for b in range(len(ld)):
            joined = torch.cat([p[b] for p in parts])  # rank 0's part, then rank 1's, ...: the global batch
            assert torch.equal(joined, whole[b * bs:(b + 1) * bs])
            if shuffle:  # training: every rank gets at least 2 images of every batch
                assert min(len(p[b]) for p in parts) >= 2
        if not shuffle:  # evaluation: every image exactly once
            assert sorted(torch.cat([t for p in parts for t in p]).tolist()) == list(range(n))


def test_sync_bn_refused_on_cpu_and_uneven_global_batch(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="--sync-bn needs CUDA"):
        tudui.train("digits", sync_bn=True, device="cpu", out=str(tmp_path), progress=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    for k, v in (("RANK", "0"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "1")):
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match="global batch and must split evenly over 2 processes"):
        tudui.train("digits", batch_size=63, device="cpu", out=str(tmp_path), progress=False)
    assert "gloo" in tudui.env_info()["distributed_backends"]


def test_loss_sum_kept_on_the_device_matches_the_float_one_and_reports_the_first_nonfinite_loss():
    """The GPU's way (lazy: no host sync per step) run on the CPU: the same sum bit for bit, the same error."""
    from tudui.engine.runtime import LossSum
    from tudui.errors import TuduiError
    g = torch.Generator().manual_seed(0)
    losses = [torch.rand((), generator=g) * 3 for _ in range(50)]
    eager, lazy = LossSum(torch.device("cpu"), lazy=False), LossSum(torch.device("cpu"), lazy=True)
    for s in (eager, lazy):
        s.start(1.25)
        for i, v in enumerate(losses):
            s.check_step(v, 0, i)
            s.add(v, 7 + i % 3)
    assert lazy.total() == eager.total()
    lazy.check_step(torch.tensor(0.5), 1, 60)
    lazy.check_step(torch.tensor(float("nan")), 1, 61)
    lazy.check_step(torch.tensor(float("inf")), 1, 62)
    with pytest.raises(TuduiError, match="the loss became nan at epoch 2, step 62"):
        lazy.total()
    with pytest.raises(TuduiError, match="the loss became inf at epoch 1, step 4"):
        eager.check_step(torch.tensor(float("inf")), 0, 3)


# ---- 2 processes ----

PROBE_CFG = dict(data="digits", epochs=2, batch_size=64, augment="none", threads=1, seed=0)


def test_ranks_agree_match_one_process_and_share_every_epoch(tmp_path):
    cfg = dict(PROBE_CFG, out=str(tmp_path / "runs"), name="two")
    p, _ = torchrun(str(HERE / "ddp_probe.py"), str(tmp_path), "record", json.dumps(cfg))
    assert p.returncode == 0, p.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    # parameters identical across ranks after every one of the 2 x 23 optimizer steps
    assert len(r0["hashes"]) == 46 and r0["hashes"] == r1["hashes"]
    w0, w1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    # every training image once per epoch across the ranks, in a different order each epoch
    orders = []
    for epoch in (0, 1):
        per_rank = [[i for e, b, idx in r["batches"] if e == epoch for i in idx] for r in (r0, r1)]
        assert per_rank[0] and per_rank[1] and not set(per_rank[0]) & set(per_rank[1])
        assert sorted(per_rank[0] + per_rank[1]) == list(range(1438))
        orders.append(per_rank[0])
    assert orders[0] != orders[1]
    # 1 process x 64 against 2 x 32: the same weights (a model without batch norm, no augmentation)
    single = Trainer(resolve(dict(PROBE_CFG, out=str(tmp_path / "runs"), name="one")), progress=False)
    res = single.fit()
    sd = single.model.state_dict()
    assert max((sd[k] - w0[k]).abs().max().item() for k in sd) < 1e-5
    # evaluation counts every held-out image once: the same metrics as the single process
    two = [json.loads(line) for line in open(tmp_path / "runs" / "two" / "metrics.jsonl")]
    assert [r["val_acc"] for r in two] == [r["val_acc"] for r in res.history]
    assert two[-1]["val_loss"] == pytest.approx(res.history[-1]["val_loss"], abs=1e-5)
    # rank 0 alone writes: one run folder, the files a single process writes, event files of one process only
    # (their names end in .<pid>.<n>), one line per epoch
    assert sorted(os.listdir(tmp_path / "runs")) == ["one", "two"]
    files, alone = (os.listdir(tmp_path / "runs" / d) for d in ("two", "one"))
    plain = lambda names: sorted(f for f in names if not f.startswith("events.out"))
    assert plain(files) == plain(alone) and {"best.pt", "last.pt", "metrics.jsonl"} <= set(files)
    assert len({f.split(".")[-2] for f in files if f.startswith("events.out")}) == 1 and len(two) == 2
    # the checkpoint: no `module.` prefix, loads strictly into a plain model
    ck = ckpt_io.load(tmp_path / "runs" / "two" / "best.pt")
    assert not any(k.startswith("module.") for k in ck["state_dict"])
    plain = tudui.models.create(ck["model"]["name"], ck["model"]["num_classes"], ck["model"]["in_channels"],
                                ck["model"]["img_size"], **ck["model"].get("args", {}))
    plain.load_state_dict(ck["state_dict"], strict=True)
    assert tudui.load(tmp_path / "runs" / "two" / "best.pt").classes == res.classes


TRAIN = ["-m", "tudui", "train", "--epochs", "3", "--batch-size", "64", "--threads", "1", "--no-progress",
         "--model-arg", "dropout=0.2", "--accumulate", "2", "--seed", "1"]


def test_sigterm_saves_once_and_resume_is_bit_exact_also_with_one_process(tmp_path):
    out = str(tmp_path / "runs")
    ref, _ = torchrun(*TRAIN, "--out", out, "--name", "ref")
    assert ref.returncode == 0, ref.stderr[-3000:]
    p = subprocess.Popen(torchrun_cmd(*TRAIN, "--out", out, "--name", "cut"), stderr=subprocess.PIPE, text=True,
                         env=env())
    err = []
    for line in p.stderr:
        err.append(line)
        if line.startswith("epoch 1/3"):
            p.send_signal(signal.SIGTERM)  # to torchrun, which passes it on to both processes
    p.wait(timeout=60)
    err = "".join(err)
    assert p.returncode != 0 and err.count("saved ") == 1 and err.count("SIGTERM: finishing") == 1, err[-3000:]
    assert "resume with: torchrun --nproc-per-node=2 -m tudui train --resume" in err
    last = tmp_path / "runs" / "cut" / "last.pt"
    ck = ckpt_io.load(last)
    assert ck["epoch"] >= 1 and ck["train_state"]["rng_ranks"] and len(ck["train_state"]["rng_ranks"]) == 2
    shutil.copytree(tmp_path / "runs" / "cut", tmp_path / "alone")
    res, _ = torchrun("-m", "tudui", "train", "--resume", str(last), "--no-progress")
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = ckpt_io.load(tmp_path / "runs" / "ref" / "last.pt"), ckpt_io.load(last)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert without_time(a["train_state"]["history"]) == without_time(b["train_state"]["history"])
    # the same run continued by one process (same global batch): it finishes, with every epoch logged
    r = tudui.train(resume=str(tmp_path / "alone" / "last.pt"), progress=False)
    assert [h["epoch"] for h in r.history] == [1, 2, 3]
    assert without_time(r.history[:1]) == without_time(a["train_state"]["history"][:1])
    assert abs(r.history[-1]["val_loss"] - a["metrics"]["val_loss"]) < 0.05


def test_a_failing_rank_ends_the_job_quickly_with_its_error_once(tmp_path):
    cfg = dict(PROBE_CFG, epochs=3, out=str(tmp_path / "runs"), name="fail")
    p, seconds = torchrun(str(HERE / "ddp_probe.py"), str(tmp_path), "fail", json.dumps(cfg), timeout=90)
    out = p.stdout + p.stderr
    assert p.returncode != 0 and seconds < 60, out[-3000:]
    assert out.count("RuntimeError: probe: rank 1 failed on purpose") == 1, out[-3000:]
    assert not (tmp_path / "rank0.json").exists()
