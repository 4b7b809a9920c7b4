"""Weight averaging: an exponential moving average kept beside the model (`--ema DECAY`, `--ema-every N`)
and lookahead, which pulls the model itself into a slow average (`--lookahead D`, `--lookahead-every N`).

The average lives in its own copy of the model (`ema.module`, always in eval mode), so it can be
evaluated and saved next to the trained weights; checkpoints store it as `ema_state_dict`.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..checkpoint import clean_state_dict


class EMA:
    """ema = d * ema + (1 - d) * weights, after every `every`-th optimizer step.

    `decay` is per optimizer step: updating every N steps uses decay**N, so the averaging horizon does not
    depend on N. Early on, d is capped at (1 + u) / (10 + u) (u = updates so far), so a short run is not
    dominated by the random initial weights. Floating-point buffers (BatchNorm statistics) are averaged too;
    integer buffers (num_batches_tracked) are copied.
    """
    def __init__(self, model: nn.Module, decay: float = 0.999, every: int = 1):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay, self.every = float(decay), max(1, int(every))
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.steps = 0  # update() calls (optimizer steps)
        self.updates = 0  # averages actually taken

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        if self.steps % self.every:
            return
        d = min(self.decay ** self.every, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        live = model.state_dict()
        for k, e in self.module.state_dict().items():
            v = live[k].detach()
            if e.dtype.is_floating_point:
                e.lerp_(v.to(e.dtype), 1.0 - d)
            else:
                e.copy_(v)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def counters(self) -> dict:
        return {"steps": self.steps, "updates": self.updates}

    def load_state_dict(self, state: dict, counters: dict | None = None) -> None:
        self.module.load_state_dict(clean_state_dict(state))
        if counters:
            self.steps, self.updates = int(counters["steps"]), int(counters["updates"])


class Lookahead:
    """Every `every` optimizer steps: slow = d * slow + (1 - d) * weights, then weights = slow.

    The decay per step grows from 0 to `decay` as (t / T)^3 over the T steps of the run (the fast recipes'
    schedule: early on the weights move freely, late in the run they are averaged over more and more steps),
    and the last step of the run averages too, whatever the step count, so the run ends on the slow weights.
    As with the EMA, d is capped at (1 + u) / (10 + u) (u = averages so far), so a run of a few steps does
    not end on its initial weights; on runs of hundreds of steps the cap never binds. BatchNorm statistics
    are averaged too.
    """
    def __init__(self, model: nn.Module, decay: float = 0.95, every: int = 5):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"lookahead decay must be in (0, 1), got {decay}")
        self.decay, self.every = float(decay), max(1, int(every))
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
        self.updates = 0

    def decay_at(self, step: int, total: int) -> float:
        d = self.decay ** self.every * min(1.0, step / max(1, total)) ** 3
        return min(d, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int, total: int) -> None:
        """Call after optimizer step number `step` (1-based) of `total`."""
        if step % self.every and step < total:
            return
        d = self.decay_at(step, total)
        self.updates += 1
        live = model.state_dict()
        for k, s in self.slow.items():
            s.lerp_(live[k].detach(), 1.0 - d)
            live[k].copy_(s)

    def state_dict(self) -> dict:
        return dict(self.slow)

    def load_state_dict(self, state: dict, updates: int = 0) -> None:
        for k, v in clean_state_dict(state).items():
            if k in self.slow:
                self.slow[k].copy_(v)
        self.updates = int(updates)
