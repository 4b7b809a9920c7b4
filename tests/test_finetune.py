"""Fine-tuning: local and pretrained weights (offline-safe), freezing, --backbone-lr, presets, checkpoints of
fine-tuned and user-defined models that rebuild themselves for eval and predict."""
import json
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import tudui
from tudui.config import TrainConfig
from tudui.errors import CheckpointError, ConfigError, TuduiError
from tudui.models import apply_preset, build, create, freeze_backbone
from tudui.models import weights as weights_mod
from tudui.models.weights import IMAGENET_MEAN


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two easy classes (bright vs dark squares), 8 images each."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for cls, base in (("bright", 190), ("dark", 40)):
        (root / cls).mkdir()
        for i in range(8):
            px = np.clip(base + rng.normal(0, 20, (24, 24, 3)), 0, 255).astype("uint8")
            Image.fromarray(px).save(root / cls / f"{i}.png")
    return root


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """torch hub's cache in a temporary folder, so no real cache (or download) is involved."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(old)


@pytest.fixture
def network_hangs(monkeypatch):
    """Every connection attempt blocks (an offline machine whose packets vanish), until the test ends."""
    release = threading.Event()

    def hang(*args, **kwargs):
        release.wait(60)
        raise OSError("unreachable")
    monkeypatch.setattr(weights_mod.socket, "create_connection", hang)
    monkeypatch.setattr(weights_mod, "CONNECT_TIMEOUT", 1.0)
    yield
    release.set()


def backbone(sd, head="fc."):
    return {k: v for k, v in sd.items() if not k.startswith(head)}


def test_frozen_backbone_one_step_changes_only_the_head():
    from tudui.engine.optim import build_optimizer
    torch.manual_seed(0)
    model = create("resnet18", 3, img_size=32)
    trainable = freeze_backbone(model)
    assert trainable == 512 * 3 + 3
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = build_optimizer(model, TrainConfig(lr=0.5, weight_decay=0.0))
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == trainable
    model.train()  # as the Trainer does every epoch
    loss = F.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    assert not model.bn1.training  # the frozen backbone's BatchNorm stayed in eval mode
    after = model.state_dict()
    for k, v in before.items():  # weights, running statistics and num_batches_tracked alike
        if k.startswith("fc."):
            assert not torch.equal(v, after[k]), k
        else:
            assert torch.equal(v, after[k]), k


def test_freeze_none_and_backbone_lr_make_two_groups(folder):
    from tudui.engine.optim import build_optimizer
    cfg = TrainConfig(model="mobilenet_v3_small", lr=0.1, backbone_lr=0.001, freeze="none")
    model, spec = build(cfg, 2, {"size": [32, 32], "channels": 3})
    assert spec == {"name": "mobilenet_v3_small", "args": {}, "num_classes": 2, "in_channels": 3, "img_size": [32, 32]}
    assert all(p.requires_grad for p in model.parameters())
    opt = build_optimizer(model, cfg)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lr_of[id(model.classifier[3].weight)] == 0.1
    assert lr_of[id(model.features[0][0].weight)] == 0.001
    assert len(lr_of) == sum(1 for _ in model.parameters())


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_local_weights_file_reproduces_the_backbone_outputs(tmp_path, capsys, suffix):
    torch.manual_seed(1)
    src = create("resnet18", 5, img_size=32).eval()
    path = tmp_path / f"backbone{suffix}"
    if suffix == ".pt":
        torch.save(src.state_dict(), path)
    else:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    torch.manual_seed(2)
    dst = create("resnet18", 3, img_size=32, weights=str(path)).eval()
    err = capsys.readouterr().err
    assert "dropped the old head's 2 (fc.bias, fc.weight)" in err
    assert dst.fc.out_features == 3
    x = torch.randn(2, 3, 32, 32)
    src.fc, dst.fc = nn.Identity(), nn.Identity()
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_weights_that_do_not_fit_list_the_mismatches(tmp_path):
    path = tmp_path / "r34.pt"
    torch.save(create("resnet34", 3).state_dict(), path)
    with pytest.raises(ConfigError) as e:
        create("resnet18", 3, weights=str(path))
    msg = str(e.value)
    assert "do not fit resnet18" in msg and "unexpected (" in msg and "layer1.2.conv1.weight" in msg
    assert "\n" not in msg
    torch.save({"model": "not tensors"}, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match="does not hold a state_dict"):
        create("resnet18", 3, weights=str(tmp_path / "bad.pt"))
    with pytest.raises(ConfigError, match="not found"):
        create("resnet18", 3, weights=str(tmp_path / "missing.pt"))


def test_densenet_files_with_torchvision_legacy_names_load(tmp_path):
    src = create("densenet121", 3)
    legacy = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v for k, v in src.state_dict().items()}
    assert any(".norm.1." in k for k in legacy)
    torch.save(legacy, tmp_path / "d.pt")
    dst = create("densenet121", 3, weights=str(tmp_path / "d.pt"))
    assert torch.equal(dst.features.denseblock1.denselayer1.norm1.weight, src.features.denseblock1.denselayer1.norm1.weight)


def test_pretrained_offline_fails_within_seconds_naming_weights(hub_dir, network_hangs):
    t0 = time.monotonic()
    with pytest.raises(TuduiError) as e:
        create("resnet18", 3, img_size=32, pretrained=True)
    assert time.monotonic() - t0 < 5
    msg = str(e.value)
    assert "--weights" in msg and "resnet18-f37072fd.pth" in msg and "\n" not in msg


def test_pretrained_offline_cli_exit_code_2(hub_dir, network_hangs, folder, tmp_path, capsys):
    from tudui.cli import main
    rc = main(["train", "--data", str(folder), "--model", "resnet18", "--pretrained", "--img-size", "32",
               "--epochs", "1", "--out", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("tudui train: error: cannot download") and "--weights" in err[-1]


def test_pretrained_weights_from_the_hub_cache_work_offline(hub_dir, monkeypatch):
    import torchvision.models as tvm

    def no_network(*a, **k):
        raise AssertionError("the network must not be used when the file is cached")
    monkeypatch.setattr(weights_mod.socket, "create_connection", no_network)
    hub_dir.mkdir(parents=True)
    ref = tvm.resnet18()  # stands in for torchvision's file: same names, 1000-class head
    torch.save(ref.state_dict(), hub_dir / "resnet18-f37072fd.pth")
    model = create("resnet18", 3, img_size=32, pretrained=True)
    assert model.fc.out_features == 3
    assert torch.equal(model.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)
    # GoogLeNet: the file's auxiliary heads are dropped, and torchvision's input transform is recorded
    ref = tvm.googlenet(aux_logits=True, init_weights=True)
    torch.save(ref.state_dict(), hub_dir / "googlenet-1378be20.pth")
    g = create("googlenet", 3, img_size=32, pretrained=True)
    assert g.transform_input and g.tudui_build_args == {"transform_input": True} and g.aux1 is None
    assert torch.equal(g.inception5b.branch1.conv.weight, ref.inception5b.branch1.conv.weight)


def test_presets_follow_the_weights_unless_overridden():
    cfg = apply_preset(TrainConfig(model="resnet18", pretrained=True))
    assert cfg.img_size == 224 and cfg.mean == IMAGENET_MEAN and cfg.std == [0.229, 0.224, 0.225]
    cfg = apply_preset(TrainConfig(model="vit_b_16", pretrained=True, img_size=64, mean=[0.5] * 3, std=[0.5] * 3))
    assert cfg.img_size == 64 and cfg.mean == [0.5] * 3
    cfg = apply_preset(TrainConfig(model="inception_v3", weights="w.pt"))
    assert cfg.img_size == 299 and cfg.mean == IMAGENET_MEAN
    cfg = apply_preset(TrainConfig(model="tudui", weights="w.pt"))
    assert cfg.img_size is None and cfg.mean == IMAGENET_MEAN
    plain = TrainConfig(model="resnet18")
    assert apply_preset(plain) is plain
    with pytest.raises(ConfigError, match="no downloadable weights"):
        create("tudui", 3, pretrained=True)


@pytest.fixture(scope="module")
def finetuned(folder, tmp_path_factory):
    """resnet18 fine-tuned from a local backbone file with a frozen backbone: the tutorial's feature extraction."""
    out = tmp_path_factory.mktemp("ft")
    torch.manual_seed(3)
    src = create("resnet18", 10)
    torch.save(src.state_dict(), out / "backbone.pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = tudui.train(str(folder), model="resnet18", img_size=32, weights=str(out / "backbone.pt"),
                             freeze="backbone", epochs=1, batch_size=4, lr=0.05, out=str(out / "runs"), progress=False)
    finally:
        torch.set_num_threads(threads)
    return result, src.state_dict()


