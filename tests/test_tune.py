"""tudui tune: a tiny search on digits whose trials are ordinary runs, the database value equal to `tudui eval`
of the trial's best.pt, best.yaml reproducing it, pruning, resume after a kill, two workers on one storage,
and a bad space refused in one line."""
import os
import signal
import subprocess
import sys
import time

import pytest

optuna = pytest.importorskip("optuna")

import tudui  # noqa: E402
from tudui.cli import main  # noqa: E402
from tudui.report.runs import list_runs, read_history  # noqa: E402
from tudui.tune.space import default_space, parse_flags  # noqa: E402

SRC = os.path.dirname(os.path.dirname(os.path.abspath(tudui.__file__)))


def load(study_dir, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{study_dir}/study.db")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune")
    return tudui.tune("digits", trials=3, epochs=2, threads=1, out=str(out), name="tiny")


def test_tiny_search_trials_are_runs_and_the_db_holds_evals_accuracy(tiny):
    assert [t["state"] for t in tiny.trials] == ["complete"] * 3
    rows = {r["name"]: r for r in list_runs(tiny.study_dir)}  # `tudui runs STUDY` sees every trial
    assert sorted(rows) == ["trial-0000", "trial-0001", "trial-0002"]
    assert all(r["status"] == "finished" and r["epochs_done"] == 2 for r in rows.values())
    study = load(tiny.study_dir, "tiny")
    best = study.best_trial
    assert tiny.best["number"] == best.number and tiny.best_value == best.value
    assert tiny.best_params == best.params and "lr" in best.params and "model_args.dropout" in best.params
    # the value is exactly what `tudui eval` reports for the trial's best.pt
    for t in study.trials:
        run = os.path.join(tiny.study_dir, t.user_attrs["run_dir"])
        assert tudui.evaluate(os.path.join(run, "best.pt"))["accuracy"] == t.value
    assert os.path.isfile(tiny.page) and "Optimization history" in open(tiny.page, encoding="utf-8").read()


def test_best_yaml_reproduces_the_trial_exactly(tiny, tmp_path):
    assert main(["train", "--config", tiny.best_config, "--out", str(tmp_path), "--name", "again",
                 "--no-progress"]) == 0
    acc = tudui.evaluate(str(tmp_path / "again" / "best.pt"))["accuracy"]
    assert acc == tiny.best_value
    assert [r["val_acc"] for r in read_history(str(tmp_path / "again"))] == \
        [r["val_acc"] for r in read_history(tiny.best["run_dir"])]


def test_rerun_continues_and_other_settings_are_refused(tiny):
    again = tudui.tune("digits", trials=3, epochs=2, threads=1, out=os.path.dirname(tiny.study_dir), name="tiny")
    assert len(again.trials) == 3 and again.best == tiny.best  # nothing left to run
    with pytest.raises(tudui.TuduiError, match="other settings"):
        tudui.tune("digits", trials=3, epochs=3, threads=1, out=os.path.dirname(tiny.study_dir), name="tiny")


def test_pruning_stops_a_trial_after_the_epoch_it_reports(tmp_path):
    r = tudui.tune("digits", trials=2, epochs=3, threads=1, out=str(tmp_path), name="p",
                   space=["lr=log:1e-3:1e-2"], default_space=False,
                   pruner=optuna.pruners.ThresholdPruner(lower=0.999, n_warmup_steps=2))
    assert [t["state"] for t in r.trials] == ["pruned", "pruned"] and r.best is None
    for t in r.trials:  # epoch 1 is warm-up; the pruner stops the run after epoch 2, of 3
        assert [h["epoch"] for h in read_history(t["run_dir"])] == [1, 2]
        assert t["last_epoch"] == 2
    assert {row["status"] for row in list_runs(r.study_dir)} == {"stopped"}


def test_a_killed_study_resumes_and_retries_the_trial_it_was_running(tmp_path):
    args = ["--data", "digits", "--epochs", "2", "--threads", "1", "--trials", "2", "--out", str(tmp_path),
            "--name", "k", "--space", "lr=log:1e-2:1e-1", "--space-only"]
    p = subprocess.Popen([sys.executable, "-m", "tudui", "tune"] + args, env=dict(os.environ, PYTHONPATH=SRC),
                         stderr=subprocess.DEVNULL)
    second = tmp_path / "k" / "trial-0001" / "config.yaml"  # one worker: trial 0 is done once trial 1 starts
    deadline = time.time() + 120
    try:
        while time.time() < deadline and not second.exists() and p.poll() is None:
            time.sleep(0.1)
        assert second.exists() and p.poll() is None, "the study never reached its second trial"
        p.send_signal(signal.SIGKILL)  # no chance to record anything: trial 1 stays RUNNING in the database
    finally:
        p.kill()
        p.wait()
    assert [t.state.name for t in load(tmp_path / "k", "k").trials] == ["COMPLETE", "RUNNING"]
    assert main(["tune"] + args) == 0  # the same command again
    r = tudui.tune("digits", trials=2, epochs=2, threads=1, out=str(tmp_path), name="k",
                   space=["lr=log:1e-2:1e-1"], default_space=False)
    assert [(t["number"], t["state"], t["retry_of"]) for t in r.trials] == \
        [(0, "complete", None), (1, "fail", None), (2, "complete", 1)]
    assert r.trials[2]["params"] == r.trials[1]["params"]  # the killed trial's settings, run again
    assert r.best_value == max(r.trials[0]["value"], r.trials[2]["value"])


