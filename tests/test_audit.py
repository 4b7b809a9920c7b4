"""tudui audit: each issue type on generated data with known answers, decisions applied by training, bad input,
the page in Chromium (its decision export), and an interrupted audit."""
import csv
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import tudui
from tudui.audit import findings, labels as cl
from tudui.cli import main
from tudui.data import load_source
from tudui.data.decisions import apply_decisions, read_decisions

SIDE = 32
CLASSES = ("a", "b", "c")


def _image(rng, cls: int) -> np.ndarray:
    """A smooth random field (no two alike) plus the class's bright region."""
    field = np.asarray(Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).resize(
        (SIDE, SIDE), Image.BICUBIC), dtype=np.float32) * 0.6
    mark = np.zeros((SIDE, SIDE, 1), np.float32)
    if cls == 0:
        mark[:SIDE // 2] = 130
    elif cls == 1:
        mark[:, :SIDE // 2] = 130
    else:
        mark[SIDE // 4:3 * SIDE // 4, SIDE // 4:3 * SIDE // 4] = 130
    return np.clip(field + mark, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """root/{train,val}/{a,b,c}/*.png with known problems; -> (root, answers)."""
    root = tmp_path_factory.mktemp("auditdata") / "data"
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("val", 8)):
        for c, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(_image(rng, c)).save(root / split / name / f"{name}{i:02d}.png")
    wrong = []
    for i in range(3):  # an image of class i filed under class i + 1
        p = f"train/{CLASSES[(i + 1) % 3]}/wrong{i}.png"
        Image.fromarray(_image(rng, i)).save(root / p)
        wrong.append(p)
    shutil.copy(root / "train/a/a05.png", root / "train/a/copy.png")  # exact duplicate
    shutil.copy(root / "train/c/c03.png", root / "val/c/leak.png")  # leak
    Image.open(root / "train/b/b07.png").save(root / "train/b/near.jpg", quality=50)  # near duplicate
    Image.new("RGB", (SIDE, SIDE), (128, 128, 128)).save(root / "train/c/blank.png")
    Image.fromarray(_image(rng, 2)).resize((8, 8)).save(root / "train/c/tiny.png")
    (root / "train/a/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    answers = {"label": wrong, "exact_duplicate": ["train/a/copy.png"], "leak": ["val/c/leak.png"],
               "near_duplicate": ["train/b/near.jpg"], "odd": ["train/c/blank.png", "train/c/tiny.png"],
               "unreadable": ["train/a/broken.png"]}
    return root, answers


@pytest.fixture(scope="module")
def audited(dataset, tmp_path_factory):
    root, answers = dataset
    out = tmp_path_factory.mktemp("audit") / "out"
    result = tudui.audit(str(root), out=str(out), folds=2, epochs=12, batch_size=16, lr=0.02, device="cpu",
                         progress=False, seed=0)
    return result, out, answers


def _ids(result, issue):
    return {r["id"] for r in result.rows if r["issue"] == issue}


def test_each_issue_found(audited):
    result, out, answers = audited
    for issue in ("exact_duplicate", "leak", "near_duplicate", "odd", "unreadable"):
        assert _ids(result, issue) == set(answers[issue]), issue
    flagged = _ids(result, "label")
    assert set(answers["label"]) <= flagged, flagged
    assert len(flagged) <= len(answers["label"]) + 2  # a few false alarms at most
    by_id = {r["id"]: r for r in result.rows if r["issue"] == "label"}
    assert [(by_id[p]["given"], by_id[p]["suggested"]) for p in answers["label"]] == [("b", "a"), ("c", "b"),
                                                                                      ("a", "c")]
    assert result.rows[0]["issue"] == "leak" and result.rows[0]["other"] == "train/c/c03.png"
    leak_acc = result.summary["leak_accuracy"]
    assert leak_acc and leak_acc[0]["split"] == "val" and leak_acc[0]["leaked"] == 1
    # the files: every row once, ranked within its issue; nothing left of the staging folder
    assert sorted(os.listdir(out)) == ["audit.html", "issues.csv", "issues.json"]
    with open(out / "issues.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["rank", "issue", "path", "split", "score", "given_label", "suggested_label", "other",
                             "detail"]
    assert len(rows) == len(result.rows)
    labels_ranked = [float(r["score"]) for r in rows if r["issue"] == "label"]
    assert labels_ranked == sorted(labels_ranked, reverse=True)
    data = json.loads((out / "issues.json").read_text(encoding="utf-8"))
    assert data["counts"]["leak"] == 1 and len(data["rows"]) == len(rows)


def test_ensemble_averages_repeated_cross_validation(dataset):
    root, answers = dataset
    result = tudui.audit(str(root), out=None, split="train", folds=2, ensemble=2, epochs=12, batch_size=16, lr=0.02,
                         near="none", device="cpu", progress=False, seed=0)
    assert result.summary["ensemble"] == 2 and len(result.summary["seconds_per_fold"]) == 4
    probs = result.details["probs"][result.details["split"] == "train"]
    assert np.allclose(probs.sum(1), 1, atol=1e-4)  # an average of probabilities is one
    assert set(answers["label"]) <= _ids(result, "label")
    with pytest.raises(tudui.errors.ConfigError, match="--ensemble"):
        tudui.audit(str(root), out=None, ensemble=0, progress=False)


def test_confident_learning_known_answer():
    # two classes; the model is sure examples 0 and 5 belong to the other class
    probs = np.array([[0.1, 0.9], [0.9, 0.1], [0.8, 0.2], [0.85, 0.15], [0.7, 0.3],
                      [0.95, 0.05], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7], [0.25, 0.75]])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    for method in cl.METHODS:
        assert np.flatnonzero(cl.find_label_issues(probs, labels, method)).tolist() == [0, 5]
    q = cl.quality(probs, labels)
    assert q.argsort()[:2].tolist() == [5, 0]
    assert cl.suggested(probs, labels)[[0, 5]].tolist() == [1, 0]


def test_outlier_and_imbalance_known_answer():
    rng = np.random.default_rng(1)
    centres = 6 * np.eye(16)
    feats = np.concatenate([rng.normal(0, 0.5, (60, 16)) + centres[i] for i in range(2)] + [centres[5:6]])
    labels = np.array([0] * 60 + [1] * 60 + [0])
    z_all, z_class, _ = findings.outlier_scores(feats, labels, k=5)
    assert z_all.argmax() == 120 and max(z_all[120], z_class[120]) > 3.5
    assert max(np.delete(z_all, 120).max(), np.delete(z_class, 120).max()) < z_all[120] - 1
    from tudui.audit.pool import Pool
    y = np.array([0] * 50 + [1] * 5 + [0] * 10 + [1] * 10)
    pool = Pool(images=None, labels=y, split=np.array(["train"] * 55 + ["val"] * 20, dtype=object),
                index=np.arange(75), ids=[], classes=["x", "y"], split_names=["train", "val"])
    found = findings.imbalance(pool)
    assert [b["flagged"] for b in found] == [True, False] and found[0]["ratio"] == 10.0


def _train_dir(root, tmp_path, **kw):
    return tudui.train(str(root), epochs=1, batch_size=32, device="cpu", progress=False, out=str(tmp_path / "runs"),
                       **kw)


def test_decisions_drop_and_relabel_exactly_those(dataset, tmp_path):
    root, answers = dataset
    dec = tmp_path / "decisions.csv"
    dec.write_text("path,split,action,label\ntrain/b/wrong0.png,train,relabel,a\ntrain/a/copy.png,train,drop,\n"
                   "val/c/leak.png,val,drop,\ntrain/c/c01.png,train,keep,\n", encoding="utf-8")
    src = load_source(str(root))
    new, record = apply_decisions(src, read_decisions(decisions=str(dec)), str(root))
    paths = {s: [os.path.relpath(p, root) for p in new.splits[s].paths] for s in new.splits}
    assert "train/a/copy.png" not in paths["train"] and "val/c/leak.png" not in paths["val"]
    assert len(paths["train"]) == len(src.train) - 1 and len(paths["val"]) == len(src.val) - 1
    changed = [(p, new.classes[t]) for p, t, old in zip(new.train.paths, new.train.targets,
                                                         [src.train.targets[src.train.paths.index(p)]
                                                          for p in new.train.paths]) if src.classes[old] != new.classes[t]]
    assert [(os.path.relpath(p, root), c) for p, c in changed] == [("train/b/wrong0.png", "a")]
    result = _train_dir(root, tmp_path, decisions=str(dec))
    rec = json.loads(open(os.path.join(result.run_dir, "decisions.json"), encoding="utf-8").read())
    assert sorted(d["id"] for d in rec["dropped"]) == ["train/a/copy.png", "val/c/leak.png"]
    assert rec["relabelled"] == [{"id": "train/b/wrong0.png", "split": "train", "from": "b", "to": "a"}]
    page = tudui.report(result.run_dir, cam=False)  # the report says what the run applied
    assert "dropped 2 images and relabelled 1" in open(page, encoding="utf-8").read()
    # eval on the run's own data leaves out what the run left out; --exclude leaves out more on top
    ev = tudui.evaluate(result.run_dir)
    assert ev["num_samples"] == len(src.val) - 1 and ev["decisions"]["dropped"] == 1
    more = tmp_path / "leaks.csv"
    more.write_text("path,issue\nval/a/a00.png,leak\n", encoding="utf-8")
    ev2 = tudui.evaluate(result.run_dir, exclude=str(more))
    assert ev2["num_samples"] == len(src.val) - 2 and ev2["decisions"]["dropped"] == 2
    assert tudui.evaluate(result.run_dir, data=str(root))["num_samples"] == len(src.val)  # --data: all of it


def test_eval_applies_decisions_cli(dataset, tmp_path, capsys):
    root, _ = dataset
    result = _train_dir(root, tmp_path)
    leaks = tmp_path / "leaks.csv"
    leaks.write_text("path\nval/c/leak.png\nval/b/b00.png\n", encoding="utf-8")
    assert main(["eval", result.run_dir, "--exclude", str(leaks)]) == 0
    out = capsys.readouterr().out
    assert f"split val: {len(load_source(str(root)).val) - 2} images (2 left out, 0 relabelled by {leaks})" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nval/b/b00.png,zebra\n", encoding="utf-8")
    assert main(["eval", result.run_dir, "--relabel", str(bad)]) == 2
    assert "'zebra' is not a class" in capsys.readouterr().err


@pytest.mark.parametrize("flag,content,expect", [
    ("--relabel", "path,label\ntrain/b/wrong0.png,zebra\n", "'zebra' is not a class"),
    ("--exclude", "path\n../elsewhere/x.png\n", "outside the dataset"),
    ("--exclude", "path\ntrain/a/a01.png\n".encode("utf-16-le"), "not UTF-8"),
    ("--exclude", "path\ntrain/a/caf\xe9.png\n".encode("latin-1"), "not UTF-8"),
])
def test_bad_decisions_one_line_exit_2(dataset, tmp_path, capsys, flag, content, expect):
    root, _ = dataset
    f = tmp_path / "bad.csv"
    f.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    rc = main(["train", "--data", str(root), flag, str(f), "--epochs", "1", "--out", str(tmp_path / "runs"),
               "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and expect in err[-1] and err[-1].startswith("tudui train: error:"), err
    assert not (tmp_path / "runs").exists()  # refused before any run folder


def test_interrupted_audit_leaves_no_half_written_files(dataset, tmp_path, monkeypatch):
    root, _ = dataset
    out = tmp_path / "out"
    out.mkdir()
    (out / "issues.csv").write_text("earlier audit\n", encoding="utf-8")
    from tudui.report import html

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(html, "render", interrupted)  # Ctrl-C while the page is built, after the CSV is written
    with pytest.raises(KeyboardInterrupt):
        tudui.audit(str(root), out=str(out), folds=0, device="cpu", progress=False)
    assert os.listdir(out) == ["issues.csv"]
    assert (out / "issues.csv").read_text(encoding="utf-8") == "earlier audit\n"


def test_page_in_chromium_exports_decisions(audited, dataset, tmp_path):
    from browser import browser
    result, out, answers = audited
    with browser() as page:
        page.goto((out / "audit.html").as_uri())
        assert page.locator("#leak .card").count() == 1
        card = page.locator("#label .card", has=page.locator("text=train/b/wrong0.png")).first
        assert card.locator(".given-ex img").count() > 0 and card.locator(".sugg-ex img").count() > 0
        card.locator("select.cls").select_option("a")  # choosing a class marks the card relabel
        page.locator("#leak .card input[value=drop]").check()
        assert page.locator("#decided").inner_text() == "2 decisions"
        with page.expect_download() as dl:
            page.locator("#export").click()
        saved = tmp_path / "decisions.csv"
        dl.value.save_as(saved)
        assert not page.console_errors and not page.page_errors
        assert all(u.startswith(("file:", "data:", "blob:")) for u in page.requested_urls)
    rows = list(csv.DictReader(open(saved, encoding="utf-8")))
    assert {(r["path"], r["action"], r["label"]) for r in rows} == {("train/b/wrong0.png", "relabel", "a"),
                                                                    ("val/c/leak.png", "drop", "")}
    root = dataset[0]  # the saved file is what training accepts
    new, record = apply_decisions(load_source(str(root)), read_decisions(decisions=str(saved)), str(root))
    assert len(record["dropped"]) == 1 and len(record["relabelled"]) == 1
