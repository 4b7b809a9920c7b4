"""`tudui serve` under load: p50/p95 latency and images/s with 1, 8 and 32 concurrent clients, with
micro-batching (--max-batch 32 --batch-wait-ms 5) and without (--max-batch 1: one request at a time).

Each model is served by a real `tudui serve` process on 127.0.0.1 (a free port, --threads 1, --log-level
warning) and the clients are asyncio connections in this process, on the same machine (a lean HTTP/1.1
client with requests prepared in advance, so that the clients take little CPU from the server). Every
client keeps one connection and sends POST /predict?topk=5 with one JPEG file (multipart), one request
after another. First every distinct image is asked
alone, one at a time, from the unbatched server: that is the sequential answer, and every later answer is
compared with it (same labels and indices in the same order; the largest probability difference is
reported). Models (random weights, seeded; weights do not change the cost):

  course32        the course's Tudui network at 32x32 px, on CIFAR-10 test JPEGs (32x32)
  mobilenet96     torchvision mobilenet_v3_small at 96x96 px, on the same JPEGs
  resnet18_224    torchvision resnet18 at 224x224 px, on hymenoptera val JPEGs (about 500x375)

    python benchmarks/serve_load.py --save benchmarks/results/serve_load.json
    python benchmarks/serve_load.py --models course32 --requests 128      # quicker
    python benchmarks/serve_load.py --files fp32=runs/r18/model.onnx int8=runs/r18/model.int8.onnx --clients 32

With --files LABEL=PATH ..., the given model files (a checkpoint, or files made by `tudui export`, such as a
float32 and an int8 ONNX model of one run) are served instead, each with batching, on the hymenoptera val JPEGs
(--file-images cifar: CIFAR-10 test JPEGs); the rounds interleave the files, and each file's answers are
compared with its own sequential answers.

Both servers (with and without batching) run at once and the cells are measured in --rounds rounds that
interleave the two modes, so that load from elsewhere on the machine hits both alike; a cell's images/s
is its median round, its latencies are pooled over the rounds. Bounded: at most --requests requests and
--max-seconds seconds per (model, mode, clients) cell, over all rounds.
JSON goes to stdout, progress to stderr.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch
from PIL import Image

from _report import emit, machine

REPO = Path(__file__).resolve().parents[1]
CIFAR_TEST = Path("~/.cache/tudui/cifar10-jpeg/test").expanduser()
HYMENOPTERA_VAL = REPO.parent / "shared" / "datasets" / "hymenoptera_data" / "val"
MODELS = {"course32": ("tudui", 32), "mobilenet96": ("mobilenet_v3_small", 96), "resnet18_224": ("resnet18", 224)}
MODES = {"one_at_a_time": ["--max-batch", "1"], "batched": ["--max-batch", "32", "--batch-wait-ms", "5"]}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_checkpoint(key: str, folder: str) -> str:
    from tudui import checkpoint, models
    from tudui.data.preprocess import make_preprocess
    name, size = MODELS[key]
    torch.manual_seed(0)
    net = models.create(name, 10, in_channels=3, img_size=(size, size))
    path = os.path.join(folder, f"{key}.pt")
    checkpoint.save(path, model_state=net.state_dict(),
                    model_spec={"name": name, "args": {}, "num_classes": 10, "in_channels": 3, "img_size": [size, size]},
                    classes=[f"class{i}" for i in range(10)],
                    preprocess=make_preprocess((size, size), 3, [0.5] * 3, [0.25] * 3), config={})
    return path


def images_for(key: str, n: int) -> list:
    """n distinct JPEG uploads: (name, bytes)."""
    root = HYMENOPTERA_VAL if key == "resnet18_224" else CIFAR_TEST
    files = sorted(root.rglob("*.jpg")) if root.is_dir() else []
    if files:
        step = max(1, len(files) // n)
        return [(f.name, f.read_bytes()) for f in files[::step][:n]]
    log(f"{root} not found: random JPEGs instead")
    gen = torch.Generator().manual_seed(0)
    side = 400 if key == "resnet18_224" else 32
    out = []
    for i in range(n):
        arr = torch.randint(0, 256, (side, side, 3), generator=gen, dtype=torch.uint8).numpy()
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=90)
        out.append((f"random{i}.jpg", buf.getvalue()))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, ckpt: str, mode: str, threads: int):
        self.port = free_port()
        self.cmd = [sys.executable, "-m", "tudui", "serve", ckpt, "--host", "127.0.0.1", "--port", str(self.port),
                    "--threads", str(threads), "--log-level", "warning", *MODES[mode]]
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tudui serve exited: {self.proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("tudui serve did not start within 120 s")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def compare(answer: dict, reference: dict) -> tuple:
    """-> (same labels and indices in the same order, largest probability difference)."""
    a, b = answer["topk"], reference["topk"]
    same = answer["path"] == reference["path"] and [(t["label"], t["index"]) for t in a] == \
        [(t["label"], t["index"]) for t in b]
    return same, max(abs(x["prob"] - y["prob"]) for x, y in zip(a, b))


def multipart_request(port: int, name: str, data: bytes, topk: int = 5) -> bytes:
    """One complete HTTP/1.1 keep-alive request: POST /predict with the image as a multipart file field."""
    boundary = "tudui-bench-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /predict?topk={topk} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def exchange(reader, writer, request: bytes) -> tuple:
    """Send a prepared request on an open connection; -> (status, JSON body). A lean client (no HTTP library),
    so that the clients cost this machine little next to the server they measure."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(ln.split(":", 1)[1]) for ln in lines[1:] if ln.lower().startswith("content-length:"))
    return status, json.loads(await reader.readexactly(length))


