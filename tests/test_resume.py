"""Exact resume: a CPU run stopped by a signal (mid-epoch or between epochs) and resumed ends with the very
same weights and metrics as the run left alone; SIGINT in a real `tudui train` process; extending a run."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

import tudui
from tudui import checkpoint as ckpt_io
from tudui.config import resolve
from tudui.engine.trainer import Trainer, TrainingInterrupted
from tudui.errors import ConfigError

# everything that carries state across steps: dropout (global RNG), augmentation, momentum, a warmup+cosine
# schedule, gradient accumulation with a short last group, EMA, lookahead and BatchNorm statistics
STATEFUL = dict(data="digits", epochs=2, batch_size=64, threads=1, seed=3, augment="basic", accumulate=2,
                warmup_epochs=0.5, scheduler="cosine", ema=0.9, ema_every=2, sampler="balanced",
                lookahead=0.9, lookahead_every=3,
                model_args={"dropout": 0.3, "norm": "batchnorm", "activation": "relu"})


@pytest.fixture(autouse=True)
def sigint_reaches_us():
    """These tests send SIGINT to this process. A suite started in the background inherits SIGINT ignored,
    and training leaves an ignored SIGINT ignored (see test_signals.py), so let it through for each test."""
    found = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, found)


def foreground():
    """preexec_fn for a child that must react to Ctrl-C even when this suite runs as a background job."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cfg(tmp_path, name, **kw):
    return resolve({**STATEFUL, "out": str(tmp_path), "name": name, **kw})


