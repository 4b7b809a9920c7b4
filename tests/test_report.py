"""`tudui report`, `tudui runs`, `tudui compare`, `train --report` and the end-of-training TensorBoard pages.

The data is built so the mistakes are known: solid-colour images (one colour per class, with noise), three
classes whose names hold HTML characters and non-ASCII text, and in the held-out split three images put in the
wrong class folder on purpose. A model that learned the colours gets exactly those three wrong, confidently."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tudui.cli import main

BLUE = "blue \"q\" 'x' $x^$"  # unescaped, matplotlib would parse (and fail on) this as mathtext
CLASSES = {"red <b>&amp;": (220, 30, 30), "绿 green": (30, 200, 40), BLUE: (40, 50, 230)}
# (colour of the image, folder it is put in): the model sees the colour, the folder says otherwise
PLANTED = [("red <b>&amp;", "绿 green"), ("绿 green", BLUE), (BLUE, "red <b>&amp;")]


def _img(rng, rgb, size=16) -> Image.Image:
    a = np.clip(np.array(rgb)[None, None, :] + rng.normal(0, 18, (size, size, 3)), 0, 255).astype(np.uint8)
    a[rng.integers(0, size), :, :] = rng.integers(0, 255)  # a stray line, so images differ in shape too
    return Image.fromarray(a)


def make_colours(root: Path, n_train=60, n_val=20, seed=0) -> dict:
    """-> {planted file name: (true class = its folder, class of its colour)}."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for name, rgb in CLASSES.items():
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                _img(rng, rgb).save(d / f"{k}.png")
    planted = {}
    for k, (colour, folder) in enumerate(PLANTED):
        f = f"planted{k}.png"
        _img(rng, CLASSES[colour]).save(root / "val" / folder / f)
        planted[f] = (folder, colour)
    return planted


TRAIN_ARGS = ["--model", "tudui", "--img-size", "32", "--epochs", "3", "--lr", "0.02", "--batch-size", "32",
              "--threads", "1", "--device", "cpu", "--no-progress", "--augment", "none", "--seed", "0"]


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """A short run trained through the CLI with --report: (data root, run folder, planted files)."""
    root = tmp_path_factory.mktemp("colours")
    planted = make_colours(root / "data")
    rc = main(["train", "--data", str(root / "data"), "--out", str(root / "runs"), "--name", "c", "--report"]
              + TRAIN_ARGS)
    assert rc == 0
    return root / "data", root / "runs" / "c", planted


def _summary(html_path) -> dict:
    return json.loads((Path(html_path).with_suffix("") / "report.json").read_text(encoding="utf-8"))


SECTIONS = ("summary", "curves", "confusion", "per-class", "mistakes", "correct", "pairs", "calibration",
            "dataset", "run")


def test_train_report_has_every_section_and_the_planted_mistakes(colours):
    data, run, planted = colours
    page = run / "report.html"
    assert page.is_file(), "train --report writes RUN_DIR/report.html"
    html = page.read_text(encoding="utf-8")
    for s in SECTIONS:
        assert f'<section id="{s}">' in html
    assert re.search(r'id="status">finished<', html)
    # self-contained: no URL but inline data
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    assert "http://" not in html and "https://" not in html
    # class names escaped, Unicode intact
    assert "red <b>" not in html and "red &lt;b&gt;&amp;amp;" in html
    assert "绿 green" in html and "&#34;q&#34;" in html
    # the mistakes are exactly the planted images, with their folder as truth and their colour as prediction
    s = _summary(page)
    got = {os.path.basename(m["file"]): (m["true"], m["pred"]) for m in s["mistakes"]}
    assert got == planted
    assert all(m["pred"] != m["true"] and m["prob"] > 0.5 for m in s["mistakes"])
    assert len(re.findall(r'class="card mistake"', html)) == len(planted)
    assert all(m["pred"] == m["true"] for m in s["correct"]) and s["correct"]
    # every figure decodes: the PNG files and the inlined images
    assert set(s["figures"]) >= {"curves.png", "confusion_counts.png", "confusion_normalized.png",
                                 "reliability.png", "mistakes.png", "correct.png"}
    for p in s["figures"].values():
        with Image.open(p) as im:
            im.load()
            assert im.format == "PNG" and im.width > 100
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(uris) >= 6 + 2 * len(planted)
    for u in uris:
        import io
        Image.open(io.BytesIO(base64.b64decode(u))).load()
    assert 0 <= s["ece"] <= 1 and s["metrics"]["num_samples"] == 3 * 20 + len(planted)
    # the command line that made the run
    cmd = html[html.index('<pre id="command">'):]
    assert cmd.startswith('<pre id="command">tudui train --data') and "--report" in cmd.split("</pre>")[0]


