"""A newcomer's first hour (issue 25): the README tour's accuracy, a drawn digit, Chinese class names in
figures and answers, and the rough edges they met (closed pipes, TensorBoard's child, typos in flags...)."""
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tudui
from tudui.cli import main

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))


def tour_train_args() -> list:
    """The README tour's train command, as written there."""
    line = next(ln for ln in (REPO / "README.md").read_text(encoding="utf-8").splitlines()
                if ln.startswith("tudui train --epochs"))
    return shlex.split(line.split("#")[0])[1:]


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    """The README tour's run folder; its closing lines in closing.txt."""
    import contextlib
    import io
    out = tmp_path_factory.mktemp("tour")
    args = tour_train_args()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(args + ["--out", str(out)]) == 0
    run = out / args[args.index("--name") + 1]
    (run / "closing.txt").write_text(err.getvalue(), encoding="utf-8")
    return run


def drawn_digit(invert=False) -> Image.Image:
    """A 3 drawn as people draw in Paint: black strokes on white, filling the square (as the digits do);
    docs/course/own-image.md draws the same one."""
    from PIL import ImageDraw, ImageOps
    img = Image.new("L", (64, 64), 255)
    pen = ImageDraw.Draw(img)
    pen.arc((16, 4, 48, 32), -160, 90, fill=0, width=7)
    pen.arc((14, 30, 48, 60), -90, 160, fill=0, width=7)
    return ImageOps.invert(img) if invert else img


