"""Decisions about single images, applied when a run loads its data: `--exclude FILE` (drop these),
`--relabel FILE` (these get another class) or `--decisions FILE` (both, as `tudui audit`'s page saves them).

The user's files are never touched: the run trains on the dataset minus the dropped images, with the relabelled
ones under their new class, and records what it applied (decisions.json in the run folder).

Every file is a UTF-8 CSV with a header row:
- `--exclude`:   a `path` column (any other columns are ignored, so an audit's issues.csv works as it is);
- `--relabel`:   `path,label`;
- `--decisions`: `path,action[,label]` with action keep | drop | relabel (keep rows change nothing).

A path names a file of the dataset: relative to the dataset's folder (a folder spec, or the folder holding a
CSV spec), or absolute. Samples without a file (built-in datasets, a Python Dataset) are named `SPLIT:INDEX`,
their position in that split as `tudui audit` lists it (the same seed and --val-split make the same split).
A path outside the dataset, an unknown class or a file in another encoding is an error naming the line.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import replace
from typing import Optional

from ..errors import DataError
from .csvfile import decode_text
from .splits import DataSource, FileSplit

ACTIONS = ("keep", "drop", "relabel")


def dataset_root(spec) -> Optional[str]:
    """The folder a dataset's relative paths are read from: a folder spec itself, a CSV spec's folder; None
    for built-in names and Python Datasets."""
    if not isinstance(spec, (str, os.PathLike)) or not spec:
        return None
    p = os.path.expanduser(os.fspath(spec))
    if os.path.isdir(p):
        return os.path.abspath(p)
    if os.path.isfile(p):
        return os.path.dirname(os.path.abspath(p))
    return None


def sample_id(split_name: str, split, i: int, root: Optional[str]) -> str:
    """How a sample is named in audit rows and decision files: its path relative to the dataset root when it
    is a file under it (else its absolute path), or SPLIT:INDEX."""
    if isinstance(split, FileSplit):
        p = os.path.abspath(split.paths[i])
        if root and _inside(root, p):
            return os.path.relpath(p, root).replace(os.sep, "/")
        return p
    return f"{split_name}:{i}"


def _inside(root: str, path: str) -> bool:
    try:
        return os.path.commonpath([root, path]) == root
    except ValueError:  # Windows: another drive
        return False


def read_table(path: str, need: tuple, what: str) -> list:
    """-> [(line number, {column: value})] of a UTF-8 CSV with a header naming at least `need`."""
    if not os.path.isfile(path):
        raise DataError(f"{what} {path}: no such file")
    with open(path, "rb") as fh:
        text = decode_text(fh.read(), f"{what} {path}")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        lines = [(reader.line_num, r) for r in reader]
    except csv.Error as e:
        raise DataError(f"{what} {path} line {reader.line_num + 1} is not valid CSV: {e}") from None
    lines = [(n, [c.strip() for c in r]) for n, r in lines if any(c.strip() for c in r)]
    if not lines:
        raise DataError(f"{what} {path} is empty; expected a header row with {', '.join(need)}")
    header = [h.lower() for h in lines[0][1]]
    missing = [c for c in need if c not in header]
    if missing:
        raise DataError(f"{what} {path}: the header row needs the column(s) {', '.join(missing)} "
                        f"(it has {', '.join(header) or 'none'})")
    return [(n, {h: (cells[k] if k < len(cells) else "") for k, h in enumerate(header)}) for n, cells in lines[1:]]


def read_decisions(exclude: Optional[str] = None, relabel: Optional[str] = None,
                   decisions: Optional[str] = None) -> list:
    """-> [(where 'FILE line N', id, action 'drop' | 'relabel', new label or None)] from the three kinds of file."""
    out = []
    for n, row in read_table(exclude, ("path",), "--exclude") if exclude else []:
        out.append((f"{exclude} line {n}", row["path"], "drop", None))
    for n, row in read_table(relabel, ("path", "label"), "--relabel") if relabel else []:
        out.append((f"{relabel} line {n}", row["path"], "relabel", row["label"]))
    for n, row in read_table(decisions, ("path", "action"), "--decisions") if decisions else []:
        action = row["action"].lower()
        if action not in ACTIONS:
            raise DataError(f"{decisions} line {n}: action must be keep, drop or relabel, got '{row['action']}'")
        if action == "relabel" and not row.get("label"):
            raise DataError(f"{decisions} line {n}: a relabel row needs the new class in its label column")
        if action != "keep":
            out.append((f"{decisions} line {n}", row["path"], action, row.get("label") or None))
    for where, ident, _, _ in out:
        if not ident:
            raise DataError(f"{where}: the path is empty")
    return out


def _index(source: DataSource, root: Optional[str]) -> dict:
    """id or absolute path -> (split name, index)."""
    out = {}
    for name, split in source.splits.items():
        for i in range(len(split)):
            out[sample_id(name, split, i, root)] = (name, i)
            if isinstance(split, FileSplit):
                out[os.path.abspath(split.paths[i])] = (name, i)
    return out


def _locate(ident: str, where: str, index: dict, root: Optional[str]) -> tuple:
    if ident in index:
        return index[ident]
    if root is None:
        raise DataError(f"{where}: '{ident}' is not a sample of this dataset (name samples as SPLIT:INDEX, "
                        "e.g. train:12, as `tudui audit` lists them)")
    p = os.path.abspath(os.path.join(root, os.path.expanduser(ident)))
    if not _inside(root, p) and not _inside(os.path.realpath(root), os.path.realpath(p)):
        raise DataError(f"{where}: {ident} is outside the dataset {root}; decisions can only name its files")
    for key in (p, os.path.realpath(p)):
        if key in index:
            return index[key]
    raise DataError(f"{where}: {ident} is not an image of the dataset {root} (moved, or skipped as unreadable?)")


def apply_decisions(source: DataSource, items: list, root: Optional[str], origin: str = "") -> tuple:
    """Drop and relabel samples of `source` -> (new DataSource, record for the run folder). A sample named
    twice takes its last decision; classes stay as they are (a relabel names one of them)."""
    index = _index(source, root)
    cls = {c: k for k, c in enumerate(source.classes)}
    chosen: dict = {}
    for where, ident, action, label in items:
        key = _locate(ident, where, index, root)
        if action == "relabel" and label not in cls:
            raise DataError(f"{where}: '{label}' is not a class of this dataset "
                            f"({', '.join(map(str, source.classes[:20]))}{', ...' if len(cls) > 20 else ''})")
        chosen[key] = (ident, action, cls.get(label))
    splits, dropped, relabelled = {}, [], []
    for name, split in source.splits.items():
        keep = [i for i in range(len(split)) if chosen.get((name, i), ("", "keep"))[1] != "drop"]
        new = split.subset(keep)
        for k, i in enumerate(keep):
            d = chosen.get((name, i))
            if d and d[1] == "relabel":
                relabelled.append({"id": d[0], "split": name, "from": source.classes[new.targets[k]],
                                   "to": source.classes[d[2]]})
                new.targets[k] = d[2]
        dropped += [{"id": d[0], "split": name} for (s, i), d in chosen.items() if s == name and d[1] == "drop"]
        splits[name] = new
    record = {"origin": origin, "dropped": dropped, "relabelled": relabelled}
    notes = list(source.notes) + [f"decisions ({origin}): dropped {len(dropped)} images, "
                                  f"relabelled {len(relabelled)}; listed in decisions.json"]
    return replace(source, splits=splits, notes=notes), record


def apply_config(source: DataSource, cfg, spec) -> tuple:
    """The run's --exclude / --relabel / --decisions applied to `source` -> (source, record or None)."""
    files = [f for f in (cfg.exclude, cfg.relabel, cfg.decisions) if f]
    if not files:
        return source, None
    items = read_decisions(cfg.exclude, cfg.relabel, cfg.decisions)
    return apply_decisions(source, items, dataset_root(spec), origin=", ".join(files))


