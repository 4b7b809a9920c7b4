"""Models: the course network and its options, every torchvision classifier with a new head, `tudui models`.

The heavy torchvision variants run only with TUDUI_SLOW=1 (they add minutes on a small CPU); a representative
model of every family runs a real forward and backward pass by default."""
import json
import os

import pytest
import torch
from torch import nn

import tudui
from tudui.errors import ConfigError
from tudui.models import create, list_models
from tudui.models.meta import params_on_meta

SLOW_ONLY = pytest.mark.skipif(os.environ.get("TUDUI_SLOW") != "1", reason="heavy; run with TUDUI_SLOW=1")
HEAVY = [pytest.mark.slow, SLOW_ONLY]

# the smallest square image each model runs on, where 32 is too small (or not allowed)
SIZES = {"alexnet": 64, "inception_v3": 75, "maxvit_t": 224, "vit_h_14": 28}
# where each family keeps its classifier head
HEADS = {"alexnet": "classifier.6", "convnext": "classifier.2", "densenet": "classifier", "efficientnet": "classifier.1",
         "googlenet": "fc", "inception": "fc", "maxvit": "classifier.5", "mnasnet": "classifier.1",
         "mobilenet_v2": "classifier.1", "mobilenet_v3": "classifier.3", "regnet": "fc", "resnet": "fc", "resnext": "fc",
         "wide_resnet": "fc", "shufflenet": "fc", "squeezenet": "classifier.1", "swin": "head", "vgg": "classifier.6",
         "vit": "heads.head"}
REPRESENTATIVE = ["resnet18", "vgg16", "squeezenet1_1", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny",
                  "densenet121", "shufflenet_v2_x0_5", "mnasnet0_5", "regnet_x_400mf", "googlenet", "inception_v3",
                  "alexnet", "swin_t", "vit_b_32", "maxvit_t"]
# too big to allocate here: shapes are checked on the meta device
META_ONLY = {"maxvit_t", "regnet_y_128gf", "regnet_y_32gf", "regnet_x_32gf", "vit_h_14", "vit_l_16", "vit_l_32",
             "convnext_large", "efficientnet_v2_l", "wide_resnet101_2", "swin_v2_b"}


def zoo():
    import torchvision.models as tvm
    return sorted(tvm.list_models(module=tvm))


def family_head(name):
    return next(h for prefix, h in sorted(HEADS.items(), key=lambda kv: -len(kv[0])) if name.startswith(prefix))


def check_zoo_model(name, classes=3):
    size = SIZES.get(name, 32)
    if name in META_ONLY:
        with params_on_meta():
            model = create(name, classes, img_size=size)
        x = torch.empty(2, 3, size, size, device="meta")
    else:
        torch.manual_seed(0)
        model = create(name, classes, img_size=size)
        x = torch.randn(2, 3, size, size)
    head = family_head(name)
    assert model.tudui_head == (head,)
    out = model(x)
    assert tuple(out.shape) == (2, classes)
    out.float().pow(2).mean().backward()
    head_mod = model.get_submodule(head)
    assert getattr(head_mod, "out_features", getattr(head_mod, "out_channels", None)) == classes
    assert head_mod.weight.grad is not None
    first = next(p for p in model.parameters() if p.requires_grad)
    assert first.grad is not None  # the gradient reaches the first layer
    return model


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_zoo_model_forward_backward_and_torchvision_names(name):
    import torchvision.models as tvm
    model = check_zoo_model(name)
    # every state_dict key is torchvision's own for the same architecture built with 3 classes
    kwargs = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
    if name.startswith("vit_"):
        kwargs["image_size"] = SIZES.get(name, 32)
    if name.startswith("maxvit_"):
        kwargs["input_size"] = (SIZES[name],) * 2
    with params_on_meta():
        ref = tvm.get_model(name, num_classes=3, **kwargs)
    ours, theirs = model.state_dict(), ref.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


@pytest.mark.parametrize("name", [pytest.param(n, marks=HEAVY) for n in zoo() if n not in REPRESENTATIVE])
def test_every_other_zoo_model_forward_backward(name):
    check_zoo_model(name)


@pytest.mark.slow
@SLOW_ONLY
def test_head_width_of_every_zoo_model_matches_torchvision_counts():
    """All torchvision classifiers at once, on the meta device: swapping the 1000-class head for a 10-class one
    removes exactly 990 x (in_features + 1) parameters from torchvision's published count."""
    import torchvision.models as tvm
    rows = dict(list_models())
    assert set(zoo()) <= set(rows) and "tudui" in rows
    for name in zoo():
        published = tvm.get_model_weights(name).DEFAULT.meta["num_params"]
        if name in ("inception_v3", "vit_h_14"):  # published with aux head / for 518x518 images
            continue
        diff = published - rows[name]
        assert diff > 0 and diff % 990 == 0, name


@pytest.mark.parametrize("name,size,needs", [("alexnet", 32, "--img-size 63"), ("inception_v3", 32, "--img-size 75"),
                                             ("maxvit_t", 32, "--img-size 224"), ("vit_h_14", 32, "multiple of 14")])
def test_too_small_images_say_which_size_works(name, size, needs):
    with params_on_meta(), pytest.raises(ConfigError) as e:
        create(name, 3, img_size=size)
    msg = str(e.value)
    assert needs in msg and "\n" not in msg


