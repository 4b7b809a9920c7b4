"""Datasets and configs from elsewhere: CSV paths leading outside the CSV's folder are refused unless
--allow-outside; a CSV or label file in a wrong encoding gets one line naming the line; YAML configs with
tags or anchors (alias bombs) are refused."""
import os

import numpy as np
import pytest
from PIL import Image

from tudui.cli import main
from tudui.config import resolve
from tudui.data import load_source
from tudui.errors import ConfigError, DataError


def _img(path, v=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), v, np.uint8)).save(path)


@pytest.fixture
def tree(tmp_path):
    """tmp/ds/{a,b}/*.png with labels.csv inside, and tmp/secret/x.png outside it."""
    ds = tmp_path / "ds"
    for i in range(4):
        _img(ds / "a" / f"{i}.png", 10)
        _img(ds / "b" / f"{i}.png", 200)
    _img(tmp_path / "secret" / "x.png", 99)
    rows = [f"a/{i}.png,a" for i in range(4)] + [f"b/{i}.png,b" for i in range(4)]
    return ds, rows


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink-file", "symlink-dir"])
def test_csv_paths_outside_are_refused_unless_allowed(tree, kind, capsys):
    ds, rows = tree
    secret = ds.parent / "secret" / "x.png"
    if kind == "dotdot":
        rows.append("../secret/x.png,a")
    elif kind == "absolute":
        rows.append(f"{secret},a")
    elif kind == "symlink-file":
        os.symlink(secret, ds / "a" / "link.png")
        rows.append("a/link.png,a")
    else:
        os.symlink(secret.parent, ds / "out")
        rows.append("out/x.png,a")
    csv = ds / "labels.csv"
    csv.write_text("path,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"line 10: .* is outside the CSV's folder .*--allow-outside"):
        load_source(str(csv))
    assert main(["stats", str(csv)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 10" in err
    assert len(load_source(str(csv), allow_outside=True).splits["train"]) + 0 > 0
    assert main(["stats", str(csv), "--allow-outside", "--json"]) == 0
    with pytest.raises(DataError, match="outside"):
        resolve({"data": str(csv)}) and __import__("tudui").train(str(csv), epochs=1, progress=False)
    assert resolve({"data": str(csv), "allow_outside": True}).allow_outside is True


def test_symlinks_inside_the_folder_are_fine(tree):
    ds, rows = tree
    os.symlink(ds / "a" / "0.png", ds / "a" / "alias.png")
    (ds / "labels.csv").write_text("\n".join(rows + ["a/alias.png,a"]) + "\n")
    assert load_source(str(ds / "labels.csv"))


@pytest.mark.parametrize("encoding,line", [("latin-1", 4), ("cp1252", 4), ("utf-16-le-nobom", 1)])
def test_csv_in_a_wrong_encoding_names_the_line(tree, encoding, line, capsys):
    ds, rows = tree
    rows[2] = "a/2.png,ä-class"
    text = "path,label\n" + "\n".join(rows) + "\n"
    raw = text.encode("utf-16-le") if encoding == "utf-16-le-nobom" else text.encode(encoding)
    (ds / "labels.csv").write_bytes(raw)
    with pytest.raises(DataError, match=f"line {line} is not UTF-8 text"):
        load_source(str(ds / "labels.csv"))
    assert main(["stats", str(ds / "labels.csv")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_csv_with_bom_or_utf16_bom_reads(tree):
    ds, rows = tree
    text = "path,label\n" + "\n".join(rows) + "\n"
    for raw in (b"\xef\xbb\xbf" + text.encode(), text.encode("utf-16")):
        (ds / "labels.csv").write_bytes(raw)
        assert load_source(str(ds / "labels.csv")).classes == ["a", "b"]


def _label_layout(tmp_path, label_bytes):
    for split in ("train", "val"):
        for c in ("ants", "bees"):
            for i in range(2):
                _img(tmp_path / split / "x_image" / f"{c}{i}.jpg", 50 if c == "ants" else 150)
                (tmp_path / split / "x_label").mkdir(parents=True, exist_ok=True)
                (tmp_path / split / "x_label" / f"{c}{i}.txt").write_bytes(c.encode())
    bad = tmp_path / "train" / "x_label" / "bees1.txt"
    bad.write_bytes(label_bytes)
    return bad


def test_label_file_in_a_wrong_encoding_names_the_file_and_line(tmp_path, capsys):
    bad = _label_layout(tmp_path, b"\n\n\xff\xfe\xfa bees\x00\n")  # not UTF-8/UTF-16/GBK text
    with pytest.raises(DataError, match=f"label file {bad} line 3 is not text"):
        load_source(str(tmp_path))
    assert main(["stats", str(tmp_path)]) == 2 and capsys.readouterr().err.count("\n") == 1


def test_label_file_in_utf16_or_gbk_reads(tmp_path):
    _label_layout(tmp_path, "bees".encode("utf-16"))
    assert load_source(str(tmp_path)).classes == ["ants", "bees"]


@pytest.mark.parametrize("text,what", [
    ("epochs: !!python/object/apply:os.system ['touch {marker}']\n", "tags"),
    ("lr: !!float 0.1\n", "tags"),
    ("model_args: !custom {{a: 1}}\n", "tags"),
    ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nmodel_args: {{d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]}}\n", "anchors"),
])
def test_yaml_tags_and_anchor_bombs_are_refused(tmp_path, text, what, capsys):
    marker = tmp_path / "ran"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text.format(marker=marker))
    with pytest.raises(ConfigError, match=f"line [0-9]+: YAML {what}"):
        resolve(config_file=str(cfg))
    assert main(["train", "--config", str(cfg), "--print-config"]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not marker.exists()
    assert main(["train", "--model-arg", "x=!!python/name:os.system", "--print-config"]) == 2
