"""From the model outputs, hashes and neighbours to rows: one per flagged image.

A row: issue, id (path or SPLIT:INDEX), split, score (higher = worse or surer), given label, suggested label,
other (the image it duplicates), detail, rank (within its issue, 1 = first to look at). Which member of a
duplicate pair is flagged: the later one in split order (train, val, test), so dropping every flagged image
keeps one copy and, for a leak, removes the held-out copy.
"""
from __future__ import annotations

import numpy as np

from . import dups
from .pool import Pool

ISSUES = ("leak", "label", "exact_duplicate", "near_duplicate", "outlier", "odd", "unreadable")
TITLES = {"leak": "leaks between splits", "label": "label issues", "exact_duplicate": "exact duplicates",
          "near_duplicate": "near duplicates", "outlier": "outliers", "odd": "odd images",
          "unreadable": "unreadable files"}


def _row(pool: Pool, r: int, issue: str, score: float, **extra) -> dict:
    return {"issue": issue, "id": pool.ids[r], "split": str(pool.split[r]), "score": round(float(score), 6),
            "given": str(pool.classes[pool.labels[r]]), "suggested": extra.pop("suggested", ""),
            "other": extra.pop("other", ""), "detail": extra.pop("detail", ""), "row": int(r), **extra}


def duplicate_rows(pool: Pool, groups: list, near: dict) -> list:
    """groups: exact groups of rows; near: {(i, j): (similarity, how)} with i < j."""
    rows, taken = [], set()
    for g in groups:
        keeper = g[0]
        for r in g[1:]:
            leak = pool.split[r] != pool.split[keeper]
            rows.append(_row(pool, r, "leak" if leak else "exact_duplicate", 1.0, other=pool.ids[keeper],
                             other_split=str(pool.split[keeper]), detail="identical pixels", other_row=int(keeper)))
            taken.add(r)
    exact_of = {r: g[0] for g in groups for r in g}
    best: dict = {}
    for (i, j), (sim, how) in near.items():
        if exact_of.get(i, -1) == exact_of.get(j, -2):
            continue  # already an exact pair
        if j in taken:
            continue
        if j not in best or sim > best[j][1]:
            best[j] = (i, sim, how)
    for j, (i, sim, how) in best.items():
        leak = pool.split[j] != pool.split[i]
        rows.append(_row(pool, j, "leak" if leak else "near_duplicate", sim, other=pool.ids[i],
                         other_split=str(pool.split[i]), detail=f"near copy ({how})", other_row=int(i)))
    return rows


def label_rows(pool: Pool, audited_rows: np.ndarray, res: dict, source: str) -> list:
    out = []
    for k in np.flatnonzero(res["flagged"]):
        r = int(audited_rows[k])
        q = float(res["quality"][k])
        out.append(_row(pool, r, "label", 1 - q, suggested=str(pool.classes[res["suggested"][k]]),
                        detail=f"p(given) {float(res['probs'][k, pool.labels[r]]):.3f}, p(suggested) "
                               f"{float(res['probs'][k, res['suggested'][k]]):.3f} ({source})"))
    return out


def robust_z(x: np.ndarray) -> np.ndarray:
    med = np.median(x)
    mad = np.median(np.abs(x - med)) * 1.4826
    return (x - med) / max(mad, 1e-9)


def outlier_scores(features, labels: np.ndarray, k: int) -> tuple:
    """-> (robust z of the mean distance to the k nearest images of the whole pool, robust z (within each class)
    of the mean distance to the k nearest images of the same class), both (N,); and the whole-pool neighbours
    (distances, indices) for reuse."""
    dist, idx = dups.neighbours(features, k)
    z_all = robust_z(np.log(dist.mean(1) + 1e-6))
    z_class = np.zeros(len(labels))
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if len(rows) < 3:
            continue
        d, _ = dups.neighbours(features[rows], k)
        z_class[rows] = robust_z(np.log(d.mean(1) + 1e-6))
    return z_all, z_class, (dist, idx)


