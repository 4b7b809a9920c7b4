"""Label issues by confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in
Dataset Labels", JAIR 70, 2021), written for tudui from the paper.

Given out-of-sample predicted probabilities P (N, K) and the given labels y:
- per-class threshold t_j: the mean of P[:, j] over the examples labelled j (the model's average confidence in
  class j when j is the label);
- confident joint C (K, K): example i counts in C[y_i, j] for the class j it belongs to with confidence, the
  most probable class among those with P[i, j] >= t_j (examples above no threshold do not count);
- calibrated joint Q: C's rows rescaled to the class counts, then the whole to N (an estimate of how many
  examples carry label i while being class j);
- prune by noise rate: for every off-diagonal cell (i, j), the round(Q[i, j]) examples labelled i with the
  largest margin P[:, j] - P[:, i] are label issues; an example whose most probable class is its label is not.
  (`method="confident_learning"`: the examples in the off-diagonal cells of C itself.)
- ranking: label quality = self-confidence P[i, y_i], or the normalized margin (P[i, y_i] - max_{j != y_i}
  P[i, j] + 1) / 2; the lowest quality first.
"""
from __future__ import annotations

import numpy as np

METHODS = ("prune_by_noise_rate", "confident_learning")
RANKINGS = ("self_confidence", "normalized_margin")


def thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    k = probs.shape[1]
    t = np.ones(k)
    for j in range(k):
        rows = labels == j
        if rows.any():
            t[j] = probs[rows, j].mean()
    return t


def confident_classes(probs: np.ndarray, labels: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The confidently-belonging class of each example, or -1 when it is above no class's threshold."""
    above = probs >= t[None, :] - 1e-6
    masked = np.where(above, probs, -np.inf)
    cls = masked.argmax(1)
    cls[~above.any(1)] = -1
    return cls


def confident_joint(probs: np.ndarray, labels: np.ndarray, t=None) -> np.ndarray:
    k = probs.shape[1]
    t = thresholds(probs, labels) if t is None else t
    cls = confident_classes(probs, labels, t)
    ok = cls >= 0
    joint = np.zeros((k, k), dtype=np.int64)
    np.add.at(joint, (labels[ok], cls[ok]), 1)
    return joint


def calibrate(joint: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rows rescaled to the given class counts, then the total to N; rounded keeping each row's total."""
    k = joint.shape[0]
    counts = np.bincount(labels, minlength=k).astype(float)
    rows = joint.sum(1).astype(float)
    q = joint * np.divide(counts, rows, out=np.zeros(k), where=rows > 0)[:, None]
    total = q.sum()
    if total > 0:
        q = q / total * counts.sum()
    return np.vstack([_round_row(r) for r in q])


def _round_row(row: np.ndarray) -> np.ndarray:
    """Integers summing to round(sum(row)), the largest remainders rounded up."""
    floor = np.floor(row)
    short = int(round(row.sum() - floor.sum()))
    if short > 0:
        floor[np.argsort(-(row - floor))[:short]] += 1
    return floor.astype(np.int64)


def quality(probs: np.ndarray, labels: np.ndarray, ranking: str = "self_confidence") -> np.ndarray:
    """Label quality in [0, 1] per example: low means likely mislabelled."""
    own = probs[np.arange(len(labels)), labels]
    if ranking == "self_confidence":
        return own
    if ranking == "normalized_margin":
        others = probs.copy()
        others[np.arange(len(labels)), labels] = -np.inf
        return (own - others.max(1) + 1) / 2
    raise ValueError(f"unknown ranking '{ranking}'; choose one of {', '.join(RANKINGS)}")


def find_label_issues(probs: np.ndarray, labels: np.ndarray, method: str = "prune_by_noise_rate") -> np.ndarray:
    """Boolean mask of the examples confident learning flags."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n, k = probs.shape
    t = thresholds(probs, labels)
    flagged = np.zeros(n, dtype=bool)
    if method == "confident_learning":
        cls = confident_classes(probs, labels, t)
        flagged = (cls >= 0) & (cls != labels)
    elif method == "prune_by_noise_rate":
        q = calibrate(confident_joint(probs, labels, t), labels)
        counts = np.bincount(labels, minlength=k)
        for i in range(k):
            rows = np.flatnonzero(labels == i)
            budget = max(0, counts[i] - 1)  # every class keeps at least one example
            off = [(j, int(q[i, j])) for j in range(k) if j != i and q[i, j] > 0]
            total = sum(c for _, c in off)
            for j, c in off:
                if total > budget:  # scale the cells down so the class is never emptied
                    c = int(c * budget / total)
                if c <= 0:
                    continue
                margin = probs[rows, j] - probs[rows, i]
                flagged[rows[np.argsort(-margin, kind="stable")[:c]]] = True
    else:
        raise ValueError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
    flagged &= probs.argmax(1) != labels
    return flagged


def suggested(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The most probable class other than the given one."""
    p = np.array(probs, dtype=np.float64, copy=True)
    p[np.arange(len(labels)), labels] = -np.inf
    return p.argmax(1)


def label_issues(probs: np.ndarray, labels: np.ndarray, method: str = "prune_by_noise_rate",
                 ranking: str = "self_confidence") -> dict:
    """-> {"flagged": mask, "quality": per-example quality, "suggested": class per example, "joint": calibrated
    joint (K, K), "thresholds": t}."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    t = thresholds(probs, labels)
    return {"flagged": find_label_issues(probs, labels, method), "quality": quality(probs, labels, ranking),
            "suggested": suggested(probs, labels), "joint": calibrate(confident_joint(probs, labels, t), labels),
            "thresholds": t}
