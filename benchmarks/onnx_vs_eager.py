"""onnxruntime (CPU) against PyTorch eager on this CPU, side by side in one run: latency at batch 1 and
throughput at batch 64, for the course network (3x32x32) and resnet18 at its usual 224x224.

Both models have random weights (speed does not depend on them); each is exported with `tudui.export` (which
checks the file against eager first) and run through tudui's own paths: `Classifier.logits` for eager
(torch.no_grad, NCHW), `OnnxPredictor.logits` for onnxruntime (tensor -> numpy -> session.run -> tensor).
Both runtimes use torch's thread count (onnxruntime's intra-op threads follow it). The rounds alternate
between the runtimes, so load from other processes hits both alike; figures are medians.

    python benchmarks/onnx_vs_eager.py [--quick] [--save benchmarks/results/onnx_vs_eager-NAME.json]
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import emit, machine  # noqa: E402


def build(name: str, size: int, classes: int = 10):
    import tudui
    from tudui.data.preprocess import make_preprocess
    torch.manual_seed(0)
    net = tudui.models.create(name, classes, in_channels=3, img_size=(size, size)).eval()
    pre = make_preprocess((size, size), 3, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    return tudui.Classifier(model=net, classes=[str(i) for i in range(classes)], preprocess=pre)


def timed(fn, x, n: int) -> list:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - t)
    return out


def bench(name: str, size: int, rounds: int, lat_n: int, thr_n: int, folder: str) -> dict:
    import tudui
    from tudui.infer import open_predictor
    clf = build(name, size)
    t = time.perf_counter()
    exp = tudui.export(clf, out=os.path.join(folder, f"{name}.onnx"))
    export_s = time.perf_counter() - t
    ort = open_predictor(exp["path"])
    runners = {"eager": clf.logits, "onnxruntime": ort.logits}
    x1, x64 = torch.randn(1, 3, size, size), torch.randn(64, 3, size, size)
    for fn in runners.values():  # warm up: first calls allocate and pick kernels
        fn(x1), fn(x64)
    lat = {k: [] for k in runners}
    thr = {k: [] for k in runners}
    for r in range(rounds):
        for k, fn in (runners.items() if r % 2 == 0 else reversed(list(runners.items()))):
            lat[k] += timed(fn, x1, lat_n)
            thr[k] += [64 / s for s in timed(fn, x64, thr_n)]
        print(f"{name}: round {r + 1}/{rounds}", file=sys.stderr)
    res = {}
    for k in runners:
        ms = sorted(v * 1000 for v in lat[k])
        res[k] = {"latency_b1_ms_median": statistics.median(ms), "latency_b1_ms_p90": ms[int(0.9 * (len(ms) - 1))],
                  "throughput_b64_img_s_median": statistics.median(thr[k]), "samples_b1": len(ms),
                  "samples_b64": len(thr[k])}
    res["onnxruntime_speedup"] = {
        "latency_b1": res["eager"]["latency_b1_ms_median"] / res["onnxruntime"]["latency_b1_ms_median"],
        "throughput_b64": res["onnxruntime"]["throughput_b64_img_s_median"] / res["eager"]["throughput_b64_img_s_median"]}
    res["input"] = [3, size, size]
    res["export"] = {"seconds_incl_check": export_s, "max_abs_diff": exp["max_abs_diff"], "opset": exp["opset"],
                     "bytes": exp["bytes"]}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    ap.add_argument("--save", default=None, help="also write the JSON here")
    args = ap.parse_args()
    import onnxruntime
    rounds = 2 if args.quick else 4
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        results = {"course (tudui)": bench("tudui", 32, rounds, 50, 10, folder),
                   "resnet18": bench("resnet18", 224, rounds, 10, 2, folder)}
    emit({"benchmark": "onnx_vs_eager", "machine": machine(), "onnxruntime": onnxruntime.__version__,
          "threads": torch.get_num_threads(), "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
          "seconds": time.perf_counter() - t0, "results": results}, save=args.save)


if __name__ == "__main__":
    main()
