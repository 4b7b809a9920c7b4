"""Where a fastnet training step spends its time on this machine: torch.profiler over a few steps, with each
3x3 convolution's forward and backward time and the GFLOP/s they reach, as JSON.

    python benchmarks/step_profile.py                       # widths 64,128,128, batch 256, 32 px, channels_last
    python benchmarks/step_profile.py --widths 32,128,128 --side 24
Backward FLOPs count both the weight and the input gradient (2x the forward), which holds for every 3x3
convolution here while the whitening stem's bias trains.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch.profiler import profile

from tudui.models.fastnet import FastNet


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="64,128,128")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--side", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--nchw", action="store_true", help="NCHW instead of channels_last")
    ap.add_argument("--bf16", action="store_true", help="under bf16 autocast (as --amp bf16 trains)")
    ap.add_argument("--top", type=int, default=12, help="also list the N operators that take the most time")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    fmt = torch.contiguous_format if args.nchw else torch.channels_last
    model = FastNet(widths=args.widths).to(memory_format=fmt)
    model.init_from_data(torch.randn(500, 3, 32, 32))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.85, nesterov=True)
    x = torch.randn(args.batch, 3, args.side, args.side).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (args.batch,))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = F.cross_entropy(model(x).float(), y, label_smoothing=0.2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):  # oneDNN picks and caches its kernels on the first calls
        step()
    t0 = time.perf_counter()
    with profile(record_shapes=True) as prof:
        for _ in range(args.steps):
            step()
    step_s = (time.perf_counter() - t0) / args.steps
    events = prof.key_averages(group_by_input_shape=True)
    by_op = prof.key_averages()
    total_us = sum(e.self_cpu_time_total for e in by_op)
    top = sorted(by_op, key=lambda e: -e.self_cpu_time_total)[:args.top]
    convs, conv_us = {}, 0.0
    for e in events:
        if e.key not in ("aten::mkldnn_convolution", "aten::convolution_backward"):
            continue
        conv_us += e.self_cpu_time_total
        fwd = e.key == "aten::mkldnn_convolution"
        x_shape, w_shape = (e.input_shapes[0], e.input_shapes[1]) if fwd else (e.input_shapes[1], e.input_shapes[2])
        if len(w_shape) != 4 or w_shape[2:] != [3, 3]:
            continue  # the 2x2 whitening stem: frozen weights, a bias gradient only
        n, c_in, h, w = x_shape
        calls = e.count // args.steps  # layers of the same shape share a row
        flops = 2 * n * h * w * w_shape[0] * c_in * 9 * calls * (1 if fwd else 2)
        ms = e.self_cpu_time_total / 1000 / args.steps
        row = convs.setdefault(f"{c_in}->{w_shape[0]} at {h}x{w} (x{calls})", {})
        row["forward_ms" if fwd else "backward_ms"] = round(ms, 1)
        row["forward_gflops" if fwd else "backward_gflops"] = round(flops / ms / 1e6, 1)
    result = {"model": f"fastnet {args.widths}", "batch": args.batch, "side": args.side,
              "layout": "NCHW" if args.nchw else "channels_last", "threads": torch.get_num_threads(),
              "step_ms": round(1000 * step_s, 1), "epoch_s_50k": round(50000 / args.batch * step_s, 1),
              "dtype": "bf16 autocast" if args.bf16 else "fp32",
              "convolution_share": round(conv_us / total_us, 3), "convolutions": convs,
              "top_operators": {e.key: round(e.self_cpu_time_total / total_us, 3) for e in top}}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