def test_gradcam_map_has_the_image_size_and_is_not_constant(colours):
    from tudui.report.cam import gradcam, last_conv
    from tudui.report.collect import collect
    data, run, planted = colours
    clf, _, col = collect(str(run / "best.pt"))
    idx = [i for i in range(len(col)) if os.path.basename(col.describe(i)) in planted]
    x = col.inputs(idx)
    maps = gradcam(clf.model, x, col.preds[idx])
    assert maps.shape == (len(idx), 32, 32) == (x.shape[0],) + tuple(x.shape[-2:])
    assert last_conv(clf.model) is not None
    for m in maps:
        assert float(m.max()) == pytest.approx(1.0) and float(m.std()) > 0.01
    # the report's pass and `tudui eval` agree
    ev = __import__("tudui").evaluate(str(run / "best.pt"))
    assert col.metrics()["accuracy"] == pytest.approx(ev["accuracy"])
    assert col.metrics()["confusion_matrix"] == ev["confusion_matrix"]


def test_tensorboard_gets_images_hparams_and_graph(colours):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    _, run, _ = colours
    acc = EventAccumulator(str(run), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"report/confusion_matrix", "report/mistakes"} <= set(tags["images"])
    assert tags["graph"]
    # add_hparams wrote its session and final metrics into the run folder itself (the HPARAMS tab)
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
    mux = pem.EventMultiplexer().AddRunsFromDirectory(str(run))
    mux.Reload()
    tensors = {t for r in mux.Runs() for t in mux.GetAccumulator(r).Tags()["tensors"]}
    scalars = {t for r in mux.Runs() for t in mux.GetAccumulator(r).Tags().get("scalars", [])}
    assert "_hparams_/session_start_info" in tensors and "_hparams_/experiment" in tensors
    assert {"hparam/final_val_acc", "hparam/best_val_acc"} <= tensors | scalars


