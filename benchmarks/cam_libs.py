"""Grad-CAM with captum's LayerGradCam against the grad-cam package (pytorch-grad-cam), same models, same
images, same target classes: seconds per image and the agreement of the maps (Pearson correlation after both
are upsampled to the input size and scaled to [0, 1]). Untrained weights are enough to compare the two
implementations of one formula; the maps differ only if one of them computes something else.

    cpu-bench python benchmarks/cam_libs.py [--n 32] [--repeats 3] [--save benchmarks/results/cam_libs.json]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _report import emit, machine  # noqa: E402


def grad_cam_pkg(model, layer, x, targets):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    with GradCAM(model=model, target_layers=[layer]) as cam:
        return torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets]))


def best_time(fn, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--save", default=None)
    args = ap.parse_args()
    from tudui import models
    from tudui.report.cam import gradcam, last_conv
    torch.manual_seed(0)
    rows = []
    for name, size in (("tudui", 32), ("fastnet", 32), ("resnet18", 64)):
        model = models.create(name, 10, 3, size).eval()
        x = torch.randn(args.n, 3, size, size)
        with torch.no_grad():
            targets = model(x).argmax(1)
        t_captum, a = best_time(lambda: gradcam(model, x, targets), args.repeats)
        t_pkg, b = best_time(lambda: grad_cam_pkg(model, last_conv(model), x, targets), args.repeats)
        b = b / b.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1)
        corr = [float(torch.corrcoef(torch.stack([p.flatten(), q.flatten()]))[0, 1])
                for p, q in zip(a, b) if p.std() > 0 and q.std() > 0]
        rows.append({"model": name, "image_size": size, "images": args.n,
                     "captum_ms_per_image": round(1000 * t_captum / args.n, 3),
                     "grad_cam_ms_per_image": round(1000 * t_pkg / args.n, 3),
                     "map_correlation_min": round(min(corr), 4) if corr else None,
                     "map_correlation_mean": round(sum(corr) / len(corr), 4) if corr else None,
                     "images_compared": len(corr)})
    import captum
    import importlib.metadata as md
    emit({"benchmark": "cam_libs", "command": "python benchmarks/cam_libs.py " + " ".join(sys.argv[1:]),
          "machine": machine(), "captum": captum.__version__, "grad_cam": md.version("grad-cam"),
          "results": rows}, save=args.save)


if __name__ == "__main__":
    main()
