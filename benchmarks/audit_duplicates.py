"""Duplicates and leaks injected into a CIFAR-10 subset (a folder of the JPEGs): 50 exact copies, 50 near copies
(JPEG quality 50, resize by +-10%, a 5% crop, a horizontal flip; 12-13 of each) and 20 train/test leaks (10 exact,
10 near), then `tudui audit` with each way of finding near copies (perceptual hash, model features, both).
Recall and precision per kind; CIFAR-10 itself holds some duplicates, so a "false" flag may be a real one.

    python benchmarks/audit_duplicates.py --cifar /tmp/cifar10-jpeg --save benchmarks/results/audit_duplicates.json
    python benchmarks/audit_duplicates.py --mnist ../shared/datasets --methods phash --min-corr 0.95,0.97,0.98,0.99

--mnist DATA_DIR writes a subset of MNIST (from DATA_DIR/MNIST/raw) as grayscale PNGs and injects the same copies
there; --min-corr sweeps the pixel-correlation threshold of the near-copy check (handwritten digits correlate
highly with each other, so the threshold that suits photos flags distinct digits as copies).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))

import tudui  # noqa: E402
from _report import emit, machine  # noqa: E402

NEAR = ("jpeg50", "resize", "crop5", "hflip")


def near_copy(src: str, dst: str, how: str, rng) -> str:
    im = Image.open(src)
    im = im.convert("L" if im.mode in ("L", "1", "I;16") else "RGB")  # grayscale stays grayscale
    w, h = im.size
    if how == "jpeg50":
        dst += ".jpg"
        im.save(dst, quality=50)
        return dst
    if how == "resize":
        f = 1.1 if rng.random() < 0.5 else 0.9
        im = im.resize((round(w * f), round(h * f)), Image.BICUBIC)
    elif how == "crop5":  # 5% of the area off two random sides
        dx, dy = round(w * 0.025), round(h * 0.025)
        x0, y0 = int(rng.integers(0, 2 * dx + 1)), int(rng.integers(0, 2 * dy + 1))
        im = im.crop((x0, y0, x0 + w - 2 * dx, y0 + h - 2 * dy))
    elif how == "hflip":
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    dst += ".png"
    im.save(dst)
    return dst


def build(cifar: str, root: str, per_class_train: int, per_class_test: int, seed: int) -> dict:
    """root/{train,test}/<class>/ with symlinks to the originals plus the injected files -> ground truth
    {relative path: (kind, detail)}."""
    rng = np.random.default_rng(seed)
    shutil.rmtree(root, ignore_errors=True)
    chosen = {}
    for split, n in (("train", per_class_train), ("test", per_class_test)):
        for cls in sorted(os.listdir(os.path.join(cifar, split))):
            files = sorted(os.listdir(os.path.join(cifar, split, cls)))
            pick = sorted(rng.permutation(len(files))[:n].tolist())
            os.makedirs(os.path.join(root, split, cls))
            for i in pick:
                os.symlink(os.path.join(cifar, split, cls, files[i]), os.path.join(root, split, cls, files[i]))
                chosen.setdefault(split, []).append(f"{split}/{cls}/{files[i]}")
    sources = [chosen["train"][i] for i in rng.permutation(len(chosen["train"]))[:120]]
    truth = {}
    for k, rel in enumerate(sources):
        cls = rel.split("/")[1]
        src = os.path.join(root, rel)
        if k < 50:
            dst = f"train/{cls}/inj_exact_{k}.jpg"
            shutil.copy(src, os.path.join(root, dst))
            truth[dst] = ("exact_duplicate", "copy")
        elif k < 100:
            how = NEAR[(k - 50) % 4]
            dst = near_copy(src, os.path.join(root, f"train/{cls}/inj_near_{k}_{how}"), how, rng)
            truth[os.path.relpath(dst, root)] = ("near_duplicate", how)
        elif k < 110:
            dst = f"test/{cls}/inj_leak_{k}.jpg"
            shutil.copy(src, os.path.join(root, dst))
            truth[dst] = ("leak", "exact")
        else:
            how = NEAR[(k - 110) % 4]
            dst = near_copy(src, os.path.join(root, f"test/{cls}/inj_leak_{k}_{how}"), how, rng)
            truth[os.path.relpath(dst, root)] = ("leak", how)
    return truth


def mnist_folder(data_dir: str, dst: str, per_class_train: int, per_class_test: int, seed: int) -> str:
    """A subset of MNIST as dst/{train,test}/<digit>/NNNNN.png (grayscale), the form build() copies from."""
    from tudui.data import load_source
    src = load_source("mnist", data_dir=data_dir, seed=seed)
    rng = np.random.default_rng(seed)
    shutil.rmtree(dst, ignore_errors=True)
    for split, name, n in (("train", "train", per_class_train), ("val", "test", per_class_test)):
        part = src.splits[split]
        targets = np.asarray(part.targets)
        for c, cls in enumerate(src.classes):
            os.makedirs(os.path.join(dst, name, str(cls)))
            rows = rng.permutation(np.flatnonzero(targets == c))[:n]
            for i in sorted(rows.tolist()):
                arr = np.asarray(part.images[i]).reshape(28, 28).astype(np.uint8)
                Image.fromarray(arr, "L").save(os.path.join(dst, name, str(cls), f"{i:05d}.png"))
    return dst


def measure(result, truth: dict) -> dict:
    out = {}
    for kind in ("exact_duplicate", "near_duplicate", "leak"):
        flagged = {r["id"] for r in result.rows if r["issue"] == kind}
        injected = {p for p, (k, _) in truth.items() if k == kind}
        hit = flagged & injected
        out[kind] = {"injected": len(injected), "flagged": len(flagged), "found": len(hit),
                     "recall": round(len(hit) / max(1, len(injected)), 4),
                     "precision": round(len(hit) / max(1, len(flagged)), 4)}
        per = {}
        for p, (k, how) in truth.items():
            if k == kind:
                per.setdefault(how, [0, 0])
                per[how][0] += 1
                per[how][1] += p in flagged
        out[kind]["recall_by_copy"] = {h: round(f / n, 4) for h, (n, f) in per.items()}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--cifar", help="the extracted CIFAR-10 JPEG folder (train/, test/)")
    src.add_argument("--mnist", metavar="DATA_DIR", help="the folder holding MNIST/raw (a subset is written as PNGs)")
    ap.add_argument("--methods", default="phash,features,both", help="near-copy methods to measure")
    ap.add_argument("--min-corr", default="0.95", help="comma-separated pixel-correlation thresholds to sweep")
    ap.add_argument("--work", default="/tmp/audit_duplicates")
    ap.add_argument("--train-per-class", type=int, default=500)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", default=None)
    a = ap.parse_args(argv)
    root = os.path.join(a.work, "data")
    shutil.rmtree(os.path.join(a.work, "runs"), ignore_errors=True)  # the feature model is trained anew
    origin = a.cifar or mnist_folder(a.mnist, os.path.join(a.work, "mnist"), a.train_per_class, a.test_per_class,
                                     a.seed)
    truth = build(origin, root, a.train_per_class, a.test_per_class, a.seed)
    t0 = time.perf_counter()
    run = tudui.train(root, epochs=a.epochs, device="cpu", progress=False, out=os.path.join(a.work, "runs"),
                      name="features", seed=a.seed)
    train_seconds = time.perf_counter() - t0
    results = {"machine": machine(), "command": " ".join(sys.argv), "images": sum(len(f) for _, _, f in os.walk(root)),
               "feature_model": f"course network, {a.epochs} epochs, val_acc {run.final.get('val_acc')}",
               "feature_model_seconds": round(train_seconds, 1), "methods": {}}
    results["data"] = "mnist" if a.mnist else "cifar10"
    for near in a.methods.split(","):
        for corr in [float(c) for c in a.min_corr.split(",")]:
            t1 = time.perf_counter()
            res = tudui.audit(root, out=None, run=run.run_dir, folds=0, near=near, min_corr=corr, device="cpu",
                              progress=False)
            key = near if corr == 0.95 and "," not in a.min_corr else f"{near}@{corr}"
            results["methods"][key] = {"seconds": round(time.perf_counter() - t1, 1), "min_corr": corr,
                                       **measure(res, truth)}
            print(key, json.dumps(results["methods"][key]), file=sys.stderr, flush=True)
    emit(results, a.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
