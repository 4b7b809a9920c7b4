"""`--optimizer muon`: the orthogonalization, the split of parameters, SGD parity for the rest, training."""
import pytest
import torch
from torch import nn

from tudui.config import resolve
from tudui.engine.muon import Muon, orthogonalize
from tudui.engine.optim import build_optimizer
from tudui.errors import ConfigError
from tudui.models.fastnet import FastNet


@pytest.mark.parametrize("shape", [(16, 72), (72, 16), (32, 32)])
def test_orthogonalize_flattens_the_spectrum_and_keeps_the_singular_vectors(shape):
    g = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(shape[0], min(shape), generator=g))
    v, _ = torch.linalg.qr(torch.randn(shape[1], min(shape), generator=g))
    s = torch.logspace(0, -2, min(shape))  # condition number 100
    m = u @ torch.diag(s) @ v.T
    o = orthogonalize(m)
    sv = torch.linalg.svdvals(o)
    assert sv.min() > 0.6 and sv.max() < 1.25  # ~1 everywhere, where the input spread over 100x
    # the same singular vectors: projecting back onto them gives a diagonal, positive matrix
    d = u.T @ o @ v
    assert torch.allclose(d, torch.diag(torch.diagonal(d)), atol=0.05) and (torch.diagonal(d) > 0.6).all()


def test_muon_groups_take_the_matrices_and_leave_biases_norms_and_head_to_sgd():
    model = FastNet(widths="8,16,16")
    cfg = resolve({"optimizer": "muon", "norm_bias_lr_scale": 64, "muon_lr": 0.2, "muon_fixed_norm": True})
    opt = build_optimizer(model, cfg)
    assert isinstance(opt, Muon)
    muon = [g for g in opt.param_groups if g["muon"]]
    assert len(muon) == 1 and muon[0]["lr"] == 0.2 and muon[0]["fixed_norm"]
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in muon[0]["params"]) == sorted(
        n for n, p in model.named_parameters() if p.ndim == 4 and p.requires_grad)  # the 6 block convs
    rest = {names[id(p)] for g in opt.param_groups if not g["muon"] for p in g["params"]}
    assert "head.weight" in rest and "whiten.bias" in rest and "block1.norm1.bias" in rest
    assert {g["name"]: g["lr"] for g in opt.param_groups}["norm_bias"] == pytest.approx(64 * cfg.lr)


def test_the_non_muon_groups_step_exactly_like_torch_sgd():
    torch.manual_seed(0)
    a, b = nn.Linear(5, 3), nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    ours = Muon(a.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2, muon=False)
    ref = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)
    for i in range(4):
        x = torch.randn(8, 5)
        for m, o in ((a, ours), (b, ref)):
            o.zero_grad()
            m(x).pow(2).sum().backward()
            o.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_muon_step_moves_a_fixed_norm_weight_by_lr_and_keeps_its_norm():
    w = nn.Parameter(torch.randn(8, 4, 3, 3))
    opt = Muon([w], lr=0.1, momentum=0.0, nesterov=False, fixed_norm=True)
    w.grad = torch.randn_like(w)
    rescaled = w.detach() * 8 ** 0.5 / w.detach().norm()
    opt.step()
    step = (w.detach() - rescaled).norm().item() / 8 ** 0.5  # relative to the weight's norm
    assert 0.06 < step < 0.125
    # before the update the weight is rescaled to norm sqrt(8); the update is ~orthogonal with 8 singular
    # values of ~1 (Frobenius norm ~sqrt(8)), so the relative step is about lr
    assert w.norm().item() == pytest.approx(8 ** 0.5, rel=0.15)


def test_muon_trains_the_course_network_on_a_toy_problem():
    from tudui.models import create
    torch.manual_seed(0)
    model = create("tudui", num_classes=2, in_channels=3, img_size=32)
    cfg = resolve({"optimizer": "muon", "lr": 0.01, "muon_lr": 0.02})
    opt = build_optimizer(model, cfg)
    muon = {id(p) for g in opt.param_groups if g["muon"] for p in g["params"]}
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert id(linears[0].weight) in muon and id(linears[-1].weight) not in muon  # the classifier stays on SGD
    x = torch.randn(64, 3, 32, 32)
    y = (x[:, 0].mean((1, 2)) > 0).long()
    x[:, 0] += (2 * y - 1)[:, None, None].float()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_muon_options_are_validated():
    with pytest.raises(ConfigError):
        resolve({"optimizer": "muon", "muon_momentum": 1.0})
    with pytest.raises(ConfigError):
        resolve({"lookahead": 0.9, "lookahead_every": 0})
