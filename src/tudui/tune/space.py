"""The search space of `tudui tune`: which training options a study varies, and over what range.

A parameter is a config key (`lr`, `batch_size`, `augment`, ...) or a model argument (`model_args.dropout`).
Written as a flag (`--space lr=log:1e-4:1e-1`) or as a YAML mapping (`lr: log:1e-4:1e-1`):

    KEY=log:LOW:HIGH          a float on a log scale
    KEY=float:LOW:HIGH        a float
    KEY=int:LOW:HIGH[:STEP]   an integer (STEP: 1 unless given)
    KEY=choice:A,B,C          one of the values (YAML: a list)
    KEY=off                   leave KEY out of the default space (YAML: null)

Every value is checked against the key's type in TrainConfig, so a space that training would refuse is
refused before the first trial, in one line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from ..config import TrainConfig, _base_type, coerce, field_types, safe_yaml
from ..errors import ConfigError

KINDS = ("log", "float", "int", "choice")
# keys that say where data, runs and devices are, not how a model learns: never searched
NOT_SEARCHABLE = {"data", "data_dir", "download", "out", "name", "device", "recipe", "report", "cache_dir",
                  "threads", "workers", "transforms", "model_args", "mean", "std", "memory_budget", "dist_timeout",
                  "allow_outside", "save_every"}
BATCH_SIZES = (32, 64, 128, 256)


@dataclass(frozen=True)
class Param:
    key: str  # a config key, or model_args.NAME
    kind: str  # log | float | int | choice
    low: Optional[float] = None
    high: Optional[float] = None
    step: Optional[int] = None
    choices: tuple = ()

    def suggest(self, trial):
        if self.kind in ("log", "float"):
            return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "log")
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=self.step or 1)
        return trial.suggest_categorical(self.key, list(self.choices))

    @property
    def log(self) -> bool:
        return self.kind == "log"

    def describe(self) -> str:
        if self.kind == "choice":
            return f"choice:{','.join(str(c) for c in self.choices)}"
        step = f":{self.step}" if self.step and self.step != 1 else ""
        num = (lambda v: str(int(v))) if self.kind == "int" else repr  # repr: a float that reads back exactly
        return f"{self.kind}:{num(self.low)}:{num(self.high)}{step}"


def _check_key(key: str) -> None:
    if key.startswith("model_args."):
        if not key[len("model_args."):].isidentifier():
            raise ConfigError(f"search space: '{key}' needs a model argument name after 'model_args.'")
        return
    if key not in field_types():
        raise ConfigError(f"search space: unknown key '{key}'; use a config key (see `tudui train --print-config`) "
                          "or model_args.NAME")
    if key in NOT_SEARCHABLE:
        raise ConfigError(f"search space: '{key}' cannot be searched (it says where, not how, to train); "
                          "set it with its flag instead")


def _value(key: str, v):
    """A value as training will take it: coerced to the key's type (model arguments: as YAML reads them)."""
    if key.startswith("model_args."):
        return safe_yaml(v, f"search space {key}") if isinstance(v, str) else v
    try:
        return coerce(key, v)
    except ConfigError as e:
        raise ConfigError(f"search space: {e}") from None


def _number(key: str, text: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise ConfigError(f"search space: {key}: '{text}' is not a number") from None
    if not math.isfinite(v):
        raise ConfigError(f"search space: {key}: bounds must be finite, got {text}")
    return v


def parse_param(key: str, spec) -> Optional[Param]:
    """One parameter from its text (`log:1e-4:1e-1`), a list (choices) or None/'off' (leave it out -> None)."""
    key = key.strip()
    _check_key(key)
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "off"):
        return None
    if isinstance(spec, (list, tuple)):
        spec = "choice:" + ",".join(str(v) for v in spec)
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"search space: {key}={spec!r}: write KIND:..., with KIND one of {', '.join(KINDS)} "
                          "(e.g. lr=log:1e-4:1e-1, batch_size=choice:32,64)")
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "choice":
        values = [v.strip() for v in rest.split(",") if v.strip()]
        if not values:
            raise ConfigError(f"search space: {key}=choice: needs at least one value")
        choices = tuple(_value(key, v) for v in values)
        if any(not isinstance(c, (bool, int, float, str)) and c is not None for c in choices):
            raise ConfigError(f"search space: {key}: choices must be plain values (numbers, words, true/false)")
        return Param(key, "choice", choices=choices)
    if kind not in KINDS:
        raise ConfigError(f"search space: {key}: unknown kind '{kind}'; use one of {', '.join(KINDS)}")
    parts = rest.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and kind != "int"):
        raise ConfigError(f"search space: {key}={spec}: write {kind}:LOW:HIGH" + ("[:STEP]" if kind == "int" else ""))
    low, high = _number(key, parts[0]), _number(key, parts[1])
    if not low < high:
        raise ConfigError(f"search space: {key}: LOW must be below HIGH, got {parts[0]} and {parts[1]}")
    if kind == "log" and low <= 0:
        raise ConfigError(f"search space: {key}: a log range needs LOW > 0, got {parts[0]}")
    step = None
    if kind == "int":
        if not (low.is_integer() and high.is_integer()):
            raise ConfigError(f"search space: {key}: int bounds must be whole numbers, got {parts[0]} and {parts[1]}")
        step = int(_number(key, parts[2])) if len(parts) == 3 else 1
        if step < 1:
            raise ConfigError(f"search space: {key}: STEP must be at least 1")
    if not key.startswith("model_args."):  # the key's type must hold the bounds
        base = _base_type(field_types()[key])
        if base not in (int, float) or (base is int and kind != "int"):
            want = "int:LOW:HIGH or choice:..." if base is int else "choice:..."
            raise ConfigError(f"search space: {key} is {getattr(base, '__name__', base)}; use {want}")
        _value(key, low), _value(key, high)
    return Param(key, kind, low, high, step)


