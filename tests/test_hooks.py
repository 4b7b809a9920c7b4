"""Issue 22's behaviour: engine callbacks (a clean stop from on_epoch_end, on_fit_end's status), `train
--report` on an interrupted run, the stream loader's remembered readability pass, the one console, atomic files."""
import json
import os
import signal

import pytest
from PIL import Image

import tudui
from tudui import console, fileio
from tudui.config import resolve
from tudui.engine.hooks import Callback, StopTraining

FAST = {"data": "digits", "epochs": 4, "batch_size": 256, "threads": 1, "device": "cpu", "val_split": 0.2}


class Recorder(Callback):
    def __init__(self, stop_at=None, raise_it=False):
        self.rows, self.ends, self.started, self.stop_at, self.raise_it = [], [], 0, stop_at, raise_it

    def on_fit_start(self, trainer):
        self.started += 1
        assert os.path.isdir(trainer.run_dir)

    def on_epoch_end(self, trainer, metrics):
        self.rows.append(dict(metrics))
        if metrics["epoch"] == self.stop_at:
            if self.raise_it:
                raise StopTraining("pruned")
            return "pruned"
        return None

    def on_fit_end(self, trainer, status):
        self.ends.append(status)


@pytest.mark.parametrize("raise_it", [False, True])
def test_a_callback_stops_the_run_cleanly(tmp_path, raise_it):
    rec = Recorder(stop_at=2, raise_it=raise_it)
    r = tudui.train(out=str(tmp_path), name="p", progress=False, callbacks=[rec], **FAST)
    assert (r.status, r.stop_reason) == ("stopped", "pruned") and not r.stopped_early
    assert [row["epoch"] for row in rec.rows] == [1, 2] and rec.rows[0]["val_acc"] is not None
    assert rec.started == 1 and rec.ends == ["stopped"]
    st = json.loads((tmp_path / "p" / "run.json").read_text())
    assert (st["status"], st["stop_reason"], st["epochs_done"]) == ("stopped", "pruned", 2)
    assert tudui.checkpoint.load(r.last_path)["epoch"] == 2 and os.path.isfile(r.best_path)


def test_a_finished_run_reports_finished(tmp_path):
    rec = Recorder()
    r = tudui.train(out=str(tmp_path), name="f", progress=False, callbacks=[rec], **dict(FAST, epochs=1))
    assert r.status == "finished" and r.stop_reason is None and rec.ends == ["finished"]


def test_train_report_is_written_when_interrupted(tmp_path, capsys):
    class CtrlC(Callback):  # as if Ctrl-C arrived during the first epoch
        def on_fit_start(self, trainer):
            trainer.stop_signal = signal.SIGINT
    from tudui.engine.signals import TrainingInterrupted
    with pytest.raises(TrainingInterrupted):
        tudui.train(out=str(tmp_path), name="i", progress=False, report=True, callbacks=[CtrlC()], **FAST)
    page = tmp_path / "i" / "report.html"
    assert page.is_file() and "interrupted" in page.read_text(encoding="utf-8")
    assert json.loads((tmp_path / "i" / "report" / "report.json").read_text())["status"] == "interrupted"
    assert "report:" in capsys.readouterr().err


def test_stream_loader_checks_each_file_once(tmp_path, monkeypatch):
    from tudui.data import pipeline
    from tudui.data.splits import DataSource, FileSplit
    folder = tmp_path / "imgs"
    folder.mkdir()
    paths = []
    for i in range(12):
        p = folder / f"{i}.png"
        Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(p)
        paths.append(str(p))
    (folder / "bad.png").write_bytes(b"not a png")
    paths.append(str(folder / "bad.png"))
    targets = [i % 2 for i in range(len(paths))]
    scans = []
    real = pipeline._scan_readable
    monkeypatch.setattr(pipeline, "_scan_readable", lambda split: scans.append(len(split)) or real(split))
    cfg = resolve({"loader": "stream", "img_size": 8, "cache_dir": str(tmp_path / "cache"), "threads": 1})
    for _ in range(2):
        src = DataSource(name="t", classes=["a", "b"], splits={"train": FileSplit(paths, targets),
                                                               "val": FileSplit(paths[:4], targets[:4])})
        prep = pipeline.prepare(src, cfg, "cpu")
        assert len(prep.train.split) == 12 and any("bad.png" in b for b in prep.skipped)
    assert scans == [13, 4]  # the second run reads the remembered answers
    os.utime(paths[0], (1, 1))  # a changed file: scanned again
    src = DataSource(name="t", classes=["a", "b"], splits={"train": FileSplit(paths, targets),
                                                           "val": FileSplit(paths[:4], targets[:4])})
    pipeline.prepare(src, cfg, "cpu")
    assert scans == [13, 4, 13, 4]


def test_console_is_silent_above_rank_0(monkeypatch, capsys):
    console.say("hello")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    console.say("from rank 1")
    console.warn("also silent")
    monkeypatch.setenv("RANK", "0")
    console.notice("rank 0")
    assert capsys.readouterr().err == "hello\nnotice: rank 0\n"


def test_atomic_files_use_unique_temporaries_and_clean_stale_ones(tmp_path):
    target = tmp_path / "run.json"
    assert fileio.tmp_name(str(target)) != fileio.tmp_name(str(target))
    stale = tmp_path / ".run.json.999999999.abcd1234.tmp"  # a pid that does not exist
    stale.write_text("torn")
    fileio.write_text(str(target), "{}")
    fileio.copy(str(target), str(tmp_path / "copy.json"))
    assert target.read_text() == (tmp_path / "copy.json").read_text() == "{}"
    assert fileio.remove_stale_temps(str(target)) == 1 and not stale.exists()
    assert fileio.pid_alive(os.getpid())
