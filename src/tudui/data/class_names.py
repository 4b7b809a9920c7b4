"""Display names for classes from a file (`--class-names FILE`): the names people read (蚂蚁, "pink primrose")
next to the folder names the data uses (ants, 1). JSON ({key: name} or a list in class order) or CSV (two
columns: key, name; a header row is recognised). A key is a class folder name or a class index (0-based),
the folder name winning where both fit -- so a Flowers-102 `cat_to_name.json` ("1": "pink primrose") names the
folders 1..102."""
from __future__ import annotations

import csv
import json
import os

from ..errors import ConfigError


def _read_pairs(path: str) -> list:
    """[(key, name)] from the file, in file order."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            text = fh.read()
    except OSError as e:
        raise ConfigError(f"--class-names {path}: cannot read it ({e.strerror or e}); give a JSON or CSV file") from None
    if path.lower().endswith(".json") or text.lstrip()[:1] in ("{", "["):
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise ConfigError(f"--class-names {path}: not valid JSON ({e}); give {{\"folder or index\": \"name\"}}") from None
        if isinstance(obj, list):
            return [(str(i), v) for i, v in enumerate(obj)]
        if isinstance(obj, dict):
            return [(str(k), v) for k, v in obj.items()]
        raise ConfigError(f"--class-names {path}: expected a JSON object {{\"folder or index\": \"name\"}} or a list")
    rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    if any(len(r) < 2 for r in rows):
        raise ConfigError(f"--class-names {path}: every CSV row needs two columns: folder name (or index), display name")
    return [(r[0].strip(), r[1]) for r in rows]


def read_class_names(path, classes: list) -> tuple:
    """-> (display names in class order, notes). A class the file does not name keeps its folder name;
    keys that match no class are left out with a note (an extra header row among them)."""
    path = os.path.expanduser(os.fspath(path))
    pairs = _read_pairs(path)
    index = {c: i for i, c in enumerate(classes)}
    names = list(classes)
    named, unknown = set(), []
    for k, (key, value) in enumerate(pairs):
        if not isinstance(value, (str, int, float)) or not str(value).strip():
            raise ConfigError(f"--class-names {path}: the name for {key!r} must be non-empty text")
        i = index.get(key)
        if i is None and key.lstrip("-").isdigit() and 0 <= int(key) < len(classes):
            i = int(key)
        if i is None:
            if k > 0 or not path.lower().endswith(".csv"):  # a CSV's first row may be its header
                unknown.append(key)
            continue
        names[i] = str(value).strip()
        named.add(i)
    notes = []
    if not named:
        raise ConfigError(f"--class-names {path}: no key names a class (keys are folder names "
                          f"such as {classes[0]!r} or indices 0-{len(classes) - 1})")
    if len(named) < len(classes):
        notes.append(f"--class-names: {len(classes) - len(named)} of {len(classes)} classes keep their folder name")
    if unknown:
        notes.append(f"--class-names: {len(unknown)} keys match no class ({', '.join(unknown[:5])}"
                     f"{', ...' if len(unknown) > 5 else ''})")
    return names, notes
