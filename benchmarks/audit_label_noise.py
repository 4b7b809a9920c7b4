"""Synthetic label noise: flip a share of the training labels (uniformly, or to a fixed confusable partner class)
and measure how well `tudui.audit` finds them: precision, recall and F1 of the flagged set, AUROC of the ranking,
agreement with cleanlab (AGPL, benchmark only) on the same probabilities, wall time against one training run;
and, with --retrain, the clean-test accuracy of a model trained on the noisy set before and after dropping the
flagged images.

    python benchmarks/audit_label_noise.py --data digits --save benchmarks/results/audit_label_noise-digits.json
    python benchmarks/audit_label_noise.py --data mnist --data-dir ../shared/datasets --n 10000 --retrain
    python benchmarks/audit_label_noise.py --data CIFAR10_FOLDER --recipe cifar10-speed --ensemble 2 --tta off
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))

import tudui  # noqa: E402
from _report import emit, machine  # noqa: E402
from tudui.audit.oos import final_model, fit_quietly, forward, sub_source  # noqa: E402
from tudui.audit.pool import build_pool  # noqa: E402
from tudui.config import resolve  # noqa: E402
from tudui.data import load_source  # noqa: E402
from tudui.data.splits import ArraySplit  # noqa: E402

# confusable partners (a label is flipped to its partner): digit pairs people confuse; CIFAR-10's animal/vehicle pairs
PAIRS = {"digits": {0: 6, 1: 7, 2: 7, 3: 5, 4: 9, 5: 3, 6: 0, 7: 1, 8: 3, 9: 4},
         "cifar10": {0: 8, 1: 9, 2: 0, 3: 5, 4: 7, 5: 3, 6: 2, 7: 4, 8: 0, 9: 1}}


def subset(src, n: int, n_test: int, seed: int):
    """First `n` training images (stratified by a seeded shuffle) and `n_test` held-out ones, as arrays."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, count in (("train", n), ("val", n_test)):
        split = src.splits[name]
        idx = np.sort(rng.permutation(len(split))[:min(count, len(split))])
        out[name] = split.subset(idx.tolist())
    return out