def test_zoo_errors_are_one_line():
    with pytest.raises(ConfigError, match="did you mean resnet18"):
        create("resnet18x", 3)
    with pytest.raises(ConfigError, match="unknown model argument"):
        create("resnet18", 3, no_such_arg=1)
    with pytest.raises(ConfigError, match="RGB"):
        create("resnet18", 3, in_channels=1)


def test_course_network_exactly():
    m = create("tudui", 10)
    kinds = [type(layer) for layer in m.model]
    assert kinds == [nn.Conv2d, nn.MaxPool2d, nn.Conv2d, nn.MaxPool2d, nn.Conv2d, nn.MaxPool2d, nn.Flatten,
                     nn.Linear, nn.Linear]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in m.model if isinstance(c, nn.Conv2d)] == \
        [(3, 32, (5, 5), (2, 2)), (32, 32, (5, 5), (2, 2)), (32, 64, (5, 5), (2, 2))]
    assert (m.model[7].in_features, m.model[7].out_features, m.model[8].out_features) == (1024, 64, 10)
    assert sum(p.numel() for p in m.parameters()) == 145578  # the course network on CIFAR-10
    assert m.tudui_head == ("model.8",)
    # adapted to channels, image size and classes
    g = create("tudui", 3, in_channels=1, img_size=28)
    assert g.model[0].in_channels == 1 and g.model[7].in_features == 64 * 3 * 3
    assert g(torch.randn(2, 1, 28, 28)).shape == (2, 3)


@pytest.mark.parametrize("args,layer,count", [
    ({"activation": "relu"}, nn.ReLU, 4), ({"activation": "gelu"}, nn.GELU, 4), ({"activation": "sigmoid"}, nn.Sigmoid, 4),
    ({"dropout": 0.5}, nn.Dropout, 2), ({"norm": "batchnorm"}, nn.BatchNorm2d, 3), ({"norm": "layernorm"}, nn.GroupNorm, 3),
])
def test_course_network_options_add_layers(args, layer, count):
    m = create("tudui", 3, img_size=16, **args)
    assert sum(isinstance(x, layer) for x in m.modules()) == count
    out = m(torch.randn(2, 3, 16, 16))
    out.sum().backward()
    assert out.shape == (2, 3) and m.model[0].weight.grad is not None


@pytest.mark.parametrize("init", ["uniform", "normal", "kaiming", "xavier"])
def test_course_network_inits_change_the_weights(init):
    torch.manual_seed(0)
    default = create("tudui", 3, img_size=16)
    torch.manual_seed(0)
    other = create("tudui", 3, img_size=16, init=init)
    assert not torch.equal(default.model[0].weight, other.model[0].weight)
    assert torch.count_nonzero(other.model[0].bias) == 0
    if init == "uniform":
        assert other.model[0].weight.abs().max() <= 0.05


@pytest.mark.parametrize("args,match", [({"activation": "tanh"}, "activation must be one of"),
                                        ({"norm": "groupnorm"}, "norm must be one of"),
                                        ({"init": "zeros"}, "init must be one of"),
                                        ({"dropout": 1.5}, "dropout"),
                                        ({"colour": 1}, "has no argument 'colour'")])
def test_course_network_rejects_unknown_keys_and_values(args, match):
    with pytest.raises(ConfigError, match=match) as e:
        create("tudui", 10, **args)
    assert "\n" not in str(e.value)


def test_model_args_from_config_file_and_cli(tmp_path):
    from tudui.cli import build_parser
    from tudui.cli.train import collect_overrides
    from tudui.config import resolve
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("model: tudui\nmodel_args:\n  activation: relu\n  dropout: 0.25\n")
    args = build_parser().parse_args(["train", "--config", str(cfg_file), "--model-arg", "norm=batchnorm",
                                      "--model-arg", "dropout=0.1"])
    cfg = resolve(collect_overrides(args), config_file=args.config)
    assert cfg.model_args == {"activation": "relu", "dropout": 0.1, "norm": "batchnorm"}
    m = create(cfg.model, 10, **cfg.model_args)
    assert any(isinstance(x, nn.BatchNorm2d) for x in m.modules())


def test_models_command_lists_names_with_real_parameter_counts(capsys):
    from tudui.cli import main
    assert main(["models", "resnet1", "--json"]) == 0
    rows = {r["name"]: r["params"] for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"resnet18", "resnet101", "resnet152", "wide_resnet101_2"}
    assert rows["resnet18"] == sum(p.numel() for p in create("resnet18", 10).parameters()) == 11181642
    assert main(["models", "tudui"]) == 0
    out = capsys.readouterr().out
    assert out.split() == ["tudui", "145,578"]


def test_create_after_bare_import_returns_a_module():
    m = tudui.models.create("mobilenet_v3_small", num_classes=4, img_size=32)
    assert isinstance(m, nn.Module) and m.classifier[-1].out_features == 4
    assert m.tudui_head_params == {"classifier.3.weight", "classifier.3.bias"}


def test_timm_model_head_and_freezing():
    pytest.importorskip("timm")
    from tudui.models import freeze_backbone
    m = create("timm:resnet18", 3, img_size=32)
    assert m.tudui_head == ("fc",) and m.fc.out_features == 3
    freeze_backbone(m)
    assert {n for n, p in m.named_parameters() if p.requires_grad} == {"fc.weight", "fc.bias"}
    m(torch.randn(2, 3, 32, 32)).sum().backward()
    assert m.fc.weight.grad is not None and m.conv1.weight.grad is None
    with pytest.raises(ConfigError, match="unknown timm model"):
        create("timm:no_such_net", 3)
