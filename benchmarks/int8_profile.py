"""Where the time goes in a float32 and an int8 ONNX model: onnxruntime's own profiler, per operator type, at
one batch size. It explains a model that gains nothing from int8 (operators left in float32, quantize and
dequantize steps around small layers, memory-bound layers). Run under `cpulock bench`.

    python benchmarks/int8_profile.py best.onnx best.int8.onnx --batch 64 --save benchmarks/results/x.json
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
import time

import numpy as np

from _report import emit, machine  # benchmarks/_report.py, beside this script


def profile(path: str, batch: int, runs: int, threads: int) -> dict:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="ort-prof-"), "p")
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [batch] + [int(d) for d in inp.shape[1:]]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    sess.run(None, {inp.name: x})  # warm-up (profiled too; dropped below by counting only the last runs)
    t0 = time.perf_counter()
    for _ in range(runs):
        sess.run(None, {inp.name: x})
    wall = (time.perf_counter() - t0) / runs
    trace = json.load(open(sess.end_profiling()))
    per_op: dict = collections.defaultdict(float)
    nodes = [e for e in trace if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_run = len(nodes) // (runs + 1)
    for e in nodes[per_run:]:  # skip the warm-up run
        per_op[e["args"].get("op_name", "?")] += e["dur"] / 1000 / runs
    total = sum(per_op.values())
    ops = sorted(per_op.items(), key=lambda kv: -kv[1])
    return {"file": path, "ms_per_batch_wall": wall * 1000, "ms_per_batch_kernels": total,
            "images_per_s": batch / wall,
            "per_op_ms": [{"op": k, "ms": v, "share": v / total if total else 0} for k, v in ops]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help=".onnx files (e.g. float32 then int8)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--save", default=None)
    p.add_argument("--note", default="")
    args = p.parse_args()
    from format_bench import lscpu_model
    result = {"machine": machine(), "lscpu_model_name": lscpu_model(), "batch": args.batch, "runs": args.runs,
              "threads": args.threads, "note": args.note,
              "models": [profile(m, args.batch, args.runs, args.threads) for m in args.models]}
    emit(result, args.save)


if __name__ == "__main__":
    main()
