"""Export to ONNX / TorchScript: round trips (course net, resnet18, an imported course .pth, a user's module) with
the metadata read back by onnxruntime alone, predict/eval on the exported file equal to the checkpoint, and the
failures: a layer ONNX cannot express, a model that fixes its batch size, a file that would differ from PyTorch."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import tudui
from tudui.checkpoint import save as save_ckpt
from tudui.cli import main
from tudui.data.preprocess import make_preprocess
from tudui.export import ExportError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

SLOW_ONLY = pytest.mark.skipif(os.environ.get("TUDUI_SLOW") != "1", reason="heavy; run with TUDUI_SLOW=1")


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def settle_bn(model, shape, steps=3):
    """Random-weight zoo models give near-zero logits until BatchNorm has statistics: a few train-mode passes."""
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(8, *shape))
    return model.eval()


def zoo_checkpoint(path, name, size, classes=("ant", "bee", "cat"), **args):
    net = tudui.models.create(name, len(classes), in_channels=3, img_size=(size, size), **args)
    settle_bn(net, (3, size, size))
    pre = make_preprocess((size, size), 3, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    spec = {"name": name, "num_classes": len(classes), "in_channels": 3, "img_size": [size, size], "args": args}
    save_ckpt(str(path), model_state=net.state_dict(), model_spec=spec, classes=list(classes), preprocess=pre,
              config={})
    return str(path)


def images(folder, n=6, size=(37, 29), mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 256, (size[1], size[0], 3 if mode == "RGB" else 1), dtype=np.uint8)
        p = folder / f"{i}.png"
        Image.fromarray(arr.squeeze()).save(p)
        paths.append(str(p))
    return paths


# a program that reads the exported file with onnxruntime, numpy and Pillow only
STANDALONE = r"""
import json, sys
import numpy as np, onnxruntime as ort
from PIL import Image
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = sess.get_modelmeta().custom_metadata_map
classes, (h, w) = json.loads(meta["classes"]), json.loads(meta["input_size"])
mean, std = np.array(json.loads(meta["mean"]), np.float32), np.array(json.loads(meta["std"]), np.float32)
im = Image.open(sys.argv[2]).convert("RGB" if int(meta["channels"]) == 3 else "L").resize((w, h), Image.BILINEAR)
x = np.asarray(im, np.uint8).reshape(h, w, -1).transpose(2, 0, 1)[None].astype(np.float32) / 255.0
x = (x - mean.reshape(1, -1, 1, 1)) / std.reshape(1, -1, 1, 1)
logits = sess.run(None, {sess.get_inputs()[0].name: x})[0][0]
p = np.exp(logits - logits.max()); p /= p.sum()
assert not any(m == "tudui" or m.startswith("tudui.") for m in sys.modules)
print(json.dumps({"label": classes[int(p.argmax())], "prob": float(p.max()), "meta": dict(meta),
                  "input": sess.get_inputs()[0].name, "batch": sess.get_inputs()[0].shape[0]}))
