"""`tudui import`: course-style .pth files (whole pickled module or state_dict, CPU- or GPU-tagged) become tudui
checkpoints without running code from the file, and predict exactly like the course's own script."""
import builtins
import json
import os
import subprocess
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import tudui
from tudui.cli import main
from tudui.importer import CIFAR10_CLASSES, extract_state_dict, read_pth
from tudui.importer.fit import _fit_named
from tudui.importer.statedict import _match


class Tudui(nn.Module):
    """The course's network, written as the course writes it."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(3, 32, 5, 1, 2), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 5, 1, 2), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, 1, 2), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 4 * 4, 64), nn.Linear(64, num_classes))

    def forward(self, x):
        return self.model(x)


class TuduiByName(nn.Module):
    """The same network with one attribute per layer (another way the course's notes write it)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.pool1 = nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(2)
        self.conv2, self.pool2 = nn.Conv2d(32, 32, 5, padding=2), nn.MaxPool2d(2)
        self.conv3, self.pool3 = nn.Conv2d(32, 64, 5, padding=2), nn.MaxPool2d(2)
        self.linear1, self.linear2 = nn.Linear(1024, 64), nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool3(self.conv3(self.pool2(self.conv2(self.pool1(self.conv1(x))))))
        return self.linear2(self.linear1(x.flatten(1)))


class Evil:
    """What a hostile .pth contains: unpickling it calls `func(*args)`."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def train_a_little(model, steps=2):
    torch.manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 2, (4,))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def save_tagged(obj, path, device="cuda:0"):
    """torch.save as on a GPU machine: every storage carries the device tag."""
    with mock.patch("torch.serialization.location_tag", lambda storage: device):
        torch.save(obj, path)


def course_probs(model, image_path):
    """The course's test.py: Resize((32, 32)) + ToTensor(), model(image), softmax."""
    import torchvision
    image = Image.open(image_path).convert("RGB")
    tf = torchvision.transforms.Compose([torchvision.transforms.Resize((32, 32)), torchvision.transforms.ToTensor()])
    with torch.no_grad():
        return model(tf(image).reshape(1, 3, 32, 32)).softmax(1)[0]


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    d = tmp_path_factory.mktemp("course")
    torch.manual_seed(1)
    model = train_a_little(Tudui())
    torch.save(model, d / "tudui_whole.pth")
    torch.save(model.state_dict(), d / "tudui_sd.pth")
    save_tagged(model, d / "tudui_29_gpu.pth")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (41, 53, 3), dtype=np.uint8)).save(d / "dog.png")
    return model, d


def test_whole_gpu_model_imports_and_predicts_like_the_course(course, capsys, tmp_path):
    model, d = course
    if not torch.cuda.is_available():  # the file really is GPU-tagged: plain torch.load fails on this machine
        with pytest.raises(RuntimeError):
            torch.load(d / "tudui_29_gpu.pth", weights_only=False)
    out = tmp_path / "model.pt"
    rc, stdout, _ = cli(capsys, "import", d / "tudui_29_gpu.pth", "--model", "tudui", "--classes", "cifar10",
                        "--out", out, "--json")
    assert rc == 0
    summary = json.loads(stdout)
    assert summary["saved_on"] == ["cuda:0"] and summary["kind"] == "whole model"
    assert summary["saved_class"].endswith(".Tudui") and summary["mapped"] == "by name"
    assert summary["classes"] == CIFAR10_CLASSES and summary["img_size"] == 32

    rc, stdout, _ = cli(capsys, "predict", out, d / "dog.png", "--json", "--topk", "10")
    assert rc == 0
    got = {t["index"]: t["prob"] for t in json.loads(stdout)[0]["topk"]}
    want = course_probs(model, d / "dog.png")
    assert sorted(got) == list(range(10))
    assert max(abs(got[i] - float(want[i])) for i in range(10)) < 1e-5

    ck = torch.load(out, weights_only=True)  # a normal tudui checkpoint
    assert ck["preprocess"]["mean"] == [0.0] * 3 and ck["preprocess"]["std"] == [1.0] * 3
    assert ck["config"]["data"] == "cifar10" and ck["config"]["model"] == "tudui"
    for k, v in model.state_dict().items():
        assert torch.equal(ck["state_dict"][k], v)


