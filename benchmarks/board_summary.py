"""What the end-of-training TensorBoard pages (tudui.report.summary.write_summary: one more pass over the
validation split, the confusion-matrix and mistakes images with Grad-CAM, hparams, the model graph) add to a
run, against one evaluation of the same model on the same split (Trainer.evaluate).

    cpu-bench python benchmarks/board_summary.py [--data ~/.cache/tudui/cifar10-jpeg] [--model fastnet]
        [--save benchmarks/results/board_summary-cifar10.json]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _report import emit, machine  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.expanduser("~/.cache/tudui/cifar10-jpeg"))
    ap.add_argument("--model", default="fastnet")
    ap.add_argument("--save", default=None)
    args = ap.parse_args()
    from torch.utils.tensorboard import SummaryWriter

    from tudui.config import resolve
    from tudui.engine.trainer import Trainer
    from tudui.report.summary import write_summary
    cfg = resolve({"data": args.data, "model": args.model, "epochs": 1, "device": "cpu"})
    tr = Trainer(cfg, progress=False)  # untrained weights: the cost does not depend on them
    tr.evaluate()  # warm-up
    t0 = time.perf_counter()
    tr.evaluate()
    ev = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        tb = SummaryWriter(d)
        t0 = time.perf_counter()
        write_summary(tb, tr)
        summ = time.perf_counter() - t0
        tb.close()
    emit({"benchmark": "board_summary", "command": "python benchmarks/board_summary.py " + " ".join(sys.argv[1:]),
          "machine": machine(), "data": args.data, "model": args.model, "val_images": len(tr.data.val.targets),
          "evaluate_seconds": round(ev, 3), "summary_seconds": round(summ, 3), "ratio": round(summ / ev, 3)},
         save=args.save)


if __name__ == "__main__":
    main()
