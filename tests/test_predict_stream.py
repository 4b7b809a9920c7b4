"""Streaming predict on many files: rows written as computed, in input order, an unreadable file a row with its
error (never the end of the run), the file valid at every moment (a killed run leaves complete rows), and
decoding bounded ahead of the model."""
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import tudui
from tudui.cli import main
from tudui.infer import iter_predictions, open_predictor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def digit_folder(root, n_per_dir=4, dirs=("b", "a", "a/deeper")):
    rng = np.random.default_rng(0)
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_dir):
            Image.fromarray(rng.integers(0, 256, (8 + i, 8), dtype=np.uint8)).save(root / d / f"{i}.png")
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "a" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / ".hidden" / "x.png")
    return root


def good_files(root):
    return sorted(str(p) for p in root.rglob("*.png") if p.name != "broken.png" and ".hidden" not in str(p))


def test_csv_rows_every_good_file_and_the_bad_one(digits_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("tudui.console.interactive", lambda: True)  # as on a terminal: the bar shows
    root = digit_folder(tmp_path / "imgs")
    out = tmp_path / "preds.csv"
    code, _, err = run_cli(["predict", digits_run.best_path, root, "--out", out, "--topk", "2", "--batch-size", "3"],
                           capsys)
    assert code == 0
    assert "1 could not be read" in err and "wrote 13 rows" in err and "img/s" in err  # the progress bar
    rows = list(csv.DictReader(open(out, newline="")))
    assert list(rows[0]) == ["path", "label", "prob", "label_2", "prob_2", "error"]
    # the same order as `tudui predict --json`: sorted folders, sorted files, depth first
    expected = tudui.predict(digits_run.best_path, good_files(root), topk=2, batch_size=3)
    by_path = {r["path"]: r for r in rows}
    assert [r["path"] for r in rows if not r["error"]] == [e["path"] for e in expected]
    for e in expected:
        r = by_path[e["path"]]
        assert r["label"] == e["topk"][0]["label"] and float(r["prob"]) == e["topk"][0]["prob"]
        assert r["label_2"] == e["topk"][1]["label"] and float(r["prob_2"]) == e["topk"][1]["prob"]
    bad = by_path[str(root / "a" / "broken.png")]
    assert "cannot identify image file" in bad["error"] and bad["label"] == "" and bad["prob"] == ""
    paths = [r["path"] for r in rows]
    assert paths.index(str(root / "a" / "broken.png")) < paths.index(str(root / "a" / "deeper" / "0.png"))
    assert not any(".hidden" in p or p.endswith(".txt") for p in paths)


def test_jsonl_rows_equal_the_json_output(digits_run, tmp_path, capsys):
    root = digit_folder(tmp_path / "imgs")
    (root / "a" / "broken.png").unlink()
    code, out, _ = run_cli(["predict", digits_run.best_path, root, "--json", "--batch-size", "5"], capsys)
    assert code == 0
    listed = json.loads(out)
    code, _, _ = run_cli(["predict", digits_run.best_path, root, "--out", tmp_path / "p.jsonl", "--no-progress",
                          "--workers", "3", "--batch-size", "5"], capsys)
    assert code == 0
    streamed = [json.loads(line) for line in open(tmp_path / "p.jsonl")]
    assert streamed == listed


def same(a, b, tol):
    assert [r["path"] for r in a] == [r["path"] for r in b]
    for ra, rb in zip(a, b):
        assert ("error" in ra) == ("error" in rb)
        if "error" not in ra:
            assert [t["index"] for t in ra["topk"]] == [t["index"] for t in rb["topk"]]
            assert max(abs(x["prob"] - y["prob"]) for x, y in zip(ra["topk"], rb["topk"])) <= tol


def test_worker_counts_and_batch_sizes_give_the_same_answers(digits_run, tmp_path):
    root = digit_folder(tmp_path / "imgs")
    clf = open_predictor(digits_run.best_path)
    runs = [list(iter_predictions(clf, [root], topk=3, batch_size=b, workers=w, on_error="row"))
            for b, w in ((4, 0), (4, 2), (4, 4), (1, 2), (64, 4))]
    assert runs[0] == runs[1] == runs[2]  # the same batches: bit for bit, whatever the decoding threads
    same(runs[0], runs[3], 1e-6)  # other batch sizes: the matrix kernels may round differently
    same(runs[0], runs[4], 1e-6)
    assert sum("error" in r for r in runs[0]) == 1


def test_decoding_runs_a_bounded_window_ahead(digits_run, tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "many").mkdir()
    for i in range(300):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "many" / f"{i:03d}.png")
    clf = open_predictor(digits_run.best_path)
    decoded = []
    real = clf.prepare
    clf.prepare = lambda im: decoded.append(1) or real(im)
    it = iter_predictions(clf, [tmp_path / "many"], batch_size=4, workers=2)
    first = next(it)
    time.sleep(0.2)  # let the threads run as far ahead as they are allowed to
    assert first["path"].endswith("000.png")
    assert len(decoded) <= 4 + (2 * 4 + 4 * 2) + 1  # one batch taken, the window refilled
    it.close()