def test_two_workers_share_a_journal_storage_without_losing_trials(tmp_path):
    journal = tmp_path / "study.journal"
    assert main(["tune", "--data", "digits", "--epochs", "1", "--trials", "4", "--workers", "2",
                 "--storage", str(journal), "--out", str(tmp_path), "--name", "w"]) == 0
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    study = optuna.load_study(study_name="w", storage=JournalStorage(JournalFileBackend(str(journal))))
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert {t.state.name for t in study.trials} == {"COMPLETE"}
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 2  # both processes ran trials
    assert sorted(os.listdir(tmp_path / "w")) == ["best.yaml", "study.html", "trial-0000", "trial-0001",
                                                  "trial-0002", "trial-0003"]
    assert all(t.user_attrs["run_dir"] == f"trial-{t.number:04d}" for t in study.trials)


@pytest.mark.parametrize("spec, says", [
    ("lr=log:0:1", "LOW > 0"), ("batch_size=log:16:64", "batch_size is int"), ("foo=int:1:3", "unknown key 'foo'"),
    ("lr=lin:1:2", "unknown kind"), ("augment=choice:basic,huge", "augment"), ("epochs=int:5:2", "LOW must be below"),
    ("data=choice:a,b", "cannot be searched"), ("lr", "KEY=KIND")])
def test_a_bad_space_is_one_line_and_exit_2(spec, says, tmp_path, capsys):
    assert main(["tune", "--space", spec, "--trials", "2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err and err.startswith("tudui tune: error:")
    assert os.listdir(tmp_path) == []  # refused before any study was made


def test_the_default_space_fits_the_data_model_and_fixed_keys():
    from tudui.config import resolve
    cfg = resolve({"recipe": "course"})
    sp = default_space(cfg, n_train=300, fixed={"epochs", "model_args.hidden"})
    assert sp["lr"].low == pytest.approx(1e-3) and sp["lr"].high == pytest.approx(1e-1) and sp["lr"].log
    assert sp["batch_size"].choices == (32,)  # at most an eighth of 300 images
    assert "epochs" not in sp and "model_args.hidden" not in sp and "model_args.dropout" in sp
    assert "model_args.dropout" not in default_space(resolve({"model": "resnet18"}))
    assert parse_flags(["lr=log:1e-4:1e-1"])["lr"].describe() == "log:0.0001:0.1"
    assert parse_flags(["epochs=off"]) == {"epochs": None}


def test_a_diverging_trial_is_pruned_and_the_study_goes_on(tmp_path):
    r = tudui.tune("digits", trials=1, epochs=1, threads=1, clip_grad="none", out=str(tmp_path), name="d",
                   space=["lr=choice:1e12"], default_space=False)
    assert [t["state"] for t in r.trials] == ["pruned"] and r.best is None
    assert list_runs(r.study_dir)[0]["status"] == "failed"


def test_ctrl_c_saves_the_trial_and_queues_it_again(tmp_path):
    args = ["--data", "digits", "--epochs", "30", "--threads", "1", "--trials", "1", "--out", str(tmp_path),
            "--name", "c", "--space", "lr=log:1e-2:1e-1", "--space-only"]
    p = subprocess.Popen([sys.executable, "-m", "tudui", "tune"] + args, env=dict(os.environ, PYTHONPATH=SRC),
                         stderr=subprocess.PIPE, text=True)
    first = tmp_path / "c" / "trial-0000" / "metrics.jsonl"  # its first epoch is done
    deadline = time.time() + 120
    while time.time() < deadline and not first.exists() and p.poll() is None:
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 130, err
    assert "trial 0: interrupted" in err and "study is intact" in err and "Traceback" not in err
    trials = load(tmp_path / "c", "c").trials
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"] and trials[1].params == trials[0].params
    assert os.path.isfile(tmp_path / "c" / "trial-0000" / "last.pt")


def test_a_bad_storage_url_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["tune", "--trials", "1", "--out", str(tmp_path), "--storage", "nosuchdb://x/y"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot open the study database" in err