def flip(labels: np.ndarray, share: float, kind: str, k: int, family: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    noisy = labels.copy()
    rows = rng.permutation(len(labels))[:int(round(share * len(labels)))]
    if kind == "uniform":
        noisy[rows] = (labels[rows] + rng.integers(1, k, len(rows))) % k  # always a different class
    else:
        partner = PAIRS[family]
        noisy[rows] = [partner[int(c)] for c in labels[rows]]
    return noisy


def split_positions(split):
    """-> id -> index in `split`: audit ids are 'train:INDEX' for arrays, file paths for a folder's files."""
    paths = {os.path.abspath(p): k for k, p in enumerate(getattr(split, "paths", []) or [])}

    def position(ident: str) -> int:
        if ident.startswith("train:") and ident[6:].isdigit():
            return int(ident[6:])
        return paths[os.path.abspath(ident)]
    return position


def scores(flagged: np.ndarray, truth: np.ndarray, badness: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score
    tp = int((flagged & truth).sum())
    p = tp / max(1, int(flagged.sum()))
    r = tp / max(1, int(truth.sum()))
    return {"flagged": int(flagged.sum()), "true_errors": int(truth.sum()), "precision": round(p, 4),
            "recall": round(r, 4), "f1": round(2 * p * r / max(1e-9, p + r), 4),
            "auroc": round(float(roc_auc_score(truth, badness)), 4)}


def versus_cleanlab(probs: np.ndarray, labels: np.ndarray, ours: np.ndarray, quality: np.ndarray) -> dict:
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:
        return {"cleanlab": "not installed"}
    from scipy.stats import spearmanr
    theirs = find_label_issues(labels, probs, filter_by="prune_by_noise_rate")
    ranked = find_label_issues(labels, probs, filter_by="prune_by_noise_rate", return_indices_ranked_by="self_confidence")
    both = np.flatnonzero(ours & theirs)
    our_rank = {r: k for k, r in enumerate(np.flatnonzero(ours)[np.argsort(quality[ours], kind="stable")])}
    their_rank = {r: k for k, r in enumerate(ranked)}
    rho = spearmanr([our_rank[r] for r in both], [their_rank[r] for r in both]).statistic if len(both) > 2 else None
    return {"cleanlab_flagged": int(theirs.sum()), "tudui_flagged": int(ours.sum()), "both": int(len(both)),
            "jaccard": round(len(both) / max(1, int((ours | theirs).sum())), 4),
            "rank_spearman_on_common": round(float(rho), 4) if rho is not None else None}


def clean_test_accuracy(cfg, base, pool, train_rows, test_rows) -> float:
    tr = fit_quietly(cfg, sub_source(base, pool, train_rows, test_rows))
    logits, _ = forward(final_model(tr), tr.data.val)
    return float((logits.argmax(1).numpy() == pool.labels[test_rows]).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="digits")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--n", type=int, default=10000, help="training images (a seeded subset)")
    ap.add_argument("--n-test", type=int, default=2000, help="clean held-out images")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--noise", default="0.05,0.2")
    ap.add_argument("--kinds", default="uniform,pairs")
    ap.add_argument("--retrain", action="store_true", help="retrain without the flagged images (20%% uniform)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ensemble", type=int, default=1, help="cross-validation repeats averaged (tudui audit --ensemble)")
    ap.add_argument("--tta", choices=["on", "off"], default=None,
                    help="out-of-sample probabilities with (or without) flip + shift TTA (default: as configured)")
    ap.add_argument("--model", default=None, help="model of the cross-validation runs (default: tudui's default)")
    ap.add_argument("--recipe", default=None, help="a training recipe for the cross-validation runs")
    ap.add_argument("--amp", default=None, help="--amp of the cross-validation runs (e.g. auto)")
    ap.add_argument("--save", default=None)
    a = ap.parse_args(argv)
    train_opts = {k: v for k, v in (("model", a.model), ("recipe", a.recipe), ("amp", a.amp)) if v}
    if a.tta:
        train_opts["tta"] = a.tta == "on"
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    src = load_source(a.data, data_dir=a.data_dir, seed=a.seed)
    family = "digits" if a.data in ("digits", "mnist", "fashion-mnist") else "cifar10"
    parts = subset(src, a.n, a.n_test, a.seed)
    results = {"machine": machine(), "command": " ".join(sys.argv), "data": a.data, "train_images": len(parts["train"]),
               "test_images": len(parts["val"]), "folds": a.folds, "epochs": a.epochs, "ensemble": a.ensemble,
               "training_options": train_opts, "runs": []}
    for share in [float(x) for x in a.noise.split(",")]:
        for kind in a.kinds.split(","):
            train = parts["train"]
            true = np.asarray(train.targets)
            noisy = flip(true, share, kind, len(src.classes), family, a.seed)
            noisy_train = train.subset(range(len(train)))
            noisy_train.targets = noisy.tolist()
            data = type(src)(name=f"{a.data}-noisy", classes=src.classes, splits={"train": noisy_train,
                                                                                     "val": parts["val"]},
                             channels=src.channels, native_size=src.native_size, hflip=src.hflip,
                             default_size=src.default_size)
            t0 = time.perf_counter()
            res = tudui.audit(data, out=None, split="train", folds=a.folds, epochs=a.epochs, near="none",
                              device="cpu", progress=False, seed=a.seed, ensemble=a.ensemble, **train_opts)
            seconds = time.perf_counter() - t0
            d = res.details
            position = split_positions(noisy_train)  # a row's id -> its index in the training split
            rows = np.flatnonzero(d["split"] == "train")
            order = np.argsort([position(i) for i in np.asarray(d["ids"], dtype=object)[rows]])
            rows = rows[order]  # pool rows in the split's order
            flagged = np.zeros(len(train), bool)
            flagged_ids = {r["id"] for r in res.rows if r["issue"] == "label" and r["split"] == "train"}
            flagged[[position(i) for i in flagged_ids]] = True
            truth = noisy != true
            q = d["label_quality"][rows]
            run = {"noise": share, "kind": kind, **scores(flagged, truth, 1 - q),
                   "out_of_sample_accuracy_vs_given": res.summary["labels"][f"{a.folds}-fold cross-validation"]["accuracy"],
                   "audit_seconds": round(seconds, 1), "seconds_per_fold": [round(s, 1) for s in
                                                                          res.summary["seconds_per_fold"]],
                   **versus_cleanlab(d["probs"][rows], noisy, flagged, d["label_quality"][rows])}
            if a.retrain and share == max(float(x) for x in a.noise.split(",")) and kind == "uniform":
                cfg = resolve({"epochs": a.epochs, "device": "cpu", "seed": a.seed, "save_every": None, **train_opts})
                pool = build_pool(data, src.channels, tuple(parts["val"].images.shape[-2:]) if isinstance(
                    parts["val"], ArraySplit) else tuple(src.native_size or (32, 32)), None)
                tr_rows = np.flatnonzero(pool.split == "train")
                te_rows = np.flatnonzero(pool.split == "val")
                t1 = time.perf_counter()
                before = clean_test_accuracy(cfg, data, pool, tr_rows, te_rows)
                one_run = time.perf_counter() - t1
                keep = tr_rows[~flagged[pool.index[tr_rows]]]
                after = clean_test_accuracy(cfg, data, pool, keep, te_rows)
                run.update(retrain={"clean_test_accuracy_noisy": round(before, 4),
                                    "clean_test_accuracy_after_dropping_flagged": round(after, 4),
                                    "dropped": int(flagged.sum()), "one_training_run_seconds": round(one_run, 1)})
            results["runs"].append(run)
            print(json.dumps(run), file=sys.stderr, flush=True)
    emit(results, a.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