def test_runs_lists_an_interrupted_run_as_interrupted(colours, tmp_path, capsys):
    from tudui.config import resolve
    from tudui.engine.trainer import Trainer, TrainingInterrupted
    data, run, _ = colours
    runs = tmp_path / "runs"
    shutil.copytree(run, runs / "c")
    cfg = resolve({"data": str(data), "out": str(runs), "name": "stopped", "model": "tudui", "img_size": 32,
                   "epochs": 3, "threads": 1, "device": "cpu", "batch_size": 32})
    tr = Trainer(cfg, progress=False)
    tr.stop_signal = signal.SIGINT  # as if Ctrl-C arrived during the first step
    with pytest.raises(TrainingInterrupted):
        tr.fit()
    assert main(["runs", str(runs), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["stopped"]["status"] == "interrupted" and rows["stopped"]["epochs_done"] == 0
    assert rows["c"]["status"] == "finished" and rows["c"]["epochs_done"] == rows["c"]["epochs_planned"] == 3
    assert rows["c"]["best_val_acc"] > 0.9 and rows["c"]["wall_seconds"] > 0
    assert list(rows)[0] == "stopped"  # newest first
    assert main(["runs", str(runs)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["name", "data", "model"] and "interrupted" in table[1]
    # a run killed without a word (its process is gone) reads as interrupted too
    st = json.loads((runs / "c" / "run.json").read_text())
    st.update(status="running", pid=2 ** 22 + 12345)
    (runs / "c" / "run.json").write_text(json.dumps(st))
    from tudui.report.runs import run_info
    assert run_info(str(runs / "c"))["status"] == "interrupted"
    # and its report says so
    page = main(["report", str(runs / "stopped"), "--top", "2", "--no-cam"])
    assert page == 0
    html = (runs / "stopped" / "report.html").read_text(encoding="utf-8")
    assert 'id="status">interrupted<' in html and "was interrupted" in html


def test_runs_lists_a_failed_run_with_its_error(tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--out", str(tmp_path), "--name", "nan", "--lr", "1e30", "--momentum",
                 "0", "--threads", "1", "--no-progress"]) == 2
    capsys.readouterr()
    assert main(["runs", str(tmp_path), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "failed" and "the loss became" in row["error"]
    assert row["command"].startswith("tudui train --epochs 1")


def test_compare_png_and_html(colours, tmp_path, capsys):
    _, run, _ = colours
    other = tmp_path / "other"
    shutil.copytree(run, other)
    cfg = (other / "config.yaml").read_text().replace("lr: 0.02", "lr: 0.5")
    (other / "config.yaml").write_text(cfg)
    rows = [json.loads(x) for x in (other / "metrics.jsonl").read_text().splitlines()]
    (other / "metrics.jsonl").write_text("".join(json.dumps(dict(r, val_acc=r["val_acc"] / 2)) + "\n" for r in rows))
    assert main(["compare", str(run), str(other), "--out", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.02  |  0.5" in out
    with Image.open(tmp_path / "c.png") as im:
        assert im.format == "PNG" and im.width > 500
    assert main(["compare", str(run), str(other), "--out", str(tmp_path / "c.html")]) == 0
    html = (tmp_path / "c.html").read_text(encoding="utf-8")
    diff = html[html.index('id="diff"'):]
    assert "<td>lr</td>" in diff and "<td>epochs</td>" not in diff and "data:image/png;base64," in html
    assert main(["compare", str(run)]) == 2
    assert main(["compare", str(run), str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_an_early_stopped_run_is_labelled(colours, tmp_path):
    import tudui
    _, run, _ = colours
    d = tmp_path / "early"
    shutil.copytree(run, d, ignore=shutil.ignore_patterns("report*", "events.*"))
    st = json.loads((d / "run.json").read_text())
    (d / "run.json").write_text(json.dumps(dict(st, status="stopped_early", epochs_done=2, epochs_planned=9)))
    html = Path(tudui.report(str(d), top=1, cam=False)).read_text(encoding="utf-8")
    assert 'id="status">stopped early<' in html and "stopped early (no improvement" in html
    assert "after 2 of 9 epochs" in html


def test_curves_fallbacks_and_lone_checkpoints(colours, tmp_path):
    import tudui
    _, run, _ = colours
    # a run folder without metrics.jsonl: the checkpoint's own history
    bare = tmp_path / "bare"
    shutil.copytree(run, bare, ignore=shutil.ignore_patterns("metrics.jsonl", "report*", "events.*"))
    html = Path(tudui.report(str(bare), top=2)).read_text(encoding="utf-8")
    assert "history stored in the checkpoint" in html and 'alt="training curves"' in html
    # a lone checkpoint without history: the curves section says there are none
    lone = tmp_path / "lone"
    lone.mkdir()
    ck = torch.load(run / "best.pt", weights_only=True)
    ck["train_state"] = None
    from tudui.checkpoint import content_hash
    ck["sha256"] = content_hash(ck)  # re-saved on purpose: not a damaged file
    torch.save(ck, lone / "model.pt")
    page = tudui.report(str(lone / "model.pt"), top=2, cam=False)
    assert page == str(lone / "report.html")
    html = Path(page).read_text(encoding="utf-8")
    assert "No curves: the checkpoint has no run folder" in html and 'alt="training curves"' not in html
    assert "Grad-CAM maps were not requested" in html


def test_bad_inputs_give_one_line_errors(colours, tmp_path, capsys):
    data, run, _ = colours
    cases = [
        (["report", str(tmp_path / "missing")], "does not exist"),
        (["report", str(tmp_path)], "without best.pt or last.pt"),
        (["report", str(run), "--out", str(tmp_path / "x.txt")], "ending in .html"),
        (["report", str(run), "--top", "0"], "--top must be at least 1"),
        (["runs", str(tmp_path / "nothing")], "no runs folder"),
    ]
    one = tmp_path / "one"  # a held-out split with a single class
    shutil.copytree(data / "train", one / "train")
    shutil.copytree(data / "val" / "绿 green", one / "val" / "绿 green")
    cases.append((["report", str(run), "--data", str(one), "--out", str(tmp_path / "o.html")], "at least two classes"))
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_undecodable_images_are_skipped_and_listed(colours, tmp_path):
    import tudui
    data, run, _ = colours
    d = tmp_path / "d"
    shutil.copytree(data, d)
    (d / "val" / "绿 green" / "broken.png").write_bytes(b"not an image at all")
    page = tudui.report(str(run / "best.pt"), data=str(d), out=str(tmp_path / "r.html"), top=3, cam=False)
    s = _summary(page)
    assert len(s["skipped"]) == 1 and s["skipped"][0].split(": ")[0].endswith("broken.png")
    assert "broken.png" in Path(page).read_text(encoding="utf-8")


def test_a_model_without_convolutions_says_so(tmp_path):
    import tudui
    from torch import nn
    root = tmp_path / "data"
    make_colours(root, n_train=10, n_val=4)
    net = lambda: nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 3))
    r = tudui.train(str(root), model=net(), epochs=1, out=str(tmp_path / "runs"), name="mlp", progress=False,
                    img_size=16, threads=1, device="cpu")
    html = Path(tudui.report(r.run_dir, model=net(), top=4)).read_text(encoding="utf-8")
    assert "This model has no convolution layer" in html and 'alt="Grad-CAM' not in html
    assert 'class="card mistake"' in html or "No mistakes on this split." in html


def test_confusion_of_many_classes_shows_the_most_confused():
    from tudui.report.figures import MAX_CM_CLASSES, confusion, most_confused_classes
    n = MAX_CM_CLASSES + 18
    cm = np.eye(n, dtype=np.int64) * 10
    cm[5, 7] = 9
    cm[100, 3] = 4
    fig, caption = confusion(cm, [f"c{i}" for i in range(n)])
    assert f"{n} classes" in caption and "most-confused" in caption
    assert {3, 5, 7, 100} <= set(most_confused_classes(cm))
    assert confusion(cm[:10, :10], [f"c{i}" for i in range(10)])[1] == ""


def test_browser_opens_the_report_offline(colours, tmp_path):
    from browser import open_page
    _, run, _ = colours
    page_path = (run / "report.html").resolve()
    other = tmp_path / "other"
    shutil.copytree(run, other, ignore=shutil.ignore_patterns("*.pt", "report*", "events.*"))
    compare_path = (tmp_path / "compare.html").resolve()
    assert main(["compare", str(run), str(other), "--out", str(compare_path)]) == 0
    with open_page(page_path.as_uri(), viewport=(1280, 900)) as page:
        assert page.console_errors == [] and page.page_errors == []
        assert all(u == page_path.as_uri() or u.startswith("data:") for u in page.requested_urls), page.requested_urls
        shot = page.screenshot(full_page=False)
        # sorting the per-class table by clicking a header
        first = lambda: page.locator("#per-class-table tbody tr td").first.inner_text()
        page.click("#per-class-table th:nth-child(5)")
        page.click("#per-class-table th:nth-child(5)")  # a second click: descending support
        assert page.get_attribute("#per-class-table th:nth-child(5)", "aria-sort") == "descending"
        assert first() in CLASSES
        page.click("#per-class-table th:nth-child(1)")
        names = page.locator("#per-class-table tbody tr td:first-child").all_inner_texts()
        assert names == sorted(names, key=str.lower) or names == sorted(names)
        assert page.console_errors == [] and page.page_errors == []
        page.goto(compare_path.as_uri())  # the compare page too
        assert page.locator("#runs tbody tr").count() == 2
        assert page.console_errors == [] and page.page_errors == []
        assert all(u in (page_path.as_uri(), compare_path.as_uri()) or u.startswith("data:")
                   for u in page.requested_urls), page.requested_urls
    import io
    a = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=np.float32)
    assert a.std() > 10 and (a < 128).mean() > 0.02  # not blank: dark header, text, figures
