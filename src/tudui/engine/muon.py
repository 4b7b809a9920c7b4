"""Muon (Keller Jordan, 2024: "MomentUm Orthogonalized by Newton-schulz"), written from its description,
beside Nesterov SGD in one optimizer (`--optimizer muon`).

For a matrix-shaped weight (a conv's filters flattened to out x in*k*k, or a linear layer), Muon takes the
momentum of the gradient and replaces it by the nearest semi-orthogonal matrix (all singular values ~1),
computed with a few Newton-Schulz iterations, so every direction of the update moves at the same rate
instead of the few dominant ones. On a GPU, airbench's Muon script reports its 94% in 8 epochs where its SGD
script needs 10 (on this 2-core CPU it did not help the fast CIFAR recipe: its batch of 2,000 runs slower per
image; benchmarks/results/cifar_speed_cpu_notes.md). Everything else (biases, norm parameters, the head)
takes ordinary SGD in the same step, so the trainer, the lr schedule and checkpoints see a single optimizer.

Groups marked `muon=True` use the orthogonalized update; with `fixed_norm=True` the weight is rescaled to
Frobenius norm sqrt(out) before each step instead of decaying (for layers followed by batch norm, only the
direction of a filter matters, and a fixed norm keeps the relative step size lr constant). The others
follow torch.optim.SGD exactly (coupled weight decay, optional Nesterov).
"""
from __future__ import annotations

import torch

# quintic iteration coefficients chosen (by Muon's author) to push singular values in (0, 1] quickly
# towards ~1; the result is only approximately orthogonal (singular values roughly 0.7-1.2), which is enough
_NS_COEFFS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Approximately U V^T for g = U S V^T (2-D), by `steps` Newton-Schulz iterations."""
    a, b, c = _NS_COEFFS
    x = g.float() / (g.norm() + eps)  # spectral norm <= Frobenius norm = 1: inside the iteration's basin
    tall = x.shape[0] > x.shape[1]
    if tall:  # iterate on the wide orientation: the Gram matrix x x^T is the smaller one
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 weight_decay: float = 0.0, muon: bool = True, fixed_norm: bool = False, ns_steps: int = 5):
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, muon=muon,
                        fixed_norm=fixed_norm, ns_steps=ns_steps)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["muon"]:
                    self._muon_update(p, g, group)
                    continue
                if wd:
                    g = g.add(p, alpha=wd)
                if mom:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.clone()
                    else:
                        state["momentum_buffer"].mul_(mom).add_(g)
                    buf = state["momentum_buffer"]
                    g = g.add(buf, alpha=mom) if group["nesterov"] else buf
                p.add_(g, alpha=-lr)
        return loss

    def _muon_update(self, p, g, group):
        state = self.state[p]
        if "momentum_buffer" not in state:  # (setdefault would allocate a fresh zero tensor every step)
            state["momentum_buffer"] = torch.zeros_like(g)
        buf = state["momentum_buffer"]
        buf.mul_(group["momentum"]).add_(g)
        g = g.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf
        if group["fixed_norm"]:
            p.mul_(p.shape[0] ** 0.5 / (p.norm() + 1e-12))
        elif group["weight_decay"]:
            p.mul_(1 - group["lr"] * group["weight_decay"])  # decoupled: the update's size does not scale with p
        update = orthogonalize(g.reshape(g.shape[0], -1), group["ns_steps"]).view_as(p)
        p.add_(update, alpha=-group["lr"])