@pytest.mark.parametrize("name", ["tudui_sd.pth", "tudui_whole.pth"])
def test_state_dict_and_cpu_whole_model_give_the_same_weights(course, tmp_path, name):
    model, d = course
    r = tudui.import_pth(d / name, tmp_path / "m.pt", classes="cifar10")
    assert r["kind"] == ("state_dict" if "sd" in name else "whole model") and r["saved_on"] == ["cpu"]
    clf = tudui.load(tmp_path / "m.pt")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(clf.model(x), model(x), atol=1e-6)


def test_gpu_tagged_state_dict_and_old_format(course, tmp_path):
    model, d = course
    save_tagged(model.state_dict(), tmp_path / "sd_gpu.pth")
    torch.save(model.state_dict(), tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    torch.save(model, tmp_path / "old_whole.pth", _use_new_zipfile_serialization=False)
    for f in ("sd_gpu.pth", "old.pth", "old_whole.pth"):
        sd = extract_state_dict(read_pth(tmp_path / f)[0])[0]
        assert list(sd) == list(model.state_dict()), f
        assert all(torch.equal(sd[k], v) for k, v in model.state_dict().items()), f
    assert read_pth(tmp_path / "sd_gpu.pth")[1] == {"cuda:0"}


def test_other_layer_names_map_by_order(tmp_path, capsys):
    net = train_a_little(TuduiByName())
    torch.save(net, tmp_path / "byname.pth")
    rc, stdout, _ = cli(capsys, "import", tmp_path / "byname.pth", "--classes", ",".join("abcdefghij"),
                        "--out", tmp_path / "m.pt")
    assert rc == 0 and "by order" in stdout
    clf = tudui.load(tmp_path / "m.pt")
    assert clf.classes == list("abcdefghij")
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(clf.model(x), net(x), atol=1e-6)


@pytest.mark.parametrize("payload", [
    lambda marker: Evil(os.system, f"touch {marker}"),
    lambda marker: Evil(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
    lambda marker: Evil(subprocess.call, ["touch", str(marker)]),
    lambda marker: Evil(torch.save, {}, str(marker)),
    lambda marker: Evil(np.savetxt, str(marker), [1.0]),  # outside stdlib and torch: an inert stub, never called
])
def test_code_in_the_pickle_is_refused_and_never_runs(tmp_path, capsys, payload):
    marker = tmp_path / "pwned"
    net = Tudui()
    net.extra = payload(marker)  # hidden in a module attribute, as a tampered course file would
    torch.save(net, tmp_path / "evil.pth")
    assert not marker.exists()
    rc, stdout, err = cli(capsys, "import", tmp_path / "evil.pth", "--out", tmp_path / "m.pt")
    assert rc == 2 and stdout == ""
    assert "refused" in err and "nothing from the file was run" in err
    assert not marker.exists() and not (tmp_path / "m.pt").exists()
    assert len(err.strip().splitlines()) == 1


def test_zoo_model_saved_both_ways(tmp_path):
    import torchvision
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v3_small(num_classes=5).eval()
    torch.save(net, tmp_path / "method1.pth")  # the course's "method 1": the whole model
    save_tagged(net.state_dict(), tmp_path / "method2.pth")  # "method 2": its state_dict (here from a GPU)
    want = net.state_dict()
    for f in ("method1.pth", "method2.pth"):
        r = tudui.import_pth(tmp_path / f, tmp_path / "m.pt", model="mobilenet_v3_small")
        assert r["num_classes"] == 5 and r["mapped"] == "by name" and r["img_size"] == 224
        got = tudui.load(tmp_path / "m.pt").model.state_dict()  # loaded strictly: same weights, same outputs
        assert list(got) == list(want) and all(torch.equal(got[k], v) for k, v in want.items()), f


def test_vgg16_head_width_is_read_from_the_weights():
    import torchvision
    with torch.device("meta"):  # shapes only: vgg16 has 138M parameters
        net = torchvision.models.vgg16()
        net.classifier[6] = nn.Linear(4096, 10)
    target, _, classes, channels, size = _fit_named("vgg16", net.state_dict(), None)
    state, how = _match(net.state_dict(), target, "vgg16")
    assert classes == 10 and channels == 3 and size == 224 and how == "by name"
    assert list(state) == list(net.state_dict()) and state["classifier.6.weight"].shape == (10, 4096)


def test_mistakes_are_one_line_errors(course, tmp_path, capsys):
    _, d = course
    (tmp_path / "notes.pth").write_text("not a model")
    with_relu = Tudui()
    with_relu.model.insert(1, nn.ReLU())  # same weights by order, different function: must not import silently
    torch.save(with_relu, tmp_path / "relu.pth")
    cases = [
        (["import", tmp_path / "notes.pth"], "not a file written by torch.save"),
        (["import", d / "missing.pth"], "file not found"),
        (["import", d / "tudui_sd.pth", "--model", "resnet18"], "not a resnet18"),
        (["import", d / "tudui_sd.pth", "--classes", "a,b"], "2 names but the model has 10 outputs"),
        (["import", d / "tudui_sd.pth", "--img-size", "64"], "shape"),
        (["import", tmp_path / "relu.pth"], "layers the course's Tudui lacks: model.1 (ReLU)"),
    ]
    for argv, expected in cases:
        rc, stdout, err = cli(capsys, *argv, "--out", tmp_path / "m.pt")
        assert rc == 2 and expected in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not (tmp_path / "m.pt").exists()


def test_eval_needs_data_unless_recorded(course, tmp_path, capsys):
    _, d = course
    torch.manual_seed(0)
    net = Tudui(num_classes=2).eval()
    torch.save(net.state_dict(), tmp_path / "two.pth")
    assert tudui.import_pth(tmp_path / "two.pth", tmp_path / "m.pt", classes="cat,dog")["num_classes"] == 2
    rc, _, err = cli(capsys, "eval", tmp_path / "m.pt")
    assert rc == 2 and "--data" in err
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        for c in ("cat", "dog"):
            (tmp_path / "data" / split / c).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
                    tmp_path / "data" / split / c / f"{i}.png")
    rc, stdout, _ = cli(capsys, "eval", tmp_path / "m.pt", "--data", tmp_path / "data", "--json")
    assert rc == 0 and json.loads(stdout)["num_samples"] == 4


def test_setting_state_on_anything_but_a_module_stub_is_refused(tmp_path):
    import zipfile
    from tudui.importer import UnsafePickle
    # protocol 2: set() followed by BUILD with a dict, which would call a real object's __setstate__
    with zipfile.ZipFile(tmp_path / "odd.pth", "w") as zf:
        zf.writestr("odd/data.pkl", b"\x80\x02c__builtin__\nset\n)R}b.")
    with pytest.raises(UnsafePickle, match="sets the state of a set"):
        read_pth(tmp_path / "odd.pth")


def test_squeezenet_head_is_its_final_conv(tmp_path):
    """SqueezeNet classifies with a 1x1 conv, not a Linear: its class count is read from that conv."""
    import torchvision
    torch.manual_seed(0)
    net = torchvision.models.squeezenet1_1(num_classes=4).eval()
    save_tagged(net.state_dict(), tmp_path / "sq.pth")
    r = tudui.import_pth(tmp_path / "sq.pth", tmp_path / "m.pt", model="squeezenet1_1", classes="a,b,c,d")
    assert r["num_classes"] == 4 and r["mapped"] == "by name"
    clf = tudui.load(tmp_path / "m.pt")
    got, want = clf.model.state_dict(), net.state_dict()
    assert all(torch.equal(got[k], v) for k, v in want.items())
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(clf.model.eval()(x), net(x), atol=1e-5)