# ------------------------------------------------------------------------------------------ the tour
def test_readme_tour_reaches_95_percent(tour):
    rows = [json.loads(line) for line in (tour / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["epoch"] == 3 and max(r["val_acc"] for r in rows) >= 0.95
    best = max(rows, key=lambda r: r["val_acc"])  # the closing lines name best.pt's accuracy, not only the last
    assert f"best.pt: val_acc {best['val_acc']:.4f} (epoch {best['epoch']})" in (tour / "closing.txt").read_text()
    ck = tudui.load(str(tour / "best.pt"))
    assert ck.meta["input_stats"]["polarity"] == "light on dark"
    assert ck.meta["train_device"] == "cpu"


def test_drawn_digit_gets_a_note_and_invert_reads_it(tour, tmp_path, capsys):
    drawn_digit().save(tmp_path / "drawn.png")
    capsys.readouterr()
    assert main(["predict", str(tour / "best.pt"), str(tmp_path / "drawn.png")]) == 0
    err = capsys.readouterr().err
    assert "much brighter than the training images" in err and "light on dark" in err and "--invert" in err
    assert main(["predict", str(tour / "best.pt"), str(tmp_path / "drawn.png"), "--invert", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert "note" not in row and row["topk"][0]["label"] == "3" and row["topk"][0]["prob"] > 0.5
    drawn_digit(invert=True).save(tmp_path / "light_on_dark.png")  # like the training digits: no note
    assert "note" not in tudui.predict(str(tour / "best.pt"), [str(tmp_path / "light_on_dark.png")])[0]


def test_serve_says_so_too(tour):
    from fastapi.testclient import TestClient
    from tudui.serve.app import create_app
    path = tour / "drawn.png"
    drawn_digit().save(path)
    with TestClient(create_app(tudui.load(str(tour / "best.pt")))) as c:
        r = c.post("/predict", files={"file": ("drawn.png", path.read_bytes(), "image/png")})
        assert r.status_code == 200 and "much brighter" in r.json()["note"]
    page = (REPO / "src/tudui/serve/static/index.html").read_text(encoding="utf-8")
    assert 'id="note"' in page and "<h1>tudui</h1>" not in page  # the header no longer repeats the name


# ------------------------------------------------------------------------------------------ class names
def two_class_folder(root: Path, names=("1", "2")) -> Path:
    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(6):
            a = rng.integers(0, 60, (16, 16, 3), dtype=np.uint8) + (180 if k else 0)
            Image.fromarray(a.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def test_class_names_file_in_checkpoint_predict_report_serve(tmp_path, capsys):
    data = two_class_folder(tmp_path / "data")
    names = tmp_path / "cat_to_name.json"  # the Flowers-102 style: folder name -> display name
    names.write_text(json.dumps({"1": "蚂蚁", "2": "蜜蜂"}, ensure_ascii=False), encoding="utf-8")
    assert main(["train", "--data", str(data), "--epochs", "1", "--img-size", "16", "--val-split", "0.34",
                 "--class-names", str(names), "--out", str(tmp_path / "runs"), "--name", "r", "--no-progress"]) == 0
    best = tmp_path / "runs" / "r" / "best.pt"
    clf = tudui.load(str(best))
    assert clf.classes == ["1", "2"] and clf.labels == ["蚂蚁", "蜜蜂"]
    capsys.readouterr()
    assert main(["predict", str(best), str(data / "2" / "0.png"), "--topk", "2"]) == 0
    assert set(re.findall(r"蚂蚁|蜜蜂", capsys.readouterr().out)) == {"蚂蚁", "蜜蜂"}
    html = Path(tudui.report(str(best), top=2, cam=False)).read_text(encoding="utf-8")
    assert "蚂蚁" in html and "蜜蜂" in html and "training device" in html
    assert re.search(r"<dt>training device</dt><dd>cpu</dd>", html)  # the device used, not `auto`
    exported = tudui.export(str(best), out=str(tmp_path / "m.ts"), format="torchscript")["path"]
    assert tudui.open_predictor(exported).labels == ["蚂蚁", "蜜蜂"]  # the names travel with exported files
    from fastapi.testclient import TestClient
    from tudui.serve.app import create_app
    with TestClient(create_app(clf)) as c:
        assert c.get("/classes").json()["labels"] == ["蚂蚁", "蜜蜂"]
        r = c.post("/predict", files={"file": ("x.png", (data / "1" / "0.png").read_bytes(), "image/png")})
        assert r.json()["topk"][0]["label"] in ("蚂蚁", "蜜蜂")


def test_class_names_csv_by_index_and_mistakes(tmp_path):
    from tudui.data.class_names import read_class_names
    from tudui.errors import ConfigError
    f = tmp_path / "names.csv"
    f.write_text("key,name\n0,蚂蚁\n1,蜜蜂\n", encoding="utf-8")
    assert read_class_names(f, ["ants", "bees"]) == (["蚂蚁", "蜜蜂"], [])
    f.write_text("ants,蚂蚁\nwasps,黄蜂\n", encoding="utf-8")
    names, notes = read_class_names(f, ["ants", "bees"])
    assert names == ["蚂蚁", "bees"] and any("1 of 2 classes keep" in n for n in notes)
    assert any("wasps" in n for n in notes)
    f.write_text('{"cats": "猫"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="no key names a class"):
        read_class_names(f, ["ants", "bees"])


# ------------------------------------------------------------------------------------------ CJK figures
def _pixels(fig) -> np.ndarray:
    from tudui.report.grids import to_array
    return to_array(fig).astype(int)


def _word(s: str) -> np.ndarray:
    """`s` drawn alone at a fixed pixel position, with the fonts figures use: two different words in real
    glyphs give different pixels, two words in tofu (one empty box per character) give the same pixels."""
    from matplotlib.figure import Figure
    from tudui.report.fonts import context
    with context():
        fig = Figure(figsize=(1.0, 0.4), dpi=100)
        fig.text(0.05, 0.3, s, fontsize=14)
    return _pixels(fig)


def test_cjk_class_names_draw_real_glyphs_not_tofu(monkeypatch, capsys):
    from tudui.report import figures, fonts
    if fonts.cjk_family() is None:
        pytest.skip("no CJK font installed (apt-get install fonts-noto-cjk)")
    cm = np.array([[5, 1], [2, 4]])
    names = ["蚂蚁", "蜜蜂"]
    fig, _ = figures.confusion(cm, names)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == names
    real = _pixels(fig)
    assert not np.array_equal(_word("蚂蚁"), _word("蜜蜂"))  # real glyphs

    # the font removed, the names forced through: tofu, and a figure that differs from the real one
    monkeypatch.setattr(fonts, "cjk_family", lambda: None)
    monkeypatch.setattr(fonts, "drawable", lambda s: True)
    assert np.array_equal(_word("蚂蚁"), _word("蜜蜂"))  # what tofu looks like to this check
    tofu = _pixels(figures.confusion(cm, names)[0])
    assert real.shape == tofu.shape and (np.abs(real - tofu).sum(-1) > 96).sum() > 100

    # without the font, as tudui draws it: the class index, and one line naming the package to install
    monkeypatch.undo()
    monkeypatch.setattr(fonts, "cjk_family", lambda: None)
    monkeypatch.setattr(fonts, "_warned", False)
    capsys.readouterr()
    fig, _ = figures.confusion(cm, names)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "1"]
    figures.confusion(cm, names)
    assert capsys.readouterr().err.count("fonts-noto-cjk") == 1
    assert fonts.label("蚂蚁 → 蜜蜂 0.93") == "?? → ?? 0.93"


# ------------------------------------------------------------------------------------------ rough edges
def test_no_abbreviations_and_did_you_mean(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--epoch", "3"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert "usage: tudui train" in err and "did you mean --epochs?" in err
    with pytest.raises(SystemExit):
        main(["eval", "x.pt", "--spilt", "val"])
    err = capsys.readouterr().err
    assert "usage: tudui eval" in err and "did you mean --split?" in err
    from tudui.cli import COMMANDS
    for cmd in COMMANDS:  # every --help has a description line under its usage (compare and eval had none)
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        help_text = capsys.readouterr().out
        assert not help_text.split("\n\n")[1].startswith(("positional", "options")), cmd


class _ClosedPipe:
    """stdout after `| head` has exited."""
    def write(self, s):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_closed_pipe_ends_quietly(monkeypatch, capsys, digits_run):
    r, w = os.pipe()
    os.close(r)  # the reader (`| head`) is gone before anything is written
    p = subprocess.run([sys.executable, "-m", "tudui", "models"], stdout=w, stderr=subprocess.PIPE, env=ENV,
                       timeout=120)
    os.close(w)
    assert p.returncode == 141 and p.stderr.decode() == ""  # as `yes | head` leaves it: quiet
    for args in (["models"], ["runs", os.path.dirname(digits_run.run_dir)], ["eval", digits_run.best_path],
                 ["env"], ["train", "--help"]):
        monkeypatch.setattr(sys, "stdout", _ClosedPipe())
        try:
            code = main(args)
        except SystemExit as e:  # --help: argparse itself ignores a failed write and exits 0
            code = e.code
        monkeypatch.undo()
        assert code in (0, 141) and capsys.readouterr().err == "", args


def _children(pid: int) -> list:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _gone(pid: int, seconds: float = 15) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads child processes from /proc (Linux)")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_board_child_stops_with_tudui(tmp_path, how):
    (tmp_path / "runs").mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "tudui", "board", str(tmp_path / "runs"), "--port", str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, start_new_session=True)
    try:
        line = p.stdout.readline().decode()
        url = re.search(r"http://\S+/", line).group(0)
        kids = _children(p.pid)
        assert len(kids) == 1
        if how == signal.SIGTERM:  # let TensorBoard start and say what it says on start
            end = time.monotonic() + 30
            while time.monotonic() < end:
                try:
                    urllib.request.urlopen(url, timeout=1).read(100)
                    break
                except OSError:
                    time.sleep(0.2)
        p.send_signal(how)
        assert _gone(kids[0]), "TensorBoard outlived tudui board"
        p.wait(15)
        out, err = p.stdout.read().decode(), p.stderr.read().decode()
        if how == signal.SIGTERM:
            assert p.returncode == 0 and (line + out).count("http://") == 1
            assert "TensorFlow installation not found" not in err and "load_fast" not in err, err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_compare_next_to_runs_never_overwrites(digits_run, tmp_path, capsys):
    import shutil
    runs = tmp_path / "runs"
    for n in ("a", "b"):
        shutil.copytree(digits_run.run_dir, runs / n, ignore=shutil.ignore_patterns("*.pt", "events.*"))
    capsys.readouterr()
    assert main(["compare", str(runs / "a"), str(runs / "b")]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(runs / "compare.html") and "2 runs; best val acc" in err
    assert main(["compare", str(runs / "a"), str(runs / "b")]) == 0
    assert capsys.readouterr().out.strip() == str(runs / "compare-2.html")
    assert main(["compare", str(runs / "a"), str(runs / "b"), "--out", str(runs / "compare.html")]) == 0
    assert "replaced the previous" in capsys.readouterr().err


def test_exported_file_mode_like_pt(digits_run, tmp_path):
    old = os.umask(0o022)
    try:
        out = tudui.export(digits_run.best_path, out=str(tmp_path / "m.ts"), format="torchscript")
    finally:
        os.umask(old)
    path = out["path"] if isinstance(out, dict) else out
    assert os.stat(path).st_mode & 0o777 == os.stat(digits_run.best_path).st_mode & 0o777 == 0o644


def test_low_accuracy_on_photos_suggests_fine_tuning(tmp_path):
    from tudui.config import resolve
    from tudui.engine.advice import next_steps
    folder = two_class_folder(tmp_path / "photos", ("ants", "bees"))
    lines = next_steps(resolve({"data": str(folder)}), 0.65)
    assert "65% from scratch" in lines[0]
    assert f"tudui train --data {folder} --model resnet18 --pretrained --freeze backbone" in lines[1]
    assert "--weights resnet18-f37072fd.pth" in lines[2] and "finetune-offline" in lines[2]
    assert next_steps(resolve({"data": str(folder)}), 0.85) == []
    assert next_steps(resolve({"data": str(folder), "pretrained": True}), 0.65) == []
    assert next_steps(resolve({}), 0.5) == []  # the digits are no photo folder


def test_log_file_gets_one_line_per_epoch_not_a_bar(tmp_path, capsys, monkeypatch):
    from tudui import console as progress
    assert main(["train", "--epochs", "2", "--out", str(tmp_path), "--name", "r"]) == 0  # progress on by default
    err = capsys.readouterr().err  # stderr is not a terminal here
    assert "\r" not in err and "it/s" not in err
    assert [ln.split()[1] for ln in err.splitlines() if ln.startswith("epoch ")] == ["1/2", "2/2"]
    monkeypatch.setattr(progress, "interactive", lambda: True)  # a terminal: tqdm's bar
    assert not progress.progress_bar(3, "x").disable