async def load(port: int, uploads: list, clients: int, requests: int, max_seconds: float, reference=None,
               server_pid: int = 0) -> dict:
    prepared = [multipart_request(port, name, data) for name, data in uploads]
    latencies, answers = [], []
    next_index = 0
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(clients)]
    try:
        # warm-up (not counted): every connection together, for at least 2 rounds and 0.3 s, so that the
        # server process just switched to has its caches and allocator warm again
        warm_until, rounds = time.perf_counter() + 0.3, 0
        while rounds < 2 or time.perf_counter() < warm_until:
            await asyncio.gather(*(exchange(r, w, prepared[i % len(prepared)]) for i, (r, w) in enumerate(conns)))
            rounds += 1
        start = time.perf_counter()
        cpu0, server_cpu0 = time.process_time(), cpu_seconds(server_pid)
        stop_at = start + max_seconds

        async def one_client(reader, writer):
            nonlocal next_index
            while next_index < requests and time.perf_counter() < stop_at:
                i = next_index
                next_index += 1
                t0 = time.perf_counter()
                status, body = await exchange(reader, writer, prepared[i % len(prepared)])
                latencies.append(time.perf_counter() - t0)
                answers.append((i % len(prepared), status, body))

        await asyncio.gather(*(one_client(r, w) for r, w in conns))
        wall = time.perf_counter() - start
        client_cpu, server_cpu = time.process_time() - cpu0, cpu_seconds(server_pid) - server_cpu0
    finally:
        for _, w in conns:
            w.close()
    ok = [a for a in answers if a[1] == 200]
    out = {"clients": clients, "requests": len(answers), "errors": len(answers) - len(ok), "seconds": round(wall, 3),
           "images_per_s": round(len(ok) / wall, 1),
           "p50_ms": round(1000 * statistics.median(latencies), 2),
           "p95_ms": round(1000 * statistics.quantiles(latencies, n=20)[18], 2) if len(latencies) >= 20 else None,
           "server_cpu_ms_per_request": round(1000 * server_cpu / max(1, len(answers)), 2),
           "client_cpu_ms_per_request": round(1000 * client_cpu / max(1, len(answers)), 2)}
    if reference is not None:
        checks = [compare(body, reference[i]) for i, status, body in ok]
        out["all_equal_sequential"] = all(same for same, _ in checks) and len(ok) == len(answers)
        out["max_prob_diff"] = max(d for _, d in checks) if checks else None
    out["latencies"] = latencies
    return out


def combine(rounds: list) -> dict:
    """The rounds of one cell: images/s as the median round (and every round's), latencies pooled."""
    lat = sorted(x for r in rounds for x in r.pop("latencies"))
    return {"clients": rounds[0]["clients"], "rounds": len(rounds),
            "requests": sum(r["requests"] for r in rounds), "errors": sum(r["errors"] for r in rounds),
            "images_per_s": statistics.median(r["images_per_s"] for r in rounds),
            "images_per_s_each_round": [r["images_per_s"] for r in rounds],
            "p50_ms": round(1000 * statistics.median(lat), 2),
            "p95_ms": round(1000 * statistics.quantiles(lat, n=20)[18], 2) if len(lat) >= 20 else None,
            "server_cpu_ms_per_request": round(statistics.mean(r["server_cpu_ms_per_request"] for r in rounds), 2),
            "client_cpu_ms_per_request": round(statistics.mean(r["client_cpu_ms_per_request"] for r in rounds), 2),
            "all_equal_sequential": all(r["all_equal_sequential"] for r in rounds),
            "max_prob_diff": max(r["max_prob_diff"] for r in rounds)}


async def sequential_answers(url: str, uploads: list) -> list:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        out = []
        for name, data in uploads:
            r = await client.post("/predict?topk=5", files={"file": (name, data, "image/jpeg")})
            r.raise_for_status()
            out.append(r.json())
        return out


