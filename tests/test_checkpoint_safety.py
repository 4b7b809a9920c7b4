"""Checkpoints under attack and under faults: code-carrying pickles never run (zip and legacy formats, nested in
the optimizer state, in extra entries, in the config) unless --unsafe-load; a changed file is refused unless
--no-verify; a full disk or an unwritable folder keeps the previous checkpoint and ends with one line naming
the folder; saved files get the umask's permissions; an existing run folder is not reused."""
import errno
import os
import shutil
import stat

import pytest
import torch

import tudui
from tudui import checkpoint as ckpt_io
from tudui.cli import main
from tudui.errors import CheckpointError, ConfigError


class Payload:
    """Unpickling this calls open(marker, 'w'): a marker file proves that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def good(digits_run):
    return digits_run.last_path


def _poison(ck: dict, where: str, payload) -> dict:
    ck = dict(ck)
    ck.pop("path", None)
    if where == "optimizer":
        ts = dict(ck["train_state"])
        ts["optimizer"] = dict(ts["optimizer"], evil=payload)
        ck["train_state"] = ts
    elif where == "extra":
        ck["ema_state_dict"] = {"w": payload}
    elif where == "config":
        ck["config"] = dict(ck["config"], lr=payload)
    else:
        ck["state_dict"] = dict(ck["state_dict"], evil=payload)
    return ck


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("where", ["state_dict", "optimizer", "extra", "config"])
def test_code_in_a_checkpoint_never_runs(tmp_path, good, where, legacy, capsys):
    marker = tmp_path / "ran"
    ck = _poison(torch.load(good, weights_only=True), where, Payload(marker))
    path = tmp_path / "evil.pt"
    torch.save(ck, path, _use_new_zipfile_serialization=not legacy)
    assert not marker.exists()
    for attempt in (lambda: ckpt_io.load(path), lambda: ckpt_io.load(path, verify=False),
                    lambda: tudui.load(str(path)), lambda: tudui.predict(str(path), [])):
        with pytest.raises(CheckpointError, match="never run"):
            attempt()
    for argv in (["predict", str(path), str(path)], ["eval", str(path)], ["predict", "--no-verify", str(path), "x"],
                 ["train", "--resume", str(path), "--no-verify"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "never run" in err
    assert not marker.exists(), "unpickling ran code"
    # only the explicit, documented flag runs it, with a warning first
    try:
        main(["eval", "--unsafe-load", "--no-verify", str(path)])  # what happens after unpickling does not matter
    except Exception:
        pass
    assert "--unsafe-load" in capsys.readouterr().err and marker.exists()


def test_changed_bytes_are_refused_and_no_verify_loads(tmp_path, good, capsys):
    path = tmp_path / "changed.pt"
    shutil.copyfile(good, path)
    ck = ckpt_io.load(path)
    name, w = next((k, v) for k, v in ck["state_dict"].items() if v.dtype == torch.float32 and v.numel() > 4)
    raw = bytearray(path.read_bytes())
    needle = w.reshape(-1)[:4].numpy().tobytes()
    at = raw.find(needle)
    assert at > 0
    raw[at] ^= 0x40  # one bit of one weight, as a bad disk or a tampering would
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="changed after it was saved.*--no-verify"):
        ckpt_io.load(path)
    assert main(["predict", str(path), str(path)]) == 2
    assert "changed after it was saved" in capsys.readouterr().err
    changed = ckpt_io.load(path, verify=False)
    assert not torch.equal(changed["state_dict"][name], w)
    assert tudui.load(str(path), verify=False).model is not None


def test_checkpoint_without_hash_loads_with_a_notice(tmp_path, good, capsys):
    ck = torch.load(good, weights_only=True)
    del ck["sha256"]
    torch.save(ck, tmp_path / "old.pt")
    assert ckpt_io.load(tmp_path / "old.pt")["epoch"] == ck["epoch"]
    assert "records no SHA-256" in capsys.readouterr().err


def _save_small(path):
    ckpt_io.save(str(path), model_state={"w": torch.arange(6.0)}, model_spec={"name": "x"}, classes=["a", "b"],
                 preprocess={}, config={}, epoch=1)


def test_saved_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        _save_small(tmp_path / "a.pt")
        assert stat.S_IMODE(os.stat(tmp_path / "a.pt").st_mode) == 0o644
        os.umask(0o002)
        _save_small(tmp_path / "b.pt")
        assert stat.S_IMODE(os.stat(tmp_path / "b.pt").st_mode) == 0o664
    finally:
        os.umask(old)


def _failing_write(monkeypatch, err, after=4096):
    """Every file write fails with `err` once `after` bytes went through (what a full disk looks like)."""
    real = os.fdopen

    class Full:
        def __init__(self, fh):
            self.fh, self.n = fh, 0

        def write(self, b):
            self.n += len(b)
            if self.n > after:
                raise OSError(err, os.strerror(err))
            return self.fh.write(b)

        def __getattr__(self, k):
            return getattr(self.fh, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return self.fh.__exit__(*a)
    monkeypatch.setattr(os, "fdopen", lambda *a, **k: Full(real(*a, **k)))


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_full_disk_or_read_only_folder_keeps_the_previous_checkpoint(tmp_path, monkeypatch, err):
    path = tmp_path / "last.pt"
    _save_small(path)
    before = path.read_bytes()
    if err == errno.ENOSPC:
        _failing_write(monkeypatch, err)
    else:  # tests run as root, whom chmod does not stop: refuse creating files in the folder instead
        real_open = os.open
        monkeypatch.setattr(os, "open", lambda p, flags, *a: (_ for _ in ()).throw(OSError(err, os.strerror(err)))
                            if str(p).startswith(str(tmp_path)) and flags & os.O_CREAT else real_open(p, flags, *a))
    with pytest.raises(CheckpointError) as e:
        ckpt_io.save(str(path), model_state={"w": torch.zeros(100000)}, model_spec={"name": "x"}, classes=["a"],
                     preprocess={}, config={}, epoch=2)
    msg = str(e.value)
    assert str(tmp_path) in msg and "\n" not in msg and "previous checkpoint there is kept" in msg
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["last.pt"]
    assert ckpt_io.load(path)["epoch"] == 1


def test_disk_full_during_training_ends_with_one_line(tmp_path, monkeypatch, capsys):
    argv = ["train", "--epochs", "2", "--out", str(tmp_path), "--name", "r", "--threads", "1", "--no-progress"]
    real_save = ckpt_io.atomic_torch_save
    calls = []

    def save(obj, path):
        calls.append(path)
        if len(calls) > 1:  # the first last.pt is written; the disk fills up afterwards
            _failing_write(monkeypatch, errno.ENOSPC)
        return real_save(obj, path)
    monkeypatch.setattr(ckpt_io, "atomic_torch_save", save)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("tudui train: error: cannot save") and str(tmp_path / "r") in err and "disk is full" in err
    monkeypatch.undo()
    assert ckpt_io.load(tmp_path / "r" / "last.pt")["epoch"] == 1
    assert not [n for n in os.listdir(tmp_path / "r") if n.endswith(".tmp")]


def test_existing_run_folder_is_not_overwritten(tmp_path, capsys):
    argv = ["train", "--epochs", "1", "--out", str(tmp_path), "--name", "r", "--threads", "1", "--no-progress"]
    assert main(argv) == 0
    before = (tmp_path / "r" / "last.pt").read_bytes()
    capsys.readouterr()
    assert main(argv + ["--seed", "5"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--resume" in err and err.count("\n") == 1
    assert (tmp_path / "r" / "last.pt").read_bytes() == before
    with pytest.raises(ConfigError):
        tudui.train("digits", epochs=1, out=str(tmp_path), name="r", progress=False)


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / f".last.pt.{dead}.abcd1234.tmp").write_bytes(b"torn")
    _save_small(tmp_path / "last.pt")
    assert os.listdir(tmp_path) == ["last.pt"]


def test_report_export_and_serve_refuse_a_changed_checkpoint_unless_no_verify(tmp_path, good, capsys, monkeypatch):
    path = tmp_path / "changed.pt"
    shutil.copyfile(good, path)
    ck = ckpt_io.load(path)
    w = next(v for v in ck["state_dict"].values() if v.dtype == torch.float32 and v.numel() > 4)
    raw = bytearray(path.read_bytes())
    raw[raw.find(w.reshape(-1)[:4].numpy().tobytes())] ^= 0x40
    path.write_bytes(bytes(raw))
    runs = {"report": ["report", str(path), "--no-cam", "--top", "2", "--out", str(tmp_path / "r.html")],
            "export": ["export", str(path), "--format", "torchscript", "--out", str(tmp_path / "m.torchscript.pt")],
            "serve": ["serve", str(path), "--port", "0"]}
    for name, argv in runs.items():
        assert main(argv) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "changed after it was saved" in err, name
    for name in ("report", "export"):
        assert main(runs[name][:1] + ["--no-verify"] + runs[name][1:]) == 0, name
    assert (tmp_path / "r.html").exists() and (tmp_path / "m.torchscript.pt").exists()
    import uvicorn
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app.state.model))
    assert main(["serve", "--no-verify", str(path), "--port", "0"]) == 0
    assert served and served[0].classes == tudui.load(str(good)).classes
