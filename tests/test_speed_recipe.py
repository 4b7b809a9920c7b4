"""The fast CIFAR recipe's techniques, each on its own, and a tiny end-to-end run of the recipe."""
import numpy as np
import pytest
import torch
from torch import nn

from tudui.config import resolve
from tudui.data.augment import AugmentSpec, BatchAugment, alternating_flip
from tudui.engine.evaluate import tta_logits, tta_views
from tudui.engine.optim import build_optimizer
from tudui.engine.progressive import resize_batch, train_side
from tudui.models import create
from tudui.models.fastnet import FastNet, patches


def _correlated_images(n=200, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=g)
    x[:, 1] += 0.9 * x[:, 0]  # correlated channels
    return nn.functional.avg_pool2d(x, 3, 1, 1) * 2 + 0.5  # correlated neighbours, non-zero mean


def test_whitening_layer_whitens_its_input_patches():
    x = _correlated_images()
    m = FastNet(img_size=12, whiten_eps=1e-8, widths="8,8,8")
    m.init_from_data(x)
    w = m.whiten.weight
    assert not w.requires_grad and m.whiten.bias.requires_grad  # fixed filters, trainable bias
    p = patches(x, 2)
    raw = p - p.mean(0)
    assert (raw.T @ raw / len(p) - torch.eye(12)).abs().max() > 0.5  # the input really is correlated
    out = raw @ w[:12].reshape(12, -1).T
    cov = out.T @ out / (len(p) - 1)
    assert torch.allclose(cov, torch.eye(12), atol=1e-3)
    assert torch.equal(w[12:], -w[:12])  # each direction and its negative


def test_fastnet_shapes_frozen_bn_scale_and_norm_bias_lr():
    m = create("fastnet", 7, in_channels=3, img_size=32, widths="8,16,16")
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert m(torch.randn(2, 3, 24, 24)).shape == (2, 7)  # any size: global pooling before the head
    bns = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    assert bns and all(not b.weight.requires_grad and b.bias.requires_grad for b in bns)
    cfg = resolve({"recipe": "cifar10-speed"})
    opt = build_optimizer(m, cfg)
    groups = {g["name"]: g for g in opt.param_groups}
    nb, base = groups["norm_bias"], groups["base"]
    assert {id(p) for p in nb["params"]} == {id(b.bias) for b in bns}
    assert nb["lr"] == pytest.approx(64 * base["lr"])
    assert nb["lr"] * nb["weight_decay"] == pytest.approx(base["lr"] * base["weight_decay"])  # same decay per step
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == pytest.approx(0.85)


def test_whitening_bias_trains_for_its_epochs_only_and_then_no_gradient_reaches_the_stem():
    model = FastNet(widths="8,16,16", whiten_bias_epochs=2)
    model.init_from_data(_correlated_images(size=32))
    x = torch.randn(4, 3, 32, 32)
    model.set_epoch(1)
    model(x).sum().backward()
    assert model.whiten.bias.grad is not None
    model.zero_grad(set_to_none=True)
    model.set_epoch(2)
    assert not model.whiten(x).requires_grad  # frozen stem: the first block skips its input gradient
    model(x).sum().backward()
    assert model.whiten.bias.grad is None and model.block1.conv1.weight.grad is not None
    always = FastNet(widths="8,16,16")  # default: the bias trains throughout
    always.set_epoch(100)
    assert always.whiten.bias.requires_grad


def test_block1_freezes_after_its_epochs_and_its_backward_is_skipped():
    model = FastNet(widths="8,16,16", whiten_bias_epochs=1, block1_epochs=2)
    x = torch.randn(4, 3, 32, 32)
    model.set_epoch(1)
    assert model.block1.conv1.weight.requires_grad and model.block1.norm1.bias.requires_grad
    model.set_epoch(2)
    assert not any(p.requires_grad for p in model.block1.parameters())
    assert not model.block1(model.act0(model.whiten(x))).requires_grad  # nothing before block2 needs a gradient
    model(x).sum().backward()
    assert model.block1.conv2.weight.grad is None and model.block2.conv1.weight.grad is not None
    model.set_epoch(0)  # a model reused from the start trains everything again; BN scales stay frozen
    assert model.block1.conv1.weight.requires_grad and not model.block1.norm1.weight.requires_grad


def test_tta_averages_the_views_it_says():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    views = tta_views(x, 2)
    assert [w for w, _ in views] == [0.25, 0.25, 0.125, 0.125, 0.125, 0.125]
    down_right = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")[..., :5, :5]
    up_left = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")[..., 2:, 2:]
    expected = [x, x.flip(-1), down_right, down_right.flip(-1), up_left, up_left.flip(-1)]
    for (_, v), e in zip(views, expected):
        assert torch.equal(v, e)
    assert torch.equal(up_left[..., 1:3, 1:3], x[..., 2:4, 2:4])  # content moved one pixel up-left
    seen = []

    def model(v):  # a "model" whose logits identify the view it was given
        seen.append(v.clone())
        return v.flatten(1)[:, :4] * torch.tensor([1.0, 10.0, 100.0, 1000.0])

    out = tta_logits(model, x, 2)
    assert len(seen) == 6 and all(torch.equal(s, e) for s, e in zip(seen, expected))
    assert torch.allclose(out, sum(w * model(v) for w, v in views))
    assert len(tta_views(x, 1)) == 2 and torch.equal(tta_views(x, 0)[0][1], x)


