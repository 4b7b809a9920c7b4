"""`tudui predict FOLDER --out preds.csv` on the CIFAR-10 JPEG test folder (10,000 files) against `tudui eval` on
the same images, and the peak RSS of predict over the 50,000-file train folder (against the 10,000 of test:
flat memory means the same figure).

The checkpoint is fastnet (the CIFAR speed net, default widths 64,128,128) with random weights, saved with the
data spec of the CIFAR folder so `tudui eval` reads the same test images; speed does not depend on the weights,
and the accuracy of predict's CSV (label == the file's folder) must equal eval's accuracy, which is checked.
Each command runs as a fresh process, as users run it (`python -m tudui ...`); wall time includes start-up,
and the tool's own figure (predict's "seconds", from the first file to the last row) is reported too.
eval runs twice: with an empty decode cache (it decodes all 10,000 JPEGs) and again with the cache warm.

    python benchmarks/predict_stream.py [--data ~/.cache/tudui/cifar10-jpeg] [--save benchmarks/results/NAME.json]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import emit, machine  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_checkpoint(path: str, data: str, model: str = "fastnet") -> None:
    import dataclasses

    import torch

    import tudui
    from tudui.checkpoint import save
    from tudui.config import TrainConfig
    from tudui.data.preprocess import make_preprocess
    torch.manual_seed(0)
    classes = sorted(os.listdir(os.path.join(data, "test")))
    net = tudui.models.create(model, len(classes), in_channels=3, img_size=(32, 32)).eval()
    cfg = dataclasses.asdict(TrainConfig(data=data, model=model, batch_size=256))
    pre = make_preprocess((32, 32), 3, [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])
    spec = {"name": model, "num_classes": len(classes), "in_channels": 3, "img_size": [32, 32], "args": {}}
    save(path, model_state=net.state_dict(), model_spec=spec, classes=classes, preprocess=pre, config=cfg)


def run(cmd: list, env: dict) -> dict:
    """Run a command; -> wall seconds, peak RSS (from wait4) and its stdout."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "stdout": out.decode()}


def csv_accuracy(path: str) -> tuple:
    n = ok = failed = 0
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            n += 1
            if row["error"]:
                failed += 1
            ok += row["label"] == os.path.basename(os.path.dirname(row["path"]))
    return n, failed, ok / max(1, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.expanduser("~/.cache/tudui/cifar10-jpeg"))
    ap.add_argument("--save", default=None)
    ap.add_argument("--skip-train-folder", action="store_true", help="no 50,000-file RSS run")
    args = ap.parse_args()
    t0 = time.perf_counter()
    tudui_cmd = [sys.executable, "-m", "tudui"]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"), TUDUI_CACHE_DIR=os.path.join(tmp, "cache"))
        ck = os.path.join(tmp, "fastnet.pt")
        make_checkpoint(ck, args.data)
        subprocess.run(tudui_cmd + ["export", ck, "--out", os.path.join(tmp, "fastnet.onnx")], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        test = os.path.join(args.data, "test")
        res = {}
        for key, model in (("predict_checkpoint", ck), ("predict_onnx", os.path.join(tmp, "fastnet.onnx"))):
            out = os.path.join(tmp, f"{key}.csv")
            r = run(tudui_cmd + ["predict", model, test, "--out", out, "--json", "--no-progress", "--topk", "3"], env)
            info = json.loads(r["stdout"])
            n, failed, acc = csv_accuracy(out)
            res[key] = {"images": info["images"], "failed": failed, "wall_s": r["wall_s"],
                        "images_per_s_wall": info["images"] / r["wall_s"], "tool_seconds": info["seconds"],
                        "images_per_s_tool": info["images"] / info["seconds"], "peak_rss_mb": r["peak_rss_mb"],
                        "accuracy_from_csv": acc}
            print(key, json.dumps(res[key]), file=sys.stderr)
        for key in ("eval_cold_cache", "eval_warm_cache"):
            r = run(tudui_cmd + ["eval", ck, "--split", "test", "--json", "--data", args.data], env)
            ev = json.loads(r["stdout"])
            res[key] = {"images": ev["num_samples"], "wall_s": r["wall_s"],
                        "images_per_s_wall": ev["num_samples"] / r["wall_s"], "peak_rss_mb": r["peak_rss_mb"],
                        "accuracy": ev["accuracy"]}
            print(key, json.dumps(res[key]), file=sys.stderr)
        res["predict_accuracy_equals_eval"] = abs(res["predict_checkpoint"]["accuracy_from_csv"]
                                                  - res["eval_warm_cache"]["accuracy"]) < 1e-9
        if not args.skip_train_folder:
            out = os.path.join(tmp, "train.csv")
            r = run(tudui_cmd + ["predict", ck, os.path.join(args.data, "train"), "--out", out, "--json",
                                 "--no-progress"], env)
            info = json.loads(r["stdout"])
            res["predict_train_folder"] = {"images": info["images"], "wall_s": r["wall_s"],
                                           "images_per_s_tool": info["images"] / info["seconds"],
                                           "peak_rss_mb": r["peak_rss_mb"]}
    emit({"benchmark": "predict_stream", "machine": machine(), "checkpoint": "fastnet, random weights, 32x32",
          "command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "seconds": time.perf_counter() - t0,
          "results": res}, save=args.save)


if __name__ == "__main__":
    main()