def test_unreadable_files_without_out_are_reported_not_fatal(digits_run, tmp_path, capsys):
    root = digit_folder(tmp_path / "imgs")
    results = tudui.predict(digits_run.best_path, root)
    bad = str(root / "a" / "broken.png")
    assert [r["path"] for r in results if "error" in r] == [bad]
    assert sorted(r["path"] for r in results if "error" not in r) == good_files(root)
    code, out, err = run_cli(["predict", digits_run.best_path, root], capsys)
    assert code == 0 and err.count(f"{bad}: unreadable (") == 1 and len(out.splitlines()) == len(results) - 1
    code, _, err = run_cli(["predict", digits_run.best_path, bad], capsys)  # nothing readable: a mistake
    assert code == 2 and "cannot read image" in err and "Traceback" not in err


@pytest.mark.parametrize("args, needle", [
    (["--out", "x.txt"], ".csv or .jsonl"),
    (["--batch-size", "0"], "--batch-size"),
])
def test_bad_options(digits_run, tmp_path, capsys, args, needle):
    root = digit_folder(tmp_path / "imgs")
    code, _, err = run_cli(["predict", digits_run.best_path, root] + args, capsys)
    assert code == 2 and needle in err and "Traceback" not in err
    code, _, err = run_cli(["predict", digits_run.best_path, tmp_path / "nope", "--out", tmp_path / "p.csv"], capsys)
    assert code == 2 and "not found" in err
    assert not (tmp_path / "p.csv").exists()


def complete(text, fmt):
    """Every line of the file is a whole row."""
    if not text:
        return 0
    assert text.endswith("\n")
    lines = text.splitlines()
    if fmt == "jsonl":
        for line in lines:
            row = json.loads(line)
            assert "topk" in row or "error" in row
        return len(lines)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "path" and all(len(r) == len(rows[0]) for r in rows)
    return len(rows) - 1


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_killed_run_leaves_complete_rows(digits_run, tmp_path, fmt):
    rng = np.random.default_rng(2)
    (tmp_path / "many").mkdir()
    for i in range(3000):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "many" / f"{i:04d}.png")
    out = tmp_path / f"p.{fmt}"
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "tudui", "predict", digits_run.best_path, str(tmp_path / "many"),
                             "--out", str(out), "--batch-size", "1", "--workers", "1", "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    seen, deadline = [], time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists():
                seen.append(complete(out.read_text(), fmt))  # valid at every moment we look
                if seen[-1] >= 20:
                    break
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert seen and max(seen) >= 20, proc.stderr.read().decode()[-2000:]
    n = complete(out.read_text(), fmt)
    assert 20 <= n < 3000  # killed mid-run, and every row that is there is whole
