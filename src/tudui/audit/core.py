"""tudui.audit(): wrong labels, duplicates, leaks between splits, outliers, imbalance and odd files of a dataset,
written as a folder (page, issues.csv, issues.json) and returned as rows."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from .. import models
from ..config import resolve
from ..data import load_source
from ..data.decisions import apply_config, dataset_root
from ..data.pipeline import image_size
from ..console import notice, say
from ..errors import ConfigError, DataError
from ..infer import open_predictor
from . import dups, findings, labels as cl
from .oos import cross_val, with_model
from .pool import build_pool
from .write import write_audit

# training defaults of the cross-validation models (any config key overrides them): short runs of the course
# network, enough for a useful out-of-sample ranking at a fraction of a full run's cost
AUDIT_DEFAULTS = {"epochs": 8, "save_every": None}
NEAR_METHODS = ("phash", "features", "both", "none")


@dataclass
class AuditResult:
    rows: list  # one dict per flagged image, ranked (see findings.py)
    out: Optional[str]  # the audit folder
    summary: dict = field(default_factory=dict)
    html: Optional[str] = None
    # per pool row (every readable image): "ids", "split", "labels", "probs" (out-of-sample, NaN where none),
    # "label_quality" (NaN where not audited); for benchmarks and notebooks, not written to disk
    details: dict = field(default_factory=dict, repr=False)

    def counts(self) -> dict:
        return {k: sum(r["issue"] == k for r in self.rows) for k in findings.ISSUES}


def _splits_arg(split, source) -> list:
    if split is None:
        return list(source.splits)
    names = [split] if isinstance(split, str) else list(split)
    out = []
    for s in names:
        s = {"valid": "val", "validation": "val"}.get(s, s)
        if s not in source.splits:
            raise DataError(f"the dataset has no split '{s}'; it has: {', '.join(source.splits)}")
        out.append(s)
    return out


def audit(data, *, out: Optional[str] = "audit", split=None, run: Optional[str] = None, folds: int = 5,
          ensemble: int = 1, method: str = "prune_by_noise_rate", ranking: str = "self_confidence",
          near: str = "phash", phash_bits: int = 16, feature_sim: float = 0.97, min_corr: float = 0.95,
          outlier_z: float = 3.5, neighbours: int = 10,
          top: int = 60, device: str = "auto", config: Optional[str] = None, progress: bool = True,
          verify: bool = True, unsafe_load: bool = False, **options) -> AuditResult:
    """Audit a dataset (any spec `tudui train` takes, or a map-style Dataset) and write OUT/ (audit.html,
    issues.csv, issues.json; out=None writes nothing). Label issues come from out-of-sample probabilities:
    `run` (a run folder or checkpoint) predicts the splits it did not train on; the rest by `folds`-fold
    cross-validation, each fold's model trained on every image it is not in; ensemble > 1 repeats it with other
    seeds and averages the probabilities. Any training config key (epochs, model, lr, tta, ...) may be passed
    as a keyword for the cross-validation models."""
    t_start = time.perf_counter()
    if method not in cl.METHODS or ranking not in cl.RANKINGS:
        raise ConfigError(f"method must be one of {', '.join(cl.METHODS)} and ranking one of {', '.join(cl.RANKINGS)}")
    if near not in NEAR_METHODS:
        raise ConfigError(f"near must be one of {', '.join(NEAR_METHODS)}, got '{near}'")
    if folds == 1 or folds < 0:
        raise ConfigError(f"--folds must be 0 (no cross-validation) or at least 2, got {folds}")
    if not isinstance(ensemble, int) or ensemble < 1:
        raise ConfigError(f"--ensemble must be a whole number of at least 1, got {ensemble}")
    overrides = {**AUDIT_DEFAULTS, **options, "device": device}
    if isinstance(data, (str, os.PathLike)):
        overrides["data"] = os.fspath(data)
    cfg = resolve(overrides, config_file=config)
    source = load_source(data if not isinstance(data, (str, os.PathLike)) else cfg.data, data_dir=cfg.data_dir,
                         download=cfg.download, seed=cfg.seed, val_split=cfg.val_split,
                         allow_outside=cfg.allow_outside)
    source, applied = apply_config(source, cfg, data)  # audit what the next run will train on
    cfg.exclude = cfg.relabel = cfg.decisions = None
    root = dataset_root(data)
    audited = _splits_arg(split, source)

    predictor = None
    if run is not None:
        predictor = open_predictor(run, device=cfg.device, verify=verify, unsafe_load=unsafe_load)
        if list(predictor.classes) != list(source.classes):
            raise DataError(f"the run's classes {predictor.classes[:10]} differ from the data's {source.classes[:10]}")
        if predictor.preprocess.get("custom"):
            raise ConfigError("the run's checkpoint uses its own transforms; audit it with cross-validation "
                              "(leave out --run)")
        channels, size = predictor.preprocess["channels"], tuple(predictor.preprocess["size"])
    else:
        channels, size = models.input_channels(cfg.model, source.channels), image_size(cfg, source)
    pool = build_pool(source, channels, size, root, cfg.cache_dir, cfg.workers)
    if len(pool) < 2:
        raise DataError("the dataset has fewer than two readable images; nothing to audit")
    flip = bool(source.hflip)
    n, k = len(pool), len(pool.classes)
    logits = torch.full((n, k), float("nan"))
    sources = np.full(n, "", dtype=object)
    info: dict = {"folds": folds, "ensemble": ensemble, "run": run, "audited_splits": audited}

    # ---- out-of-sample probabilities
    want = np.isin(pool.split, audited)
    feats = None
    if predictor is not None:
        res = with_model(pool, predictor, flip=flip)
        feats = res["features"]
        trained_on = "train"  # a run trains on its data's train split
        unseen = want & (pool.split != trained_on)
        logits[torch.as_tensor(unseen)] = res["logits"][torch.as_tensor(unseen)]
        sources[unseen] = "the run's model"
        want = want & ~unseen
    if want.any() and folds >= 2:
        if progress:
            say(f"audit: {folds}-fold cross-validation over {int(want.sum())} images ({cfg.model}, "
                f"{cfg.epochs} epochs per fold)")
        cv = cross_val(pool, source, cfg, want, folds, flip=flip, progress=progress, ensemble=ensemble)
        logits[torch.as_tensor(want)] = cv["logits"][torch.as_tensor(want)]
        sources[want] = f"{folds}-fold cross-validation"
        feats = cv["features"] if feats is None else feats
        info.update(fold_accuracy=cv["fold_accuracy"], seconds_per_fold=cv["seconds_per_fold"])
    elif want.any():
        info["not_label_audited"] = sorted(set(pool.split[want]))

    # ---- label issues, per source of probabilities (their calibrations differ)
    rows = []
    probs_all = logits.softmax(1).numpy()
    label_info = {}
    for src in sorted(set(sources) - {""}):
        sel = np.flatnonzero(sources == src)
        p, y = probs_all[sel], pool.labels[sel]
        res = cl.label_issues(p, y, method=method, ranking=ranking)
        res["probs"] = p
        rows += findings.label_rows(pool, sel, res, src)
        label_info[src] = {"images": int(len(sel)), "accuracy": float((p.argmax(1) == y).mean()),
                           "flagged": int(res["flagged"].sum()),
                           "estimated_noise": float(1 - np.trace(res["joint"]) / max(1, res["joint"].sum()))}
    info["labels"] = label_info

    # ---- duplicates and leaks
    t0 = time.perf_counter()
    groups = dups.exact_groups(pool.images)
    near_pairs: dict = {}
    if near in ("phash", "both"):
        try:
            h, hf = dups.phashes(pool.images, flip=flip)
            for key, bits in dups.hamming_pairs(h, phash_bits, hf).items():
                near_pairs[key] = (1 - bits / 64, f"perceptual hash, {bits} bits apart")
        except ImportError:
            notice("imagehash is not installed (pip install tudui[audit]): near duplicates from features only")
    z_all = z_class = None
    if feats is not None:
        z_all, z_class, (dist, idx) = findings.outlier_scores(feats.numpy(), pool.labels, neighbours)
        if near in ("features", "both"):
            for key, sim in dups.feature_pairs(dist, idx, feature_sim).items():
                if key not in near_pairs:
                    near_pairs[key] = (sim, f"features, cosine {sim:.3f}")
    sims = dups.pixel_similarity(pool.images, near_pairs, flip=flip)  # candidates -> confirmed near copies
    near_pairs = {key: (sims[key], f"{how}; pixels correlate {sims[key]:.3f}") for key, (_, how) in near_pairs.items()
                  if sims[key] >= min_corr}
    dup_rows = findings.duplicate_rows(pool, groups, near_pairs)
    rows += dup_rows
    info["duplicate_seconds"] = round(time.perf_counter() - t0, 3)
    leaks = [r for r in dup_rows if r["issue"] == "leak"]
    info["leak_accuracy"] = findings.leak_accuracy(pool, logits, leaks)

    # ---- outliers, odd and unreadable files, imbalance
    if z_all is not None:
        rows += findings.outlier_rows(pool, z_all, z_class, outlier_z)
    rows += findings.odd_rows(pool)
    rows += findings.unreadable_rows(pool)
    info["imbalance"] = findings.imbalance(pool)
    rows = findings.rank_rows(rows)
    info.update(images=n, classes=list(pool.classes), splits={s: int((pool.split == s).sum()) for s in pool.split_names},
                image_size=list(size), channels=channels, decisions_applied=applied,
                seconds=round(time.perf_counter() - t_start, 3), data=str(data if isinstance(data, (str, os.PathLike))
                                                                       else type(data).__name__))
    quality_all = np.full(n, np.nan)
    for src in sorted(set(sources) - {""}):
        sel = np.flatnonzero(sources == src)
        quality_all[sel] = cl.quality(probs_all[sel], pool.labels[sel], ranking)
    result = AuditResult(rows=rows, out=out, summary=info, details={
        "ids": pool.ids, "split": pool.split, "labels": pool.labels, "probs": probs_all, "label_quality": quality_all})
    if out is not None:
        result.html = write_audit(result, pool, logits, top=top)
    return result
