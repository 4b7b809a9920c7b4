"""Hostile files (tests/hostile.py makes them in their real formats) through stats, train (memory and stream
loaders) and predict: no crash, no hang, every bad file reported exactly once with its reason, every good one
read. The 1,000-file run with wall time and peak memory is benchmarks/hostile_corpus.py."""

import pytest

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


def test_predict_reports_each_bad_file_and_classifies_the_rest(corpus, tmp_path, capsys):
    root, files = corpus
    ckpt = tudui.train(root, epochs=1, img_size=16, out=str(tmp_path), progress=False, threads=1).best_path
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