"""


def read_without_tudui(onnx_path, image):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", STANDALONE, str(onnx_path), str(image)], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def assert_same_predictions(a, b, tol=1e-4):
    assert [r["path"] for r in a] == [r["path"] for r in b]
    for ra, rb in zip(a, b):
        assert [t["label"] for t in ra["topk"]] == [t["label"] for t in rb["topk"]] or \
            abs(ra["topk"][0]["prob"] - ra["topk"][1]["prob"]) < tol
        for ta in ra["topk"]:
            pb = {t["index"]: t["prob"] for t in rb["topk"]}
            if ta["index"] in pb:
                assert abs(ta["prob"] - pb[ta["index"]]) < tol


# ---------------------------------------------------------------------------------------------- round trips
def test_course_net_round_trip_cli(digits_run, tmp_path, capsys):
    out = tmp_path / "digits.onnx"
    rc, stdout, err = cli(capsys, "export", digits_run.best_path, "--out", out, "--json")
    assert rc == 0, err
    r = json.loads(stdout)
    assert r["path"] == str(out) and r["opset"] == 18 and r["checked_inputs"] >= 64
    assert r["batch_sizes"] == [1, 2, 7] and r["max_abs_diff"] < 1e-4
    img = images(tmp_path / "imgs", n=3, size=(8, 8), mode="L")
    standalone = read_without_tudui(out, img[0])
    meta = standalone["meta"]
    assert json.loads(meta["classes"]) == [str(i) for i in range(10)]
    assert json.loads(meta["input_size"]) == [8, 8] and meta["channels"] == "1"
    assert meta["tudui_version"] == tudui.__version__ and meta["format"] == "tudui-export"
    assert json.loads(meta["preprocess"]) == tudui.load(digits_run.best_path).preprocess
    assert standalone["input"] == "input" and isinstance(standalone["batch"], str)  # a named dynamic axis
    ck = tudui.predict(digits_run.best_path, img, topk=10)
    assert standalone["label"] == ck[0]["topk"][0]["label"]
    assert abs(standalone["prob"] - ck[0]["topk"][0]["prob"]) < 1e-4
    # predict and eval on the .onnx: the same output format and the same answers as on the checkpoint
    rc, stdout, _ = cli(capsys, "predict", out, *img, "--json", "--topk", "3")
    assert rc == 0
    assert_same_predictions(json.loads(stdout), tudui.predict(digits_run.best_path, img, topk=3))
    rc, stdout, _ = cli(capsys, "eval", out, "--json")
    assert rc == 0
    got, want = json.loads(stdout), tudui.evaluate(digits_run.best_path)
    assert got["confusion_matrix"] == want["confusion_matrix"] and got["num_samples"] == 359
    assert abs(got["loss"] - want["loss"]) < 1e-4
    assert got["accuracy"] == want["accuracy"]


def test_resnet18_round_trip_and_torchscript(tmp_path):
    ck = zoo_checkpoint(tmp_path / "r18.pt", "resnet18", 64)
    r = tudui.export(ck)
    assert r["path"] == str(tmp_path / "r18.onnx") and r["max_abs_diff"] < 1e-3
    img = images(tmp_path / "imgs", n=5)
    standalone = read_without_tudui(r["path"], img[0])
    assert json.loads(standalone["meta"]["classes"]) == ["ant", "bee", "cat"]
    assert json.loads(standalone["meta"]["model"])["name"] == "resnet18"
    want = tudui.predict(ck, img, topk=3)
    assert standalone["label"] == want[0]["topk"][0]["label"]
    assert_same_predictions(tudui.predict(r["path"], img, topk=3), want)
    ts = tudui.export(ck, format="torchscript")
    assert ts["path"] == str(tmp_path / "r18.torchscript.pt") and ts["max_abs_diff"] <= 1e-5
    extra = {"tudui.json": ""}
    torch.jit.load(ts["path"], _extra_files=extra)
    meta = json.loads(extra["tudui.json"])
    assert meta["classes"] == ["ant", "bee", "cat"] and meta["input_size"] == [64, 64]
    assert_same_predictions(tudui.predict(ts["path"], img, topk=3), want, tol=1e-6)


def test_imported_course_pth_round_trip(tmp_path, capsys):
    from test_import import Tudui, train_a_little
    torch.manual_seed(1)
    model = train_a_little(Tudui())
    torch.save(model, tmp_path / "tudui_9.pth")
    rc, _, err = cli(capsys, "import", tmp_path / "tudui_9.pth", "--model", "tudui", "--classes", "cifar10",
                     "--out", tmp_path / "imported.pt")
    assert rc == 0, err
    rc, _, err = cli(capsys, "export", tmp_path / "imported.pt")
    assert rc == 0, err
    assert "largest difference" in err
    img = images(tmp_path / "imgs", n=2, size=(41, 53))
    standalone = read_without_tudui(tmp_path / "imported.onnx", img[0])
    with torch.no_grad():  # the course's own script: Resize((32, 32)), ToTensor(), model(image)
        import torchvision.transforms as T
        x = T.Compose([T.Resize((32, 32)), T.ToTensor()])(Image.open(img[0]).convert("RGB"))[None]
        probs = model(x).softmax(1)[0]
    assert standalone["label"] == json.loads(standalone["meta"]["classes"])[int(probs.argmax())]
    assert abs(standalone["prob"] - float(probs.max())) < 1e-3  # PIL's and torchvision's resize differ slightly
    rc, stdout, _ = cli(capsys, "predict", tmp_path / "imported.onnx", *img, "--json")
    assert_same_predictions(json.loads(stdout), tudui.predict(tmp_path / "imported.pt", img, topk=3))


class MyNet(nn.Module):
    """A user's own module, with a layer that is not in tudui or torchvision."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.mix = nn.Sequential(nn.GroupNorm(2, 8), nn.Hardswish())
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.mix(self.stem(x)).amax((2, 3)))


def user_classifier(net):
    torch.manual_seed(0)
    pre = make_preprocess((16, 16), 3, [0.5] * 3, [0.25] * 3)
    return tudui.Classifier(model=net.eval(), classes=["a", "b", "c", "d"], preprocess=pre)


def test_user_module_exports_and_predicts(tmp_path):
    clf = user_classifier(MyNet())
    img = images(tmp_path / "imgs", n=3)
    want = tudui.predict(clf, img, topk=4)
    r = tudui.export(clf, out=tmp_path / "mine.onnx")
    assert_same_predictions(tudui.predict(r["path"], img, topk=4), want)
    r17 = tudui.export(clf, out=tmp_path / "mine17.onnx", opset=17)
    assert r17["opset"] == 17 and "torchscript-based" in r17["exporter"]
    assert_same_predictions(tudui.predict(r17["path"], img, topk=4), want)


# ---------------------------------------------------------------------------------------------- failures
class Eigen(nn.Module):
    def forward(self, x):
        m = x.flatten(2)[..., :4]
        return torch.linalg.eigvalsh(m.transpose(1, 2) @ m)


class WithEigen(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.spectrum = nn.Sequential(nn.ReLU(), Eigen())
        self.head = nn.Linear(4, 4)

    def forward(self, x):
        return self.head(self.spectrum(self.stem(x)))


class FixedBatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4 * 14 * 14, 4)

    def forward(self, x):
        return self.head(self.conv(x).reshape(2, -1))


class ValueBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 4)

    def forward(self, x):
        y = self.conv(x).mean((2, 3))
        if y.sum() > 0:
            y = y * 2
        return self.head(y)


def no_leftovers(folder, name):
    return [f for f in os.listdir(folder) if name in f] == []


def test_unsupported_layer_is_named(tmp_path):
    with pytest.raises(ExportError) as e:
        tudui.export(user_classifier(WithEigen()), out=tmp_path / "eig.onnx")
    msg = str(e.value)
    assert "layer 'spectrum.1' (Eigen)" in msg and "eigh" in msg and "\n" not in msg
    assert no_leftovers(tmp_path, "eig.onnx")


def test_value_dependent_branch_is_explained(tmp_path, capsys):
    with pytest.raises(ExportError) as e:
        tudui.export(user_classifier(ValueBranch()), out=tmp_path / "vb.onnx")
    assert "ValueBranch" in str(e.value) and "data-dependent" in str(e.value)
    assert no_leftovers(tmp_path, "vb.onnx")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_fixed_batch_size_fails_the_check_and_keeps_no_file(tmp_path, fmt):
    out = tmp_path / f"fixed.{fmt}"
    with pytest.raises(ExportError) as e:
        tudui.export(user_classifier(FixedBatch()), out=out, format=fmt)
    assert "batch size" in str(e.value) and "no file kept" in str(e.value)
    assert no_leftovers(tmp_path, "fixed")


def test_numeric_difference_is_reported_with_the_largest_difference(tmp_path, monkeypatch):
    """If the runtime's answers drift past the tolerance the export is refused, naming the largest difference."""
    import tudui.infer.onnx_model as om
    real = om.OnnxModule.forward
    monkeypatch.setattr(om.OnnxModule, "forward", lambda self, x: real(self, x) + 0.01)
    with pytest.raises(ExportError) as e:
        tudui.export(user_classifier(MyNet()), out=tmp_path / "drift.onnx")
    assert "largest difference 0.01" in str(e.value) and "no file kept" in str(e.value)
    assert no_leftovers(tmp_path, "drift")


def test_missing_dependency_is_one_line(tmp_path, capsys, monkeypatch, digits_run):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    rc, _, err = cli(capsys, "export", digits_run.best_path, "--out", tmp_path / "x.onnx")
    assert rc == 2 and "pip install 'tudui[export]'" in err and "Traceback" not in err
    rc, _, err = cli(capsys, "export", digits_run.best_path, "--format", "torchscript", "--opset", "17")
    assert rc == 2 and "ONNX only" in err


def test_not_a_tudui_onnx_file(tmp_path, capsys):
    import onnx
    from onnx import helper, TensorProto
    node = helper.make_node("Identity", ["x"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(g), tmp_path / "foreign.onnx")
    img = images(tmp_path / "imgs", n=1)
    rc, _, err = cli(capsys, "predict", tmp_path / "foreign.onnx", img[0])
    assert rc == 2 and "no tudui metadata" in err
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    rc, _, err = cli(capsys, "predict", tmp_path / "junk.onnx", img[0])
    assert rc == 2 and "onnxruntime can load" in err


# ---------------------------------------------------------------------------------------------- the zoo
def test_fastnet_exports(tmp_path):
    ck = zoo_checkpoint(tmp_path / "fast.pt", "fastnet", 32, widths="8,16,16")
    assert tudui.export(ck)["max_abs_diff"] < 1e-3
    assert tudui.export(ck, format="torchscript")["max_abs_diff"] <= 1e-5


@pytest.mark.slow
@SLOW_ONLY
@pytest.mark.parametrize("name, size", [("mobilenet_v3_small", 64), ("efficientnet_b0", 64), ("vgg11", 64),
                                        ("vit_b_16", 64)])
def test_zoo_exports(tmp_path, name, size):
    ck = zoo_checkpoint(tmp_path / f"{name}.pt", name, size)
    img = images(tmp_path / "imgs", n=3)
    want = tudui.predict(ck, img, topk=3)
    for fmt in ("onnx", "torchscript"):
        r = tudui.export(ck, format=fmt)
        assert_same_predictions(tudui.predict(r["path"], img, topk=3), want)


def test_torchscript_trace_of_a_value_branch_is_flagged(tmp_path):
    """Tracing fixes a branch taken on tensor values: either the check sees inputs taking the other branch and
    refuses, or the export reports the line of the user's code that the tracer fixed."""
    torch.manual_seed(3)
    clf = user_classifier(ValueBranch())
    try:
        r = tudui.export(clf, out=tmp_path / "vb.pt", format="torchscript")
    except ExportError as e:
        assert "differs from PyTorch" in str(e) and no_leftovers(tmp_path, "vb.pt")
    else:
        assert any(w.startswith("test_export.py:") and "Python boolean" in w for w in r["warnings"])
    assert tudui.export(user_classifier(MyNet()), out=tmp_path / "mine.pt", format="torchscript")["warnings"] == []
