"""The audit folder: audit.html (self-contained, built with the report's Jinja2 machinery), issues.csv and
issues.json. All three are built in memory, then each replaces its old version atomically, so an interrupted
audit (Ctrl-C) leaves no half-written file."""
from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import torch

from ..fileio import write_text
from ..report import html
from .findings import ISSUES, TITLES

CSV_COLUMNS = ("rank", "issue", "path", "split", "score", "given_label", "suggested_label", "other", "detail")
EXEMPLARS = 4  # typical images shown per class


def csv_rows(rows: list) -> list:
    return [{"rank": r["rank"], "issue": r["issue"], "path": r["id"], "split": r["split"], "score": r["score"],
             "given_label": r["given"], "suggested_label": r["suggested"], "other": r["other"], "detail": r["detail"]}
            for r in rows]


def to_csv(rows: list) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(csv_rows(rows))
    return buf.getvalue()


def exemplars(pool, logits: torch.Tensor) -> dict:
    """class -> row numbers of its most typical images (highest out-of-sample probability of their own label;
    the first images of the class when there are no probabilities)."""
    probs = logits.softmax(1).numpy()
    own = probs[np.arange(len(pool)), pool.labels]
    own = np.where(np.isnan(own), -1.0, own)
    out = {}
    for c in range(len(pool.classes)):
        rows = np.flatnonzero(pool.labels == c)
        out[pool.classes[c]] = rows[np.argsort(-own[rows], kind="stable")[:EXEMPLARS]].tolist()
    return out


def page_context(result, pool, logits: torch.Tensor, top: int) -> dict:
    uri_cache: dict = {}

    def uri(r):
        if r is None or r < 0:
            return None
        if r not in uri_cache:
            uri_cache[r] = html.image_uri(pool.images[r], min_side=96)
        return uri_cache[r]
    sections = []
    for issue in ISSUES:
        rows = [r for r in result.rows if r["issue"] == issue]
        if not rows:
            continue
        cards = [dict(r, img=uri(r["row"]), other_img=uri(r.get("other_row"))) for r in rows[:top]]
        sections.append({"issue": issue, "title": TITLES[issue], "total": len(rows), "cards": cards})
    ex = exemplars(pool, logits)
    info = result.summary
    counts = result.counts()
    kpis = [("images", str(info["images"])), ("classes", str(len(info["classes"])))]
    kpis += [(TITLES[k], str(counts[k])) for k in ISSUES]
    return dict(title=f"audit of {info['data']}", info=info, kpis=kpis, sections=sections,
                classes=[str(c) for c in pool.classes],
                exemplars=[{"cls": c, "imgs": [uri(r) for r in rows]} for c, rows in ex.items()],
                imbalance=[b for b in info["imbalance"] if b["flagged"]], leak_accuracy=info["leak_accuracy"],
                labels=info.get("labels", {}), settings=json.dumps({k: info[k] for k in ("folds", "run",
                                                                                          "audited_splits")}))


def write_audit(result, pool, logits: torch.Tensor, top: int = 60) -> str:
    """Write OUT/audit.html, OUT/issues.csv, OUT/issues.json; -> the page's path. Everything is built in memory
    first and each file then replaces its old version atomically (tudui.fileio)."""
    out = os.path.abspath(os.path.expanduser(result.out))
    files = {"issues.csv": to_csv(result.rows),
             "issues.json": json.dumps({"summary": result.summary, "counts": result.counts(),
                                        "rows": [{k: v for k, v in r.items() if k not in ("row", "other_row")}
                                                 for r in result.rows]}, indent=1, ensure_ascii=False,
                                       default=_plain),
             "audit.html": html.render("audit.html.j2", **page_context(result, pool, logits, top))}
    os.makedirs(out, exist_ok=True)
    for name, text in files.items():
        write_text(os.path.join(out, name), text)
    return os.path.join(out, "audit.html")


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON: {type(v).__name__}")


def summary_text(result, worst: int = 3) -> str:
    """What the CLI prints: the count of each issue and its worst few."""
    info, counts = result.summary, result.counts()
    lines = [f"audit of {info['data']}: {info['images']} images, {len(info['classes'])} classes "
             f"({', '.join(f'{s} {n}' for s, n in info['splits'].items())}) in {info['seconds']:.1f}s"]
    for src, li in info.get("labels", {}).items():
        lines.append(f"  out-of-sample accuracy {li['accuracy']:.4f} on {li['images']} images ({src}); "
                     f"estimated label noise {100 * li['estimated_noise']:.1f}%")
    for la in info.get("leak_accuracy", []):
        lines.append(f"  {la['split']}: {la['leaked']} of {la['images']} images leak from another split; accuracy "
                     f"{la['accuracy']:.4f} with them, {la['accuracy_without_leaks']:.4f} without")
    for b in info.get("imbalance", []):
        if b["flagged"]:
            lines.append(f"  class imbalance: {b['line']}")
    for issue in ISSUES:
        rows = [r for r in result.rows if r["issue"] == issue]
        lines.append(f"{TITLES[issue]}: {counts[issue]}")
        for r in rows[:worst]:
            extra = f" -> {r['suggested']}" if r["suggested"] else f" (= {r['other']})" if r["other"] else ""
            lines.append(f"  {r['rank']:>3}. {r['id']} [{r['split']}, {r['given'] or '-'}{extra}] "
                         f"score {r['score']:.3f}  {r['detail']}")
    if result.html:
        lines.append(f"page: {result.html}")
    return "\n".join(lines)
