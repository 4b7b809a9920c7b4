"""Hostile files (tests/hostile.py makes them in their real formats) through stats, train (memory and stream
loaders), predict, report and serve: no crash, no hang, every bad file reported exactly once with its reason,
every good one read; the server answers each bad upload with a 4xx JSON error, never a 500. The 1,000-file
run with wall time and peak memory is benchmarks/hostile_corpus.py."""

import os

import pytest
from markupsafe import escape

import hostile
import tudui
from tudui.cli import main
from tudui.data.images import UnreadableImage, open_image
from tudui.data.stats import stats


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    files = hostile.make_corpus(str(root), n=2 * len(hostile.KINDS) + 8, seed=1)
    yield str(root), files
    hostile.restore_permissions(str(root))


@pytest.fixture(scope="module")
def corpus_ckpt(corpus, tmp_path_factory):
    """A model trained (1 epoch, 16 px) on the hostile corpus: its data spec is the corpus folder."""
    out = tmp_path_factory.mktemp("hostile-run")
    return tudui.train(corpus[0], epochs=1, img_size=16, out=str(out), progress=False, threads=1).best_path


def _bad(files):
    return {p for p, _, e in files if e == "bad"}


def test_every_kind_is_in_the_sample(corpus):
    kinds = {k for _, k, _ in corpus[1]}
    assert kinds == set(hostile.KINDS)


def test_stats_reports_each_bad_file_once_with_its_reason(corpus, capsys):
    root, files = corpus
    r = stats(root, workers=2)
    assert len(r["unreadable"]) == len(set(r["unreadable"])) and set(r["unreadable"]) == _bad(files)
    assert all(r["unreadable_reasons"][p].strip() for p in r["unreadable"])
    ok = sum(e == "ok" for _, _, e in files)
    assert sum(s["num_images"] for s in r["splits"].values()) == ok
    assert main(["stats", root]) == 0
    out = capsys.readouterr().out
    for p in _bad(files):
        assert out.count(f"  {p}: ") == 1


def test_bombs_are_refused_from_the_header(corpus):
    root, files = corpus
    for p, kind, _ in files:
        if kind in ("png-decompression-bomb", "png-header-30000x30000"):
            with pytest.raises(UnreadableImage, match="pixel|bomb"):
                open_image(p)


@pytest.mark.parametrize("loader", ["memory", "stream"])
def test_train_skips_each_bad_file_once_and_finishes(corpus, tmp_path, capsys, loader):
    root, files = corpus
    argv = ["train", "--data", root, "--epochs", "1", "--img-size", "16", "--batch-size", "16", "--out",
            str(tmp_path), "--threads", "1", "--no-progress", "--loader", loader, "--cache-dir", str(tmp_path / "c")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"skipped {len(_bad(files))} unreadable files:" in err
    for p in _bad(files):
        assert err.count(f"  {p}: ") == 1, p


def test_predict_reports_each_bad_file_and_classifies_the_rest(corpus, corpus_ckpt, capsys):
    root, files = corpus
    ckpt = corpus_ckpt
    capsys.readouterr()
    results = tudui.predict(ckpt, root)
    listed = {p for p, _, _ in files}
    assert {r["path"] for r in results} == listed  # the folder loop adds nothing
    errors = {r["path"]: r["error"] for r in results if "error" in r}
    assert set(errors) == _bad(files) and all(errors.values())
    assert all(len(r["topk"]) == 2 for r in results if "error" not in r)
    assert main(["predict", ckpt, root]) == 0
    cap = capsys.readouterr()
    for p in _bad(files):
        assert cap.err.count(f"{p}: unreadable (") == 1
    assert len(cap.out.splitlines()) == len(listed) - len(errors)


def test_report_lists_each_bad_file_of_the_split_once_with_its_reason(corpus, corpus_ckpt, tmp_path):
    root, files = corpus
    val_bad = {p for p in _bad(files) if os.sep + "val" + os.sep in p}
    assert val_bad
    page = tudui.report(corpus_ckpt, out=str(tmp_path / "r.html"), top=4, cam=False)
    text = open(page, encoding="utf-8").read()
    assert f'<dd id="skipped-count">{len(val_bad)}' in text
    listed = text.split('<ul class="skipped">', 1)[1].split("</ul>", 1)[0]
    items = [x.split("</li>", 1)[0] for x in listed.split("<li>")[1:]]
    assert len(items) == len(val_bad)
    for p in val_bad:  # "path: reason", escaped, once
        assert sum(x.startswith(str(escape(p)) + ": ") and len(x) > len(str(escape(p))) + 2 for x in items) == 1, p
    assert "<script>" not in listed


def test_serve_answers_each_hostile_upload_with_4xx_and_keeps_serving(corpus, corpus_ckpt):
    from fastapi.testclient import TestClient

    from tudui.serve.app import create_app
    from tudui.serve.model import open_model
    root, files = corpus
    app = create_app(open_model(corpus_ckpt), max_batch=1)
    sent = {"ok": 0, "bad": 0}
    with TestClient(app, raise_server_exceptions=False) as c:
        for p, kind, expect in files:
            data = hostile.client_bytes(p)
            if data is None:
                assert expect == "bad", p
                continue
            r = c.post("/predict", content=data, params={"name": os.path.basename(p)},
                       headers={"content-type": "application/octet-stream"})
            sent[expect] += 1
            if expect == "ok":
                assert r.status_code == 200, (kind, r.text)
                assert r.json()["path"] == os.path.basename(p) and len(r.json()["topk"]) == 2
            else:
                assert r.status_code in hostile.expected_status(kind, expect), (kind, r.status_code, r.text)
                assert r.json()["detail"].strip(), kind
        assert sent["ok"] and sent["bad"] >= len(hostile.SERVE_STATUS)
        assert c.get("/health").status_code == 200  # still serving
        good = next(p for p, _, e in files if e == "ok" and hostile.client_bytes(p))
        assert c.post("/predict", files={"file": ("x.jpg", hostile.client_bytes(good))}).status_code == 200


def test_a_warned_bomb_is_refused_without_a_raw_warning(tmp_path, digits_run):
    """144 megapixels: over Pillow's limit but under twice it, where Image.open *warns* (DecompressionBombWarning)
    instead of raising. `stats` and `predict` report the file like any refused file; no Python warning reaches
    stderr (issue 22). Child processes, so that pytest's own warning capture is not in the way."""
    import subprocess
    import sys

    from PIL import Image
    folder = tmp_path / "imgs" / "a"
    folder.mkdir(parents=True)
    big = folder / "big.png"
    big.write_bytes(hostile.png_header_only(12_000, 12_000))
    Image.new("L", (8, 8), 128).save(folder / "ok.png")
    (tmp_path / "imgs" / "b").mkdir()
    Image.new("L", (8, 8), 30).save(tmp_path / "imgs" / "b" / "ok.png")
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    for args in (["stats", str(tmp_path / "imgs")], ["predict", str(digits_run.best_path), str(big), str(folder / "ok.png")]):
        p = subprocess.run([sys.executable, "-m", "tudui", *args], capture_output=True, text=True, env=env, timeout=120)
        assert "Warning" not in p.stderr and "warn(" not in p.stderr, p.stderr
        assert "big.png" in p.stdout + p.stderr and "pixel limit" in p.stdout + p.stderr, (p.stdout, p.stderr)