def outlier_rows(pool: Pool, z_all: np.ndarray, z_class: np.ndarray, min_z: float) -> list:
    out = []
    for r in np.flatnonzero((z_all >= min_z) | (z_class >= min_z)):
        where = "the whole set" if z_all[r] >= z_class[r] else "its class"
        out.append(_row(pool, r, "outlier", max(z_all[r], z_class[r]),
                        detail=f"far from {where} (z {z_all[r]:.1f} to all, {z_class[r]:.1f} to its class)"))
    return out


def odd_rows(pool: Pool, min_side: int = 16, max_aspect: float = 4.0) -> list:
    """Blank images (one flat colour), and files much smaller or more elongated than training images are."""
    out = []
    flat = pool.images.flatten(1)
    spread = (flat.max(1).values.int() - flat.min(1).values.int()).numpy()
    for r in np.flatnonzero(spread <= 2):
        out.append(_row(pool, r, "odd", 1.0, detail="blank: a single flat colour"))
    for r, wh in enumerate(pool.native):
        if wh is None:
            continue
        w, h = wh
        if min(w, h) < min_side:
            out.append(_row(pool, r, "odd", 1.0, detail=f"tiny: {w}x{h} pixels"))
        elif max(w, h) / max(1, min(w, h)) > max_aspect:
            out.append(_row(pool, r, "odd", 1.0, detail=f"elongated: {w}x{h} pixels"))
    return out


def unreadable_rows(pool: Pool) -> list:
    return [{"issue": "unreadable", "id": ident, "split": split, "score": 1.0, "given": "", "suggested": "",
             "other": "", "detail": reason, "row": -1} for split, ident, reason in pool.unreadable]


def imbalance(pool: Pool, ratio: float = 5.0) -> list:
    """Per split: class counts and, when the largest class outnumbers the smallest by `ratio` or more, a line."""
    out = []
    k = len(pool.classes)
    for s in pool.split_names:
        counts = np.bincount(pool.labels[pool.split == s], minlength=k)
        lo, hi = int(counts.argmin()), int(counts.argmax())
        r = counts[hi] / max(1, counts[lo])
        flagged = bool(counts[lo] == 0 or r >= ratio)
        out.append({"split": s, "counts": {c: int(n) for c, n in zip(pool.classes, counts)},
                    "ratio": round(float(r), 2), "flagged": flagged,
                    "line": f"{s}: class '{pool.classes[hi]}' has {counts[hi]} images, '{pool.classes[lo]}' "
                            f"{counts[lo]} ({r:.1f}x)" if flagged else ""})
    return out


def rank_rows(rows: list) -> list:
    """Sort by issue (leaks first), then worst first; number each issue's rows from 1."""
    order = {k: n for n, k in enumerate(ISSUES)}
    rows = sorted(rows, key=lambda r: (order[r["issue"]], -r["score"], r["id"]))
    counter: dict = {}
    for r in rows:
        counter[r["issue"]] = counter.get(r["issue"], 0) + 1
        r["rank"] = counter[r["issue"]]
    return rows


def leak_accuracy(pool: Pool, logits, leak_rows: list) -> list:
    """Per held-out split with leaked images: the out-of-sample accuracy with them and without them."""
    out = []
    preds = logits.argmax(1).numpy()
    have = ~np.isnan(logits.numpy()).any(1)
    leaked = {r["row"] for r in leak_rows}
    for s in pool.split_names:
        rows = np.flatnonzero((pool.split == s) & have)
        bad = np.array([r in leaked for r in rows], dtype=bool)
        if not bad.any() or len(rows) == 0:
            continue
        right = preds[rows] == pool.labels[rows]
        clean = right[~bad]
        out.append({"split": s, "images": int(len(rows)), "leaked": int(bad.sum()),
                    "accuracy": float(right.mean()), "accuracy_without_leaks": float(clean.mean()) if len(clean)
                    else None})
    return out
