"""Does splitting the 2 cores between processes beat one process with 2 threads? Training steps (forward,
backward, gradient all-reduce over gloo, SGD) in one process with N threads against P processes with N/P
threads each, at the same total batch, as JSON: the question behind data-parallel training on a CPU.

--model fastnet (the fast CIFAR net, --widths) or tudui (the course network as `tudui train` builds it for
32 px RGB, channels_last); --sync ddp wraps the model in
DistributedDataParallel as `torchrun -m tudui train` does (bucketed all-reduce overlapping the backward pass),
--sync flat is one flat all-reduce after the backward pass (the first version of this script).

    python benchmarks/process_split.py                      # fastnet 32,128,128, batch 256, 32 px and 20 px
    python benchmarks/process_split.py --model tudui --batch 64 --sides 32 --sync ddp
"""
from __future__ import annotations

import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from _report import emit, machine  # benchmarks/_report.py, beside this script
from tudui.models.fastnet import FastNet


def build(model_name: str, widths: str):
    if model_name == "tudui":
        from tudui.models.course import Tudui
        return Tudui(num_classes=10, in_channels=3, img_size=32).to(memory_format=torch.channels_last)
    model = FastNet(widths=widths).to(memory_format=torch.channels_last)
    model.init_from_data(torch.randn(500, 3, 32, 32))
    return model


def _steps(rank: int, world: int, threads: int, batch: int, side: int, steps: int, widths: str, port: int, q,
           model_name: str = "fastnet", sync: str = "flat"):
    torch.set_num_threads(threads)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(rank)
    model = build(model_name, widths)
    params = [p for p in model.parameters() if p.requires_grad]
    net = model
    if world > 1 and sync == "ddp":
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model)
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.85, nesterov=True)
    x = torch.randn(batch, 3, side, side).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step():
        loss = F.cross_entropy(net(x), y, label_smoothing=0.2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1 and sync == "flat":  # what DDP does: one flat all-reduce of the gradients, then the mean
            flat = torch.cat([p.grad.flatten() for p in params])
            dist.all_reduce(flat)
            for p, g in zip(params, flat.div_(world).split([p.numel() for p in params])):
                p.grad.copy_(g.view_as(p))
        opt.step()

    for _ in range(3):  # oneDNN picks its kernels on the first calls
        step()
    if world > 1:
        dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    if rank == 0:
        q.put(time.perf_counter() - t0)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(world: int, threads: int, batch: int, side: int, steps: int, widths: str, port: int,
            model_name: str = "fastnet", sync: str = "flat") -> dict:
    """Images per second of `world` processes of `threads` threads, each stepping batch/world images."""
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    per = batch // world
    procs = [ctx.Process(target=_steps, args=(r, world, threads, per, side, steps, widths, port, q,
                                                              model_name, sync))
             for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    seconds = q.get()
    ips = world * per * steps / seconds
    return {"processes": world, "threads_each": threads, "batch_each": per, "side": side,
            "images_per_s": round(ips), "epoch_s_50k": round(50000 / ips, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fastnet", choices=["fastnet", "tudui"])
    ap.add_argument("--sync", default="flat", choices=["flat", "ddp"])
    ap.add_argument("--widths", default="32,128,128")
    ap.add_argument("--batch", type=int, default=256, help="the total batch of one step, split between processes")
    ap.add_argument("--sides", default="32,20")
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--save", help="also write the JSON to this file")
    args = ap.parse_args(argv)
    rows = []
    for k, side in enumerate(int(s) for s in args.sides.split(",")):
        steps = args.steps * (2 if side <= 24 else 1)  # small images: more steps for the same timing
        rows.append(measure(1, args.cores, args.batch, side, steps, args.widths, free_port(), args.model, args.sync))
        rows.append(measure(args.cores, 1, args.batch, side, steps, args.widths, free_port(), args.model, args.sync))
    name = f"fastnet {args.widths}" if args.model == "fastnet" else "tudui (course network)"
    emit({"model": name, "sync": args.sync, "total_batch": args.batch, "rows": rows, "machine": machine()},
         args.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
