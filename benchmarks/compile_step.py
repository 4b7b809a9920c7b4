"""A training step of the fast network, eager against `torch.compile` (inductor), on this CPU: the first step
(compile time included) and the mean of the next ones, at one image size and batch, channels_last, optionally
under bf16 autocast. Prints JSON.

    python benchmarks/compile_step.py --bf16 --save benchmarks/results/compile_step-xeon-bf16.json
Why: in bf16 the convolutions are only half of a step (step_profile.py --bf16), the rest GELU, max-pooling and
BatchNorm, which a compiler could fuse.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

from _report import emit, machine  # benchmarks/_report.py, beside this script
from tudui.models.fastnet import FastNet


def measure(compiled: bool, widths: str, batch: int, side: int, steps: int, bf16: bool) -> dict:
    torch.manual_seed(0)
    model = FastNet(widths=widths).to(memory_format=torch.channels_last)
    model.init_from_data(torch.randn(500, 3, 32, 32))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.85, nesterov=True)
    x = torch.randn(batch, 3, side, side).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    forward = torch.compile(model) if compiled else model

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(forward(x).float(), y, label_smoothing=0.2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - t0) / steps
    return {"first_step_s": round(first, 2), "step_ms": round(1000 * per_step, 1),
            "epoch_s_50k": round(50000 / batch * per_step, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="32,128,128")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--side", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--bf16", action="store_true", help="under bf16 autocast (as --amp bf16 trains)")
    ap.add_argument("--save", default=None)
    args = ap.parse_args(argv)
    result = {"model": f"fastnet {args.widths}", "batch": args.batch, "side": args.side, "steps": args.steps,
              "dtype": "bf16 autocast" if args.bf16 else "fp32", "machine": machine()}
    for mode in ("eager", "compile"):
        result[mode] = measure(mode == "compile", args.widths, args.batch, args.side, args.steps, args.bf16)
        print(mode, result[mode], file=sys.stderr, flush=True)
    emit(result, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