def test_alternating_flip_flips_exactly_every_other_epoch():
    x = torch.arange(8 * 1 * 2 * 3, dtype=torch.uint8).view(8, 1, 2, 3)
    idx = torch.arange(100, 108)
    flipped = [(alternating_flip(x, idx, e, flip_seed=3) != x).flatten(1).any(1) for e in range(5)]
    for e in range(4):
        assert torch.equal(flipped[e], ~flipped[e + 1])  # every image changes every epoch
    assert 0 < int(flipped[0].sum()) < 8  # the first flip differs between images
    aug = BatchAugment(AugmentSpec(preset="basic", pad=0, flip=True, alt_flip=True), flip_seed=3)
    g = torch.Generator()
    assert torch.equal(aug(x, g, epoch=2, indices=idx), alternating_flip(x, idx, 2, 3))


def test_progressive_resize_schedule_and_resize():
    cfg = resolve({"epochs": 8, "progressive_resize": 16, "progressive_end": 0.5})
    sides = [train_side(e, cfg, 32) for e in range(8)]
    assert sides == [16, 20, 24, 28, None, None, None, None]
    assert train_side(0, resolve({"epochs": 8}), 32) is None  # off by default
    x = torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = resize_batch(x, 16)
    assert y.shape == (2, 3, 16, 16) and y.is_contiguous(memory_format=torch.channels_last)


def test_recipe_is_a_bundle_of_general_options():
    cfg = resolve({"recipe": "cifar10-speed"})
    assert (cfg.model, cfg.tta, cfg.alt_flip, cfg.label_smoothing, cfg.nesterov) == ("fastnet", True, True, 0.2, True)
    assert cfg.norm_bias_lr_scale == 64 and cfg.scheduler == "onecycle" and cfg.translate == 2
    assert cfg.clip_grad is None and cfg.progressive_resize == 20 and cfg.batch_size == 256
    assert cfg.lookahead == 0.95 and cfg.model_args["whiten_bias_epochs"] == 3 and cfg.model_args["block1_epochs"] == 8
    assert (cfg.model_args["widths"], cfg.epochs) == ("32,128,128", 11)
    assert resolve({"recipe": "course"}).clip_grad is None  # the course's loop, unclipped
    big = resolve({"recipe": "cifar10-speed94", "epochs": 3})  # a flag still overrides the recipe
    assert big.model_args["block1_epochs"] == 13 and big.epochs == 3


def _image_folder(root, n_train=40, n_test=10, size=32):
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for c in range(3):
            d = root / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 80, (size, size, 3)).astype(np.uint8)
                img[..., c] += 150  # the class is the dominant colour
                Image.fromarray(img).save(d / f"{i}.png")
    return root


def test_recipe_end_to_end_on_a_tiny_folder(tmp_path):
    import tudui
    from tudui.checkpoint import load as load_ckpt

    data = _image_folder(tmp_path / "data")
    res = tudui.train(str(data), recipe="cifar10-speed", epochs=2, batch_size=16, lr=0.05,
                      model_args={"widths": "8,16,16"}, out=str(tmp_path / "runs"), name="r", progress=False,
                      threads=1, cache_dir=str(tmp_path / "cache"))
    assert [r["val_acc"] is None for r in res.history] == [True, False]  # evaluated after the last epoch only
    ev = tudui.evaluate(res.last_path)  # applies the recipe's TTA by itself
    assert ev["num_samples"] == 30 and ev["accuracy"] == pytest.approx(res.final["val_acc"])
    assert ev["accuracy"] > 0.6
    ck = load_ckpt(res.last_path)
    w = ck["state_dict"]["whiten.weight"]
    assert torch.equal(w[12:], -w[:12])  # the whitening init ran on the training images


def test_data_init_sample_is_the_same_on_memory_and_stream_paths(tmp_path):
    from tudui.data import load_source
    from tudui.data.pipeline import prepare
    from tudui.engine.runtime import data_init_sample

    data = _image_folder(tmp_path / "data", n_train=6, n_test=2, size=16)
    samples = []
    for kind in ("memory", "stream"):
        cfg = resolve({"data": str(data), "loader": kind, "cache_dir": str(tmp_path / "cache")})
        prepared = prepare(load_source(str(data)), cfg, "cpu")
        samples.append(data_init_sample(prepared.train, n=10, seed=1))
    assert samples[0].shape == (10, 3, 16, 16) and samples[0].dtype == torch.float32
    assert torch.equal(samples[0], samples[1])
    assert abs(float(samples[0].mean())) < 1.0  # normalized, not raw 0-255 values