def parse_flags(items) -> dict:
    """--space KEY=SPEC (repeatable) -> {key: Param or None}."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--space needs KEY=KIND:..., got '{item}' (e.g. --space lr=log:1e-4:1e-1)")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_param(k, v.strip())
    return out


def parse_mapping(mapping, where: str = "search space") -> dict:
    """A YAML mapping {key: 'log:1e-4:1e-1' | [choices] | null} -> {key: Param or None}."""
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where} must be a mapping of keys to ranges, e.g. lr: log:1e-4:1e-1")
    return {str(k).strip(): parse_param(str(k), v) for k, v in mapping.items()}


def load_file(path: str) -> dict:
    from ..config import load_yaml
    return parse_mapping(load_yaml(path), f"search space file {path}")


def default_space(cfg: TrainConfig, n_train: Optional[int] = None, fixed=()) -> dict:
    """The space that fits the data and model of `cfg` (defaults < recipe < config file < flags already applied):
    lr a decade either side of the configured one, weight decay, batch size (at most an eighth of the training
    set), epochs (half to twice the configured ones), SGD's momentum, augmentation strength, label smoothing, and for the
    course's network its hidden width and dropout. Keys in `fixed` (set explicitly by the user, model arguments
    as model_args.NAME) stay out."""
    lr = float(cfg.lr)
    batches = [b for b in BATCH_SIZES if n_train is None or b <= max(BATCH_SIZES[0], n_train // 8)]
    space = {
        "lr": Param("lr", "log", lr / 10, lr * 10),
        "weight_decay": Param("weight_decay", "log", 1e-6, 1e-2),
        "batch_size": Param("batch_size", "choice", choices=tuple(batches)),
        "epochs": Param("epochs", "int", max(1, cfg.epochs // 2), max(2, 2 * cfg.epochs), 1),
        "augment": Param("augment", "choice", choices=("none", "basic", "strong")),
        "label_smoothing": Param("label_smoothing", "float", 0.0, 0.2),
    }
    if cfg.optimizer == "sgd":  # plain SGD (the course's) lives or dies by its momentum
        space["momentum"] = Param("momentum", "choice", choices=(0.0, 0.5, 0.9))
    if cfg.loss != "cross_entropy":
        del space["label_smoothing"]
    if cfg.model == "tudui":
        space["model_args.hidden"] = Param("model_args.hidden", "choice", choices=(32, 64, 128, 256))
        space["model_args.dropout"] = Param("model_args.dropout", "float", 0.0, 0.5)
    return {k: p for k, p in space.items() if k not in fixed}


def combine(default: dict, user: dict) -> dict:
    """The user's entries replace the default's (None removes one)."""
    out = dict(default)
    for k, p in user.items():
        out.pop(k, None)
        if p is not None:
            out[k] = p
    if not out:
        raise ConfigError("the search space is empty: give at least one --space KEY=KIND:... (or drop --space-only)")
    return out


def to_overrides(params: dict) -> dict:
    """A trial's {key or model_args.NAME: value} -> config overrides ({'model_args': {...}} gathered)."""
    out, args = {}, {}
    for k, v in params.items():
        if k.startswith("model_args."):
            args[k[len("model_args."):]] = v
        else:
            out[k] = v
    if args:
        out["model_args"] = args
    return out


def describe(space: dict) -> dict:
    return {k: p.describe() for k, p in sorted(space.items())}


def fixed_keys(options: dict) -> set:
    """The keys a user set explicitly (flags, keywords, config file): the default space leaves them alone."""
    keys = {k for k in options if k != "model_args"}
    return keys | {f"model_args.{a}" for a in (options.get("model_args") or {})}
