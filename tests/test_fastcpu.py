"""Fast on the CPU (issue 26): --amp auto, int8 export checked on the run's validation split, the torch.export
(.pt2) format, --engine onnx, and `tudui bench` rows. No timing is asserted: speed figures live in benchmarks/."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import tudui
from tudui.cli import main

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def cli(capsys, *argv):
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def digit_folder(folder, n=24):
    from sklearn.datasets import load_digits
    d = load_digits()
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray((d.images[i] * 16).clip(0, 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def top1_labels(results):
    return [r["topk"][0]["label"] for r in results]


# ------------------------------------------------------------------------------------------------- --amp auto
def test_amp_auto_follows_native_bf16(monkeypatch):
    from tudui import device
    from tudui.engine.runtime import amp_dtype
    monkeypatch.setattr(device, "native_bf16_cpu", lambda: ["avx512_bf16", "amx_bf16"])
    assert device.auto_amp("cpu") == ("bf16", "the CPU has avx512_bf16, amx_bf16")
    assert amp_dtype("auto", torch.device("cpu")) == torch.bfloat16
    monkeypatch.setattr(device, "native_bf16_cpu", lambda: [])
    assert device.auto_amp("cpu")[0] == "none"
    assert amp_dtype("auto", torch.device("cpu")) is None
    assert tudui.env_info()["amp_auto"] == "fp32"
    monkeypatch.undo()
    monkeypatch.setattr(device, "cpu_flags", lambda: ["fpu", "avx2", "amx_bf16"])
    assert device.native_bf16_cpu() == ["amx_bf16"]


# ------------------------------------------------------------------------------------------------- int8
@pytest.fixture(scope="module")
def int8_file(digits_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "digits.int8.onnx"
    r = tudui.export(digits_run.best_path, out, int8=True, calibration=128, max_drop=5.0)
    return str(out), r


def test_int8_export_accuracy_and_metadata(int8_file, digits_run):
    import onnx
    path, r = int8_file
    q = r["int8"]
    assert q["calibration_images"] == 128 and q["val_images"] == 359
    assert q["drop"] == pytest.approx(q["accuracy_fp32"] - q["accuracy_int8"], abs=1e-3) and q["drop"] <= 5.0
    assert q["accuracy_fp32"] == pytest.approx(100 * tudui.evaluate(digits_run.best_path)["accuracy"], abs=1e-3)
    proto = onnx.load(path)
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["classes"]) == [str(i) for i in range(10)] and meta["format"] == "tudui-export"
    stored = json.loads(meta["quantization"])
    assert stored["accuracy_int8"] == q["accuracy_int8"] and stored["accuracy_fp32"] == q["accuracy_fp32"]
    # eval on the int8 file reproduces the accuracy the export measured
    assert 100 * tudui.evaluate(path)["accuracy"] == pytest.approx(q["accuracy_int8"], abs=1e-3)


def test_int8_file_predicts_and_serves(int8_file, tmp_path, capsys):
    from fastapi.testclient import TestClient

    from tudui.serve.app import create_app
    from tudui.serve.model import open_model
    path, _ = int8_file
    folder = digit_folder(tmp_path / "imgs", n=6)
    rc, out, err = cli(capsys, "predict", path, folder, "--json", "--topk", "2")
    assert rc == 0, err
    rows = json.loads(out)
    assert len(rows) == 6 and all(len(r["topk"]) == 2 for r in rows)
    with TestClient(create_app(open_model(path)), raise_server_exceptions=False) as c:
        with open(folder / "00.png", "rb") as fh:
            got = c.post("/predict?topk=2", files={"file": ("00.png", fh, "image/png")})
    assert got.status_code == 200, got.text
    assert got.json()["topk"] == rows[0]["topk"]


def outlier_checkpoint(src: str, dst: str, pairs) -> str:
    """The same function as `src` (the course net on digits: no activations between its layers), with one output
    channel of each first layer of `pairs` scaled by 1e4 and the next layer's input scaled back: float32
    answers are unchanged, but that tensor's int8 range is swamped by the outlier channel."""
    from tudui import checkpoint as ck
    d = ck.load(src)
    sd = {k: v.clone() for k, v in d["state_dict"].items()}
    for a, b in pairs:
        sd[a + ".weight"][0] *= 1e4
        sd[a + ".bias"][0] *= 1e4
        sd[b + ".weight"][:, 0] /= 1e4
    ck.save(dst, model_state=sd, model_spec=d["model"], classes=d["classes"], preprocess=d["preprocess"],
            config=d["config"])
    return dst


def test_int8_keeps_the_layers_that_lose_in_float32(digits_run, tmp_path, capsys):
    ckpt = outlier_checkpoint(digits_run.best_path, str(tmp_path / "o.pt"), [("model.0", "model.2")])
    rc, out, err = cli(capsys, "export", ckpt, "--int8", "--out", tmp_path / "o.onnx", "--max-drop", "1")
    assert rc == 0, err
    assert "kept in float32 (they lost most when quantized): model.2 (node_conv2d_1), model.0 (node_conv2d)" in out
    assert "int8: with 2 layer(s) kept in float32" in err