def record_items(record: dict, where: str) -> list:
    """What a run applied (its decisions.json) in read_decisions' form, to apply it again to the same data."""
    items = [(where, d["id"], "drop", None) for d in record.get("dropped", [])]
    return items + [(where, d["id"], "relabel", d["to"]) for d in record.get("relabelled", [])]


def reapply(source: DataSource, spec, cfg=None, run_dir: Optional[str] = None, exclude: Optional[str] = None,
            relabel: Optional[str] = None, decisions: Optional[str] = None) -> tuple:
    """The data a run was evaluated on, for eval and report: with cfg, the run's config (the source is the run's
    own data), the run's decisions (as its decisions.json in run_dir records them, else from the files its
    config names), then any further exclude / relabel / decisions files on top (the last decision about an image wins).
    -> (source, record or None)."""
    items, origins = [], []
    if cfg is not None and (cfg.exclude or cfg.relabel or cfg.decisions):  # the run applied decisions
        recorded = os.path.join(run_dir, "decisions.json") if run_dir else None
        if recorded and os.path.isfile(recorded):
            try:
                with open(recorded, encoding="utf-8") as fh:
                    items += record_items(json.load(fh), recorded)
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise DataError(f"{recorded} is unreadable ({e}); restore it, or evaluate with --data") from None
            origins.append(f"the run's {os.path.basename(recorded)}")
        else:
            files = [f for f in (cfg.exclude, cfg.relabel, cfg.decisions) if f]
            gone = [f for f in files if not os.path.isfile(f)]
            if gone:
                raise DataError(f"the run left out or relabelled the images listed in {gone[0]}, which is gone; "
                                "put it back, or name the data with --data to evaluate on all of it")
            items += read_decisions(cfg.exclude, cfg.relabel, cfg.decisions)
            origins += files
    if exclude or relabel or decisions:
        items += read_decisions(exclude, relabel, decisions)
        origins += [f for f in (exclude, relabel, decisions) if f]
    if not items and not origins:
        return source, None
    return apply_decisions(source, items, dataset_root(spec), origin=", ".join(origins))