def serve_files(args) -> dict:
    """--files: each LABEL=PATH served with batching, the rounds interleaving the files."""
    files = dict(f.split("=", 1) for f in args.files)
    uploads = images_for("resnet18_224" if args.file_images == "hymenoptera" else "course32", args.images)
    servers = {label: Server(path, "batched", args.threads) for label, path in files.items()}
    out = {}
    for server in servers.values():
        server.__enter__()
    try:
        refs = {label: asyncio.run(sequential_answers(srv.url, uploads)) for label, srv in servers.items()}
        cells = {(label, c): [] for label in files for c in args.clients}
        for rnd in range(args.rounds):
            for clients in args.clients:
                for label, server in servers.items():
                    row = asyncio.run(load(server.port, uploads, clients, args.requests // args.rounds,
                                           args.max_seconds / args.rounds, refs[label], server.proc.pid))
                    log(f"{label} round {rnd + 1} clients={clients}: {row['images_per_s']} img/s, p50 {row['p50_ms']} ms")
                    cells[(label, clients)].append(row)
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)
    for label, path in files.items():
        out[label] = {"path": path, "bytes": os.path.getsize(path), "runs": [combine(cells[(label, c)])
                                                                            for c in args.clients]}
    first = next(iter(files))
    for label in files:
        out[label][f"images_per_s_over_{first}"] = {
            r["clients"]: round(r["images_per_s"] / b["images_per_s"], 2) for r, b in zip(out[label]["runs"],
                                                                                           out[first]["runs"])}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--requests", type=int, default=510, help="requests per cell, all rounds (default 510)")
    ap.add_argument("--max-seconds", type=float, default=15.0,
                    help="time cap per cell, all rounds (default 15)")
    ap.add_argument("--images", type=int, default=64, help="distinct images per model (default 64)")
    ap.add_argument("--threads", type=int, default=1, help="the server's torch threads (default 1)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per cell, the modes interleaved (default 3)")
    ap.add_argument("--files", nargs="+", default=None, metavar="LABEL=PATH",
                    help="serve these model files (with batching) instead of --models")
    ap.add_argument("--file-images", choices=["hymenoptera", "cifar"], default="hymenoptera")
    ap.add_argument("--save", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.files:
        emit({"benchmark": "serve_load --files", "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
              "machine": machine(), "server_threads": args.threads, "mode": " ".join(MODES["batched"]),
              "note": "server and clients share this machine's cores", "files": serve_files(args)}, args.save)
        return

    result = {"benchmark": "serve_load", "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
              "machine": machine(), "server_threads": args.threads,
              "modes": {m: " ".join(flags) for m, flags in MODES.items()},
              "note": "server and clients share this machine's cores; models have random (seeded) weights",
              "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models:
            ckpt = make_checkpoint(key, tmp)
            uploads = images_for(key, args.images)
            entry = {"model": MODELS[key][0], "img_size": MODELS[key][1], "upload_bytes_mean":
                     round(statistics.mean(len(d) for _, d in uploads)), "runs": {}}
            servers = {mode: Server(ckpt, mode, args.threads) for mode in MODES}
            for server in servers.values():
                server.__enter__()
            try:
                reference = asyncio.run(sequential_answers(servers["one_at_a_time"].url, uploads))
                cells = {(m, c): [] for m in MODES for c in args.clients}
                # rounds interleave the modes, so that load from elsewhere on the machine hits both alike
                for rnd in range(args.rounds):
                    for clients in args.clients:
                        for mode, server in servers.items():
                            row = asyncio.run(load(server.port, uploads, clients, args.requests // args.rounds,
                                                   args.max_seconds / args.rounds, reference, server.proc.pid))
                            log(f"{key} round {rnd + 1} {mode} clients={clients}: {row['images_per_s']} img/s, "
                                f"p50 {row['p50_ms']} ms, equal={row['all_equal_sequential']}, cpu/request server "
                                f"{row['server_cpu_ms_per_request']} ms client {row['client_cpu_ms_per_request']} ms")
                            cells[(mode, clients)].append(row)
            finally:
                for server in servers.values():
                    server.__exit__(None, None, None)
            entry["runs"] = {m: [combine(cells[(m, c)]) for c in args.clients] for m in MODES}
            by = {m: {r["clients"]: r["images_per_s"] for r in rows} for m, rows in entry["runs"].items()}
            entry["batched_over_one_at_a_time"] = {c: round(by["batched"][c] / by["one_at_a_time"][c], 2)
                                                   for c in args.clients}
            result["models"][key] = entry
    emit(result, args.save)


if __name__ == "__main__":
    main()