def test_finetuned_resnet18_checkpoint_keeps_the_backbone_and_round_trips(finetuned, folder, capsys):
    from tudui.cli import main
    result, src = finetuned
    ck = torch.load(result.best_path, weights_only=True)
    assert ck["model"]["name"] == "resnet18" and ck["model"]["num_classes"] == 2
    for k, v in backbone(src).items():  # frozen: weights and BatchNorm statistics untouched by training
        assert torch.equal(ck["state_dict"][k], v), k
    assert ck["state_dict"]["fc.weight"].shape == (2, 512)
    assert ck["preprocess"]["mean"] == IMAGENET_MEAN and ck["preprocess"]["size"] == [32, 32]

    clf = tudui.load(result.best_path)
    assert not clf.model.training and clf.model.fc.out_features == 2 and clf.classes == ["bright", "dark"]
    assert main(["eval", result.best_path, "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["accuracy"] == pytest.approx(result.final["val_acc"])
    assert main(["predict", result.best_path, str(folder / "dark" / "0.png"), "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert pred[0]["topk"][0]["label"] in ("bright", "dark")
    probs = clf.predict_images([Image.open(folder / "dark" / "0.png")], topk=2)[0]
    assert pred[0]["topk"][0]["prob"] == pytest.approx(probs[0]["prob"], abs=1e-5)


USER_MODULE = '''
from torch import nn

class SmallNet(nn.Module):
    def __init__(self, num_classes, in_channels=3, width=8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.out(self.body(x))
'''


def test_user_model_by_import_path_rebuilds_from_the_checkpoint(folder, tmp_path, monkeypatch):
    (tmp_path / "my_nets.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = tudui.train(str(folder), model="my_nets:SmallNet", model_args={"width": 4}, img_size=16, epochs=1,
                         batch_size=4, out=str(tmp_path / "runs"), progress=False)
    clf = tudui.load(result.best_path)
    assert type(clf.model).__name__ == "SmallNet" and clf.model.out.in_features == 4
    assert clf.meta["model"]["user_module"] and clf.meta["model"]["name"] == "my_nets:SmallNet"
    assert clf.model.tudui_head == ("out",)

    # an instance from Python; when its class can no longer be imported, load() takes an instance
    import my_nets
    result = tudui.train(str(folder), model=my_nets.SmallNet(2, width=6), img_size=16, epochs=1, batch_size=4,
                         out=str(tmp_path / "runs2"), progress=False)
    monkeypatch.setitem(__import__("sys").modules, "my_nets", None)  # makes `import my_nets` fail
    with pytest.raises(CheckpointError, match="model=MyNet"):
        tudui.load(result.best_path)
    clf = tudui.load(result.best_path, model=my_nets.SmallNet(2, width=6))
    assert clf.model.out.in_features == 6 and not clf.model.training


def test_timm_pretrained_offline_fails_fast(network_hangs, monkeypatch):
    pytest.importorskip("timm")
    from tudui.models import timm_models
    monkeypatch.setattr(timm_models, "_cached_file", lambda cfg: None)
    t0 = time.monotonic()
    with pytest.raises(TuduiError, match="--weights"):
        create("timm:resnet18", 3, pretrained=True)
    assert time.monotonic() - t0 < 5