def without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def assert_same_run(a_dir, b_dir):
    a, b = ckpt_io.load(os.path.join(a_dir, "last.pt")), ckpt_io.load(os.path.join(b_dir, "last.pt"))
    for key in ("state_dict", "ema_state_dict", "lookahead_state_dict"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    for sa, sb in zip(a["train_state"]["optimizer"]["state"].values(), b["train_state"]["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"])
    assert without_time(a["train_state"]["history"]) == without_time(b["train_state"]["history"])
    rows = lambda d: without_time(json.loads(line) for line in open(os.path.join(d, "metrics.jsonl")))
    assert rows(a_dir) == rows(b_dir) == without_time(a["train_state"]["history"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    return Trainer(run_cfg(out, "ref"), progress=False).fit()


def interrupt_at(trainer, monkeypatch, batches=None, signum=signal.SIGINT, times=1, during_eval=False):
    """Send `signum` to this process from inside training, after `batches` train steps (or in evaluation)."""
    if during_eval:
        orig, calls = trainer.evaluate, [0]

        def evaluate(model=None):
            calls[0] += 1
            if calls[0] == 1:  # the EMA's evaluation; the raw weights' one follows
                os.kill(os.getpid(), signum)
            return orig(model)
        monkeypatch.setattr(trainer, "evaluate", evaluate)
        return
    orig_step, count = trainer.train_step, [0]

    def train_step(x, y, b):
        out = orig_step(x, y, b)
        count[0] += 1
        if count[0] == batches:
            for _ in range(times):
                os.kill(os.getpid(), signum)
        return out
    monkeypatch.setattr(trainer, "train_step", train_step)


def test_sigint_mid_epoch_then_resume_is_bit_exact(tmp_path, reference, monkeypatch, capsys):
    t = Trainer(run_cfg(tmp_path, "cut"), progress=False)
    interrupt_at(t, monkeypatch, batches=31)  # epoch 2, batch 8: in the middle of an accumulation pair's end
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(TrainingInterrupted) as ei:
        t.fit()
    assert ei.value.exit_code == 130
    last = str(tmp_path / "cut" / "last.pt")
    assert ei.value.command == f"tudui train --resume {last}" and "resume with: tudui train --resume" in \
        capsys.readouterr().err
    ck = ckpt_io.load(last)
    assert ck["epoch"] == 1 and ck["train_state"]["position"]["batch"] == 8 and ck["step"] == 12 + 4
    assert {s: signal.getsignal(s) for s in before} == before  # the handlers found are restored
    r = tudui.train(resume=last, progress=False)
    assert without_time(r.history) == without_time(reference.history)
    assert_same_run(reference.run_dir, r.run_dir)


def test_sigterm_between_epochs_then_resume_is_bit_exact(tmp_path, reference, monkeypatch):
    t = Trainer(run_cfg(tmp_path, "term"), progress=False)
    interrupt_at(t, monkeypatch, signum=signal.SIGTERM, during_eval=True)
    with pytest.raises(TrainingInterrupted) as ei:
        t.fit()
    assert ei.value.exit_code == 143
    ck = ckpt_io.load(tmp_path / "term" / "last.pt")
    assert ck["epoch"] == 1 and ck["train_state"]["position"]["batch"] == 0
    r = tudui.train(resume=str(tmp_path / "term"), progress=False)  # a run folder resumes from its last.pt
    assert_same_run(reference.run_dir, r.run_dir)


def test_second_signal_stops_at_once(tmp_path, monkeypatch):
    t = Trainer(run_cfg(tmp_path, "twice", epochs=1), progress=False)
    interrupt_at(t, monkeypatch, batches=3, times=2)
    with pytest.raises(TrainingInterrupted) as ei:
        t.fit()
    assert ei.value.checkpoint is None and ei.value.exit_code == 130
    assert not (tmp_path / "twice" / "last.pt").exists()


def test_resume_alone_finishes_and_larger_epochs_extends(tmp_path, reference):
    with pytest.raises(ConfigError, match="already finished all 2 epochs"):
        tudui.train(resume=reference.last_path, progress=False)
    with pytest.raises(ConfigError, match="'batch_size' cannot change"):
        tudui.train(resume=reference.last_path, batch_size=32, progress=False)
    import shutil
    shutil.copytree(reference.run_dir, tmp_path / "ext")
    r = tudui.train(resume=str(tmp_path / "ext" / "last.pt"), epochs=3, progress=False)
    assert [h["epoch"] for h in r.history] == [1, 2, 3]
    assert without_time(r.history[:2]) == without_time(reference.history)
    assert len(open(tmp_path / "ext" / "metrics.jsonl").readlines()) == 3
    assert ckpt_io.load(r.last_path)["config"]["epochs"] == 3


def test_cli_sigint_saves_loadable_last_and_resume_command_works(tmp_path):
    cmd = [sys.executable, "-m", "tudui", "train", "--out", str(tmp_path), "--name", "cli", "--epochs", "2",
           "--batch-size", "32", "--threads", "1", "--no-progress", "--model-arg", "dropout=0.2"]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, preexec_fn=foreground)
    err = []
    for line in p.stderr:
        err.append(line)
        if line.startswith("model:"):  # training starts now
            p.send_signal(signal.SIGINT)
    assert p.wait() == 130, "".join(err)
    err = "".join(err)
    resume_line = [ln for ln in err.splitlines() if ln.startswith("resume with: ")][-1]
    last = tmp_path / "cli" / "last.pt"
    ck = torch.load(last, weights_only=True)  # a plain, loadable checkpoint
    assert ck["epoch"] < 2 and set(ck["state_dict"]) == set(tudui.load(str(last)).model.state_dict())
    resume = resume_line[len("resume with: "):].split()
    assert resume[:3] == ["tudui", "train", "--resume"]
    from tudui.cli import main
    assert main(resume[1:] + ["--no-progress"]) == 0
    rows = [json.loads(line) for line in open(tmp_path / "cli" / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["val_acc"] > 0.5


def test_save_every_writes_mid_epoch_checkpoints_and_lr_is_logged_per_step(tmp_path, monkeypatch):
    t = Trainer(resolve({"data": "digits", "epochs": 1, "batch_size": 128, "threads": 1, "save_every": 5,
                         "out": str(tmp_path), "name": "se"}), progress=False)
    saved, orig = [], t.save

    def save(path, row):
        saved.append((os.path.basename(path), t.step, t.position["batch"]))
        orig(path, row)
    monkeypatch.setattr(t, "save", save)
    r = t.fit()
    n = len(t.data.train)  # 12 batches: steps 5 and 10 mid-epoch, then the epoch's end
    # an improving epoch's best.pt is a copy of its last.pt (serialized and hashed once), and still verifies
    assert saved == [("last.pt", 5, 5), ("last.pt", 10, 10), ("last.pt", n, 0)]
    assert (tmp_path / "se" / "best.pt").read_bytes() == (tmp_path / "se" / "last.pt").read_bytes()
    assert ckpt_io.load(str(tmp_path / "se" / "best.pt"), verify=True)["epoch"] == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ev = EventAccumulator(r.run_dir)
    ev.Reload()
    assert [e.step for e in ev.Scalars("train/lr")] == list(range(1, n + 1))


def test_muon_run_resumes_bit_exact(tmp_path, monkeypatch):
    kw = dict(optimizer="muon", muon_lr=0.01, muon_fixed_norm=True)
    ref = Trainer(run_cfg(tmp_path, "mref", **kw), progress=False).fit()
    t = Trainer(run_cfg(tmp_path, "mcut", **kw), progress=False)
    interrupt_at(t, monkeypatch, batches=27)  # in the second epoch
    with pytest.raises(TrainingInterrupted):
        t.fit()
    r = tudui.train(resume=str(tmp_path / "mcut" / "last.pt"), progress=False)
    assert_same_run(ref.run_dir, r.run_dir)
    assert ckpt_io.load(r.last_path)["train_state"]["optimizer"]["param_groups"][0]["muon"] is True


def test_config_transforms_run_resumes_bit_exact_mid_epoch(tmp_path, monkeypatch):
    """Random per-image transforms from a config file: each image's draw comes from (seed, epoch, batch,
    position), so a run cut mid-epoch and resumed (here with a loader worker) sees the same images."""
    tf = {"train": [{"name": "RandomCrop", "size": 8, "padding": 2}, "RandomHorizontalFlip",
                    {"name": "RandomRotation", "degrees": 10}, "ToTensor"],
          "eval": ["ToTensor"]}
    kw = dict(transforms=tf, augment="none")
    ref = Trainer(run_cfg(tmp_path, "tref", **kw), progress=False).fit()
    t = Trainer(run_cfg(tmp_path, "tcut", **kw), progress=False)
    assert t.data.train.kind == "stream (custom transforms)"
    interrupt_at(t, monkeypatch, batches=29)  # epoch 2, batch 6
    with pytest.raises(TrainingInterrupted):
        t.fit()
    r = tudui.train(resume=str(tmp_path / "tcut" / "last.pt"), workers=1, progress=False)
    assert_same_run(ref.run_dir, r.run_dir)
    before = torch.get_rng_state()
    next(iter(t.data.train.iterate(epoch=0)))  # drawing transformed images leaves the global generators alone
    assert torch.equal(torch.get_rng_state(), before)
