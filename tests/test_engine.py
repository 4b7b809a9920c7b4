"""Optimizers, schedules, losses, EMA, AMP/compile fallbacks, early stopping, NaN detection, lr-find and
the checkpoint file itself (atomic writes, prefixed keys)."""
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tudui
from tudui import checkpoint as ckpt_io
from tudui.config import resolve
from tudui.engine import optim
from tudui.engine.ema import EMA, Lookahead
from tudui.engine.runtime import amp_dtype
from tudui.errors import TuduiError

FAST = dict(data="digits", batch_size=128, threads=1, seed=0)


def cfg_of(tmp_path=None, **kw):
    return resolve({**FAST, **({"out": str(tmp_path)} if tmp_path else {}), **kw})


# ---------------------------------------------------------------- optimizers and schedules

def expected_factor(kind, s, spe, total, warm, gamma=0.1, step_size=2):
    """The schedules written out independently of optim.lr_factor."""
    w = (s + 1) / warm if warm and s < warm else 1.0
    if kind == "none":
        return w
    if kind == "step":
        return w * gamma ** ((s // spe) // step_size)
    if kind == "cosine":
        return w * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0, s - warm) / (total - warm))))
    if kind == "linear":
        return w * (1 - min(1.0, max(0, s - warm) / (total - warm)))
    if kind == "onecycle":  # triangular: 0.1 -> 1 over the warmup (or the first quarter), then down to 0
        up = warm or total // 4
        return 0.1 + 0.9 * s / up if s < up else (total - s) / (total - up)