def test_int8_max_drop_zero_refuses(digits_run, tmp_path, capsys):
    ckpt = outlier_checkpoint(digits_run.best_path, str(tmp_path / "o.pt"),
                              [("model.0", "model.2"), ("model.4", "model.7"), ("model.7", "model.8")])
    out = tmp_path / "q.onnx"
    rc, stdout, err = cli(capsys, "export", ckpt, "--int8", "--out", out, "--max-drop", "0", "--calibration", "64")
    assert rc == 2 and not out.exists() and not list(tmp_path.glob("*.tmp*"))
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1 and "more than --max-drop 0" in lines[0] and "Traceback" not in err


def test_int8_only_for_onnx(digits_run, capsys):
    rc, _, err = cli(capsys, "export", digits_run.best_path, "--int8", "--format", "pt2")
    assert rc == 2 and "--int8 writes ONNX" in err


# ------------------------------------------------------------------------------------------------- pt2
def test_pt2_round_trip(digits_run, tmp_path, capsys):
    out = tmp_path / "digits.pt2"
    rc, stdout, err = cli(capsys, "export", digits_run.best_path, "--format", "pt2", "--out", out, "--json")
    assert rc == 0, err
    r = json.loads(stdout)
    assert r["exporter"] == "torch.export" and r["batch_sizes"] == [1, 2, 7] and r["max_abs_diff"] <= 1e-5
    pred = tudui.open_predictor(out)
    assert pred.kind == "pt2" and pred.classes == [str(i) for i in range(10)]
    assert pred.preprocess == tudui.load(digits_run.best_path).preprocess
    folder = digit_folder(tmp_path / "imgs", n=8)
    want = tudui.predict(digits_run.best_path, [folder], topk=3)
    got = tudui.predict(str(out), [folder], topk=3)
    assert top1_labels(got) == top1_labels(want)
    for a, b in zip(got, want):
        assert abs(a["topk"][0]["prob"] - b["topk"][0]["prob"]) < 1e-5
    assert tudui.evaluate(str(out))["confusion_matrix"] == tudui.evaluate(digits_run.best_path)["confusion_matrix"]


# ------------------------------------------------------------------------------------------------- --engine onnx
def test_engine_onnx_same_top1_as_eager(digits_run, tmp_path, capsys):
    folder = digit_folder(tmp_path / "imgs")
    rc, out, err = cli(capsys, "predict", digits_run.best_path, folder, "--engine", "onnx", "--json")
    assert rc == 0, err
    onnx_rows = json.loads(out)
    eager = tudui.predict(digits_run.best_path, [folder], topk=3)
    assert top1_labels(onnx_rows) == top1_labels(eager) and len(eager) == 24
    from tudui.serve.model import open_model
    served = open_model(digits_run.best_path, engine="onnx")  # what `tudui serve --engine onnx` runs
    assert served.kind == "onnx" and served.meta["path"] == digits_run.best_path


# ------------------------------------------------------------------------------------------------- bench
def test_bench_gives_every_row_and_skips_absent_engines(digits_run, capsys, monkeypatch):
    import importlib.util

    from tudui.bench import FORMATS, runners
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    monkeypatch.setattr(runners, "_compiler", lambda: False)  # torch.compile and AOTInductor: no C++ compiler
    rc, out, err = cli(capsys, "bench", digits_run.best_path, "--json", "--seconds", "0.05", "--latency-runs", "3",
                       "--calibration", "64", "--batch", "16")
    assert rc == 0, err
    r = json.loads(out)
    assert [row["format"] for row in r["rows"]] == list(FORMATS)
    rows = {row["format"]: row for row in r["rows"]}
    for name in ("compile", "aoti", "openvino"):
        assert rows[name]["status"] == "skipped" and rows[name]["note"]
    assert "pip install 'tudui[openvino]'" in rows["openvino"]["note"]
    assert "compiler" in rows["compile"]["note"] and "compiler" in rows["aoti"]["note"]
    ok = [row for row in r["rows"] if row["status"] == "ok"]
    assert len(ok) == 6
    for row in ok:
        assert row["latency_p50_ms"] > 0 and row["latency_p99_ms"] >= row["latency_p50_ms"]
        assert row["throughput"] > 0 and row["batch"] == 16 and 0 <= row["accuracy"] <= 100
        assert row["bytes"] > 0
    assert rows["onnx"]["accuracy"] == rows["eager"]["accuracy"]
    assert rows["onnx-int8"]["int8"]["calibration_images"] == 64
    assert "bench: [9/9] OpenVINO float32: skipped" in err  # progress on stderr
    assert r["machine"]["cpu"] and r["val_images"] == 359


def test_bench_unknown_format_is_one_line(digits_run, capsys):
    rc, _, err = cli(capsys, "bench", digits_run.best_path, "--formats", "eager,tensorrt")
    assert rc == 2 and "unknown bench format(s) tensorrt" in err