@pytest.mark.parametrize("opt_name, cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                           ("adamw", torch.optim.AdamW)])
@pytest.mark.parametrize("sched", ["none", "step", "cosine", "linear", "onecycle"])
@pytest.mark.parametrize("warmup", [0.0, 1.0])
def test_lr_curve_matches_formula(opt_name, cls, sched, warmup):
    cfg = resolve({"optimizer": opt_name, "scheduler": sched, "lr": 0.1, "warmup_epochs": warmup,
                   "step_size": 2, "gamma": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 1e-3})
    model = nn.Linear(3, 2)
    opt = optim.build_optimizer(model, cfg)
    assert type(opt) is cls and opt.param_groups[0]["weight_decay"] == 1e-3
    if opt_name == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.8 and opt.param_groups[0]["nesterov"] is True
    spe, total = 10, 60
    sched_obj = optim.build_scheduler(opt, spe, total, cfg)
    for s in range(total):
        want = 0.1 * expected_factor(sched, s, spe, total, int(warmup * spe))
        assert opt.param_groups[0]["lr"] == pytest.approx(want, abs=1e-12), (sched, s)
        opt.step()
        sched_obj.step()


def test_step_schedule_is_the_courses_steplr_per_epoch():
    cfg = resolve({"scheduler": "step", "step_size": 2, "gamma": 0.5, "lr": 0.2})
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    ours = optim.build_optimizer(a, cfg)
    ref = torch.optim.SGD(b.parameters(), lr=0.2)
    s_ours = optim.build_scheduler(ours, 7, 7 * 6, cfg)
    s_ref = torch.optim.lr_scheduler.StepLR(ref, step_size=2, gamma=0.5)
    for epoch in range(6):
        for _ in range(7):  # ours steps every batch, the course's every epoch
            assert ours.param_groups[0]["lr"] == pytest.approx(ref.param_groups[0]["lr"])
            ours.step()
            s_ours.step()
        ref.step()
        s_ref.step()


def test_losses():
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    ce = optim.build_loss(resolve({"label_smoothing": 0.1}), 4)
    assert torch.allclose(ce(logits, y), F.cross_entropy(logits, y, label_smoothing=0.1))
    onehot = F.one_hot(y, 4).float()
    p = logits.softmax(1)
    l1 = optim.build_loss(resolve({"loss": "l1"}), 4)(logits, y)
    mse = optim.build_loss(resolve({"loss": "mse"}), 4)(logits, y)
    assert torch.allclose(l1, (p - onehot).abs().sum(1).mean())
    assert torch.allclose(mse, ((p - onehot) ** 2).sum(1).mean())
    w = torch.tensor([1.0, 2.0, 3.0, 4.0])
    weighted = optim.build_loss(resolve({}), 4, w)(logits, y)
    assert torch.allclose(weighted, F.cross_entropy(logits, y, weight=w))


# ---------------------------------------------------------------- EMA, AMP, compile

def test_ema_follows_its_formula():
    model = nn.Linear(2, 1, bias=False)
    ema = EMA(model, decay=0.9, every=2)
    w0 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # step 1 of every 2: no update
    assert torch.equal(ema.module.weight, w0)
    ema.update(model)  # first average: decay capped at (1 + 0) / 10
    d = min(0.9 ** 2, 1 / 10)
    assert torch.allclose(ema.module.weight, d * w0 + (1 - d) * 1.0)
    assert ema.counters() == {"steps": 2, "updates": 1}
    assert not ema.module.training and not ema.module.weight.requires_grad


def test_lookahead_follows_its_formula_and_ends_on_the_average():
    model = nn.Linear(2, 1, bias=False)
    la = Lookahead(model, decay=0.9, every=2)
    w0 = model.weight.detach().clone()
    assert la.decay_at(10, 20) == pytest.approx(min(0.81 * 0.5 ** 3, 1 / 10))  # cubic ramp, capped early on
    la.updates = 50
    assert la.decay_at(20, 20) == pytest.approx(0.81)  # the full decay at the end of a long run
    la.updates = 0
    with torch.no_grad():
        model.weight.fill_(1.0)
    la.update(model, step=1, total=5)  # not a multiple of every: nothing happens
    assert torch.equal(model.weight, torch.ones_like(w0))
    la.update(model, step=2, total=5)
    d = min(0.81 * (2 / 5) ** 3, 1 / 10)
    slow = d * w0 + (1 - d) * 1.0
    assert torch.allclose(model.weight, slow) and torch.allclose(la.slow["weight"], slow)  # weights = slow
    with torch.no_grad():
        model.weight.fill_(3.0)
    la.update(model, step=5, total=5)  # the last step averages even off the every-N grid
    d = min(0.81, 2 / 11)
    assert torch.allclose(model.weight, d * slow + (1 - d) * 3.0) and la.updates == 2


def test_amp_falls_back_to_fp32_with_a_notice(capsys):
    assert amp_dtype("none", torch.device("cpu")) is None
    assert amp_dtype("fp16", torch.device("cpu")) is None
    assert "fp16 is not supported" in capsys.readouterr().err
    got = amp_dtype("bf16", torch.device("cpu"))
    from tudui.engine.runtime import _cpu_bf16
    if _cpu_bf16():
        assert got is torch.bfloat16
    else:
        assert got is None and "training in fp32" in capsys.readouterr().err


def test_compile_failure_falls_back(tmp_path, monkeypatch, capsys):
    def broken(model):
        def run(x):
            raise RuntimeError("no compiler in this test")
        return run
    monkeypatch.setattr(torch, "compile", broken)
    r = tudui.train(cfg=cfg_of(tmp_path, epochs=1, compile=True, ema=0.9), progress=False)
    assert "torch.compile failed (no compiler in this test)" in capsys.readouterr().err
    assert r.final["val_acc"] > 0.1
    ck = ckpt_io.load(r.last_path)
    assert set(ck["ema_state_dict"]) == set(ck["state_dict"])  # the EMA is saved alongside
    assert "raw_val_acc" in r.final  # both weights evaluated
    clf = tudui.load(r.last_path)  # ema > 0: the EMA weights are the ones used
    assert torch.equal(clf.model.state_dict()["model.0.weight"], ck["ema_state_dict"]["model.0.weight"])
    assert not any(k.startswith("_orig_mod.") for k in ck["state_dict"])


# ---------------------------------------------------------------- early stopping, NaN

def test_early_stopping_stops_after_patience(tmp_path):
    # nothing improves val_acc by a full 1.0, so epoch 1 stays best and epochs 2, 3 are the two bad ones
    r = tudui.train(cfg=cfg_of(tmp_path, epochs=6, patience=2, min_delta=1.0), progress=False)
    assert r.stopped_early and [h["epoch"] for h in r.history] == [1, 2, 3]
    assert ckpt_io.load(r.best_path)["epoch"] == 1 and ckpt_io.load(r.last_path)["epoch"] == 3
    from tudui.engine.state import EarlyStopping
    early = EarlyStopping("val_loss", min_delta=0.1)  # min_delta on a loss: must fall by more than it
    early.best = 1.0
    assert not early.improved({"val_loss": 0.95}) and early.improved({"val_loss": 0.85})


class NaNAfter(nn.Module):
    """The course's kind of network that starts returning NaN after `n` training forward passes."""

    def __init__(self, n):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        self.n, self.calls = n, 0

    def forward(self, x):
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls > self.n:
                return out * float("nan")
        return out


def test_nan_loss_stops_and_keeps_checkpoints(tmp_path, capsys):
    cfg = cfg_of(tmp_path, epochs=3, name="nan")
    per_epoch = math.ceil(1438 / 128)
    with pytest.raises(TuduiError, match=rf"the loss became nan at epoch 2, step {per_epoch + 3}"):
        tudui.train(model=NaNAfter(per_epoch + 2), cfg=cfg, progress=False)
    last = ckpt_io.load(tmp_path / "nan" / "last.pt")
    best = ckpt_io.load(tmp_path / "nan" / "best.pt")
    assert last["epoch"] == best["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    # the CLI says it in one line and exits 2
    from tudui.cli import main
    assert main(["train", "--epochs", "1", "--out", str(tmp_path), "--lr", "1e30", "--optimizer", "sgd",
                 "--momentum", "0", "--threads", "1", "--no-progress"]) == 2
    assert "the loss became" in capsys.readouterr().err


# ---------------------------------------------------------------- lr-find

def test_lr_find_cli_writes_plot_and_suggests(tmp_path, capsys, monkeypatch):
    from tudui.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["lr-find", "--steps", "30", "--start-lr", "1e-4", "--end-lr", "100", "--threads", "1",
                 "--batch-size", "64", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "suggested lr:" in out and "lr_find.png" in out
    png = tmp_path / "lr_find.png"
    from PIL import Image
    assert Image.open(png).format == "PNG"
    assert main(["lr-find", "--steps", "30", "--start-lr", "1e-4", "--end-lr", "100", "--threads", "1",
                 "--batch-size", "64", "--no-progress", "--json", "--out", str(tmp_path / "sub")]) == 0
    import json
    r = json.loads(capsys.readouterr().out)
    assert os.path.isfile(r["plot"]) and r["plot"].startswith(str(tmp_path / "sub"))
    lrs = r["lrs"]
    assert lrs[0] == pytest.approx(1e-4) and all(b > a for a, b in zip(lrs, lrs[1:]))
    assert r["stopped"] in ("diverged", "not finite")  # lr 100 blows the loss up before the end
    assert lrs[0] <= r["suggested_lr"] <= r["min_loss_lr"]


def test_suggest_picks_steepest_descent():
    from tudui.engine.lr_find import suggest
    lrs = [10 ** (-6 + i * 0.25) for i in range(25)]  # 1e-6 .. 1
    losses = [2.0] * 8 + [2.0 - 0.02 * k ** 2 for k in range(1, 9)] + [0.7 + 0.01 * k for k in range(9)]
    s, m = suggest(lrs, losses)
    lo = losses.index(min(losses))
    assert m == pytest.approx(lrs[lo] / 10)
    assert s <= m


# ---------------------------------------------------------------- checkpoint files

def test_prefixed_state_dicts_load(tmp_path, digits_run):
    ck = ckpt_io.load(digits_run.best_path)
    for prefix in ("module.", "_orig_mod.", "module._orig_mod."):
        ck2 = {k: v for k, v in ck.items() if k != "path"}
        ck2["state_dict"] = {prefix + k: v for k, v in ck["state_dict"].items()}
        ck2["sha256"] = ckpt_io.content_hash(ck2)  # as a file written with those keys would record
        p = tmp_path / "prefixed.pt"
        ckpt_io.atomic_torch_save(ck2, p)
        clf = tudui.load(str(p))
        assert torch.equal(clf.model.state_dict()["model.0.weight"], ck["state_dict"]["model.0.weight"])


WRITER = """
import sys, torch
from tudui.checkpoint import atomic_torch_save
i = 0
while True:
    atomic_torch_save({"i": i, "w": torch.full((4_000_000,), float(i))}, sys.argv[1])
    print(i, flush=True)
    i += 1
"""


def test_atomic_write_survives_sigkill(tmp_path):
    path = tmp_path / "ck.pt"
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        done = int(p.stdout.readline())  # one full 16 MB file exists
        deadline = time.time() + 60
        while time.time() < deadline:  # freeze the writer while its next temporary file is half written
            tmps = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
            if tmps and os.path.getsize(tmp_path / tmps[0]) > 0:
                p.send_signal(signal.SIGSTOP)
                if os.path.exists(tmp_path / tmps[0]):
                    break
                p.send_signal(signal.SIGCONT)
        else:
            pytest.fail("never caught the writer mid-save")
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert any(f.endswith(".tmp") for f in os.listdir(tmp_path))  # killed in the middle of a save
    ck = torch.load(path, weights_only=True)
    assert ck["i"] >= done and torch.equal(ck["w"], torch.full((4_000_000,), float(ck["i"])))
