"""One flat training config: every key is also a long CLI flag (`batch_size` <-> `--batch-size`).

Precedence: defaults < recipe < config file < CLI flags. The resolved config is a plain dict of
YAML-friendly values, written to the run folder and into every checkpoint.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

import yaml

from .errors import ConfigError
from .recipes import get_recipe


def _opt(default, help, choices=None, flag=None):
    meta = {"help": help}
    if choices:
        meta["choices"] = tuple(choices)
    if flag:
        meta["flag"] = flag
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    # --- data ---
    data: str = _opt("digits", "built-in dataset name (digits, mnist, fashion-mnist, cifar10, cifar100) or a path "
                               "(image folder with splits, one folder of class folders, or a labels CSV)")
    data_dir: Optional[str] = _opt(None, "root holding built-in datasets in torchvision's layout (default: "
                                         "$TUDUI_DATA_DIR, else <the user cache folder>/data)")
    download: bool = _opt(False, "allow downloading a built-in dataset that is missing")
    val_split: float = _opt(0.2, "fraction held out for validation when the data has no held-out split")
    img_size: Optional[int] = _opt(None, "resize images to N x N (default: the dataset's native size, 64 for folders)")
    augment: str = _opt("basic", "training augmentation preset", ["none", "basic", "strong"])
    translate: Optional[int] = _opt(None, "random translation (reflect-pad and crop) in pixels for images up to "
                                          "64 px (default: 1/8 of the side)")
    cutout: int = _opt(0, "cutout (random erasing) square size in pixels with the basic preset; 0 = off")
    alt_flip: bool = _opt(False, "alternate horizontal flips deterministically between epochs instead of random flips")
    mean: Optional[list] = _opt(None, "normalization mean per channel, e.g. 0.5,0.5,0.5 (default: the data's own)")
    std: Optional[list] = _opt(None, "normalization std per channel (default: the data's own)")
    transforms: Optional[dict] = _opt(None, "explicit torchvision transforms {train: [...], eval: [...]} (config file only)")
    loader: str = _opt("auto", "keep decoded data in memory as one uint8 tensor, or stream it through a DataLoader",
                       ["auto", "memory", "stream"])
    memory_budget: Optional[float] = _opt(None, "GiB the in-memory dataset may take (default: 25% of RAM / 40% of GPU memory)")
    cache_dir: Optional[str] = _opt(None, "where decoded datasets are cached (default: $TUDUI_CACHE_DIR, else the "
                                          "user cache folder: $XDG_CACHE_HOME/tudui or ~/.cache/tudui on Linux)")
    workers: int = _opt(0, "DataLoader worker processes for the stream loader")
    allow_outside: bool = _opt(False, "accept a labels CSV whose paths lead outside its folder (../, absolute "
                                      "paths, symlinks out); refused by default")
    exclude: Optional[str] = _opt(None, "CSV with a path column: leave these images out of the run (e.g. an "
                                        "audit's issues.csv); your files stay as they are")
    relabel: Optional[str] = _opt(None, "CSV of path,label: train these images under another class")
    decisions: Optional[str] = _opt(None, "CSV of path,action,label (keep/drop/relabel), as `tudui audit`'s page "
                                          "saves it")
    class_names: Optional[str] = _opt(None, "JSON or CSV file of display names (folder name or index -> name, "
                                            "e.g. cat_to_name.json); kept in the checkpoint, shown by report, "
                                            "predict and serve")
    # --- model ---
    model: str = _opt("tudui", "model name (see `tudui models`), timm:<name>, or package.module:Class")
    model_args: dict = _opt({}, "model arguments, KEY=VALUE (repeatable as --model-arg)", flag="model-arg")
    pretrained: bool = _opt(False, "start from torchvision's pretrained weights (downloads when online)")
    weights: Optional[str] = _opt(None, "local state_dict / safetensors file with backbone weights")
    freeze: str = _opt("none", "train only the new head (backbone) or everything (none)", ["none", "backbone"])
    backbone_lr: Optional[float] = _opt(None, "learning rate for the pretrained backbone (default: --lr)")
    # --- optimization ---
    epochs: int = _opt(15, "number of epochs")
    batch_size: int = _opt(64, "batch size")
    lr: float = _opt(0.05, "learning rate")
    optimizer: str = _opt("sgd", "optimizer (muon: orthogonalized updates for conv/linear weights, SGD for the "
                                 "rest)", ["sgd", "adam", "adamw", "muon"])
    momentum: float = _opt(0.9, "SGD momentum")
    nesterov: bool = _opt(False, "Nesterov momentum (SGD)")
    muon_lr: float = _opt(0.02, "Muon: learning rate of the conv/linear weights (--lr sets the rest)")
    muon_momentum: float = _opt(0.95, "Muon: momentum of the conv/linear weights (Nesterov)")
    muon_fixed_norm: bool = _opt(False, "Muon: keep each weight at norm sqrt(out) instead of decaying it "
                                        "(for layers followed by batch norm)")
    weight_decay: float = _opt(5e-4, "weight decay")
    norm_bias_lr_scale: float = _opt(1.0, "learning-rate multiplier for normalization-layer "
                                                  "biases (their weight decay per step stays unchanged)")
    loss: str = _opt("cross_entropy", "loss function", ["cross_entropy", "l1", "mse"])
    label_smoothing: float = _opt(0.0, "label smoothing for cross entropy")
    scheduler: str = _opt("cosine", "learning-rate schedule", ["none", "step", "cosine", "onecycle", "linear"])
    step_size: int = _opt(5, "StepLR: epochs between decays")
    gamma: float = _opt(0.1, "StepLR: decay factor")
    warmup_epochs: float = _opt(0.0, "linear warmup length in epochs (fractions allowed)")
    class_weights: str = _opt("none", "weight the loss by inverse class frequency", ["none", "auto"])
    sampler: str = _opt("shuffle", "batch sampling", ["shuffle", "balanced"])
    clip_grad: Optional[float] = _opt(2.0, "clip gradients to this global norm (none = off); the course's network "
                                           "without activations diverges at lr 0.05 on MNIST/CIFAR without it")
    accumulate: int = _opt(1, "accumulate gradients over N batches per optimizer step")
    ema: float = _opt(0.0, "exponential moving average decay of the weights (e.g. 0.999); 0 = off")
    ema_every: int = _opt(1, "update the EMA every N optimizer steps")
    lookahead: float = _opt(0.0, "lookahead: every --lookahead-every steps pull the weights into a slow average "
                                 "whose decay per step grows as D*(t/T)^3 over the run, and end on the average "
                                 "(airbench uses 0.95); 0 = off")
    lookahead_every: int = _opt(5, "steps between lookahead averages")
    amp: str = _opt("none", "mixed precision; auto: bf16 where the CPU or GPU computes bf16 natively "
                           "(AVX512-BF16, AMX, ARM BF16, CUDA bf16), fp32 elsewhere", ["none", "bf16", "fp16", "auto"])
    channels_last: Optional[bool] = _opt(None, "channels_last memory format (default: on when training tudui's or "
                                              "torchvision's models on a CPU, where convolutions run 10-40% faster)")
    compile: bool = _opt(False, "torch.compile the model")
    progressive_resize: Optional[int] = _opt(None, "train the first epochs on images downscaled to N px, growing "
                                                   "linearly to full size (cheaper early epochs); off by default")
    progressive_end: float = _opt(0.75, "fraction of the epochs after which --progressive-resize reaches full size")
    tta: bool = _opt(False, "test-time augmentation (flip and shift) when evaluating")
    # --- several processes (torchrun) ---
    sync_bn: bool = _opt(False, "under torchrun on GPUs: batch norm over the global batch (SyncBatchNorm); "
                                "refused on a CPU")
    dist_timeout: float = _opt(600.0, "under torchrun: seconds a process waits for the others in any collective "
                                      "before the job fails")
    # --- checkpoints & control ---
    monitor: str = _opt("val_acc", "metric for best.pt and early stopping", ["val_acc", "val_loss"])
    patience: Optional[int] = _opt(None, "early stopping: epochs without improvement before stopping")
    min_delta: float = _opt(0.0, "early stopping: smallest change that counts as an improvement")
    save_every: Optional[int] = _opt(None, "also write last.pt every N optimizer steps")
    eval_every: int = _opt(1, "evaluate every N epochs (the last epoch always)")
    device: str = _opt("auto", "auto, cpu, cuda, cuda:N or mps")
    seed: int = _opt(0, "random seed")
    threads: Optional[int] = _opt(None, "torch CPU threads (default: torch's choice, one per core; tudui makes "
                                        "waiting threads spin only briefly, see docs/explanations/reliability.md)")
    adapt_threads: bool = _opt(False, "run torch's threads on the cores other programs leave free, measured each "
                                      "epoch (faster on a busy machine; the results then depend on the load, so "
                                      "runs are not bit-reproducible)")
    out: str = _opt("runs", "parent folder of run folders")
    name: Optional[str] = _opt(None, "run folder name (default: unique and sortable)")
    recipe: Optional[str] = _opt(None, "a named bundle of options (see --print-config)")
    report: bool = _opt(False, "write the HTML report (RUN_DIR/report.html, see `tudui report`) when training ends")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_HINTS = None


def field_types() -> dict:
    global _HINTS
    if _HINTS is None:
        _HINTS = get_type_hints(TrainConfig)
    return _HINTS


def config_fields():
    return fields(TrainConfig)


def _base_type(tp):
    """Optional[X] -> X."""
    if get_origin(tp) is Union:
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def coerce(key: str, value: Any) -> Any:
    """Check and convert one value to the type of `key`. Strings are parsed (CLI and env)."""
    types = field_types()
    if key not in types:
        raise ConfigError(f"unknown config key '{key}'; run `tudui train --print-config` to see every key")
    tp = types[key]
    optional = get_origin(tp) is Union and type(None) in get_args(tp)
    base = _base_type(tp)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and optional):
        if optional:
            return None
        if base is str:
            return "none" if value is not None else value
        raise ConfigError(f"config key '{key}' cannot be empty")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError
        if base is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            return _finite(key, float(value))
        if base is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            value = str(value)
            choices = _choices(key)
            if choices and value not in choices:
                raise ConfigError(f"config key '{key}' must be one of {', '.join(choices)}, got '{value}'")
            return value
        if base is list:
            if isinstance(value, str):
                value = [float(v) for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) for v in value):
                raise ValueError
            return [_finite(key, float(v)) for v in value]
        if base is dict:
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
    except ConfigError:
        raise
    except (TypeError, ValueError, OverflowError):
        pass
    tname = getattr(base, "__name__", str(base))
    raise ConfigError(f"config key '{key}' must be {tname}, got {value!r}")


def _finite(key: str, v: float) -> float:
    if not math.isfinite(v):
        raise ConfigError(f"config key '{key}' must be a finite number, got {v}")
    return v


def _choices(key):
    for f in config_fields():
        if f.name == key:
            return f.metadata.get("choices")
    return None


MAX_CONFIG_BYTES = 1 << 20


def safe_yaml(text: str, where: str):
    """yaml.safe_load, refusing what a config never needs and an attacker uses: explicit tags (`!!python/...`,
    `!!binary`, custom `!tags`) and anchors/aliases (`&a` / `*a`, the "billion laughs" expansion)."""
    try:
        for ev in yaml.parse(text, Loader=yaml.SafeLoader):
            line = getattr(getattr(ev, "start_mark", None), "line", -1) + 1
            if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None):
                raise ConfigError(f"{where} line {line}: YAML anchors and aliases (&name, *name) are not allowed; "
                                  "write the values out")
            tag = getattr(ev, "tag", None)
            implicit = getattr(ev, "implicit", True)
            if tag and not (implicit is True or (isinstance(implicit, tuple) and implicit[0])):
                raise ConfigError(f"{where} line {line}: YAML tags ({tag}) are not allowed; use plain values")
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where} is not valid YAML: {str(e).splitlines()[0]}") from None


def load_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    if os.path.getsize(path) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than 1 MiB; a config is a short list of keys")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    data = safe_yaml(text, f"config file {path}") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return data


def resolve(overrides: Optional[dict] = None, config_file: Optional[str] = None,
            recipe: Optional[str] = None) -> TrainConfig:
    """Defaults < recipe < config file < overrides (CLI flags or keywords)."""
    merged: dict = {}
    file_values = load_yaml(config_file) if config_file else {}
    overrides = dict(overrides or {})
    recipe = overrides.get("recipe") or file_values.get("recipe") or recipe
    recipe = coerce("recipe", recipe) if recipe is not None else None
    if recipe:
        merged.update(get_recipe(recipe))
        merged["recipe"] = recipe
    for source in (file_values, overrides):
        for k, v in source.items():
            if k == "model_args" and isinstance(v, dict) and isinstance(merged.get("model_args"), dict):
                merged["model_args"] = {**merged["model_args"], **v}
            else:
                merged[k] = v
    values = {k: coerce(k, v) for k, v in merged.items()}
    cfg = TrainConfig(**values)
    validate(cfg)
    return cfg


# keys that may differ when resuming: they change where and how fast the run goes, or when it stops,
# not what it computes (`epochs` extends it; a different `tta` changes only the reported metrics)
RESUME_CHANGEABLE = ("epochs", "device", "threads", "adapt_threads", "workers", "loader", "memory_budget", "data_dir", "cache_dir",
                     "download", "save_every", "eval_every", "patience", "min_delta", "compile", "tta",
                     "report", "dist_timeout")


def resolve_resume(saved: dict, overrides: Optional[dict] = None, config_file: Optional[str] = None) -> TrainConfig:
    """The config of a resumed run: the checkpoint's own < config file < overrides. Only the keys in
    RESUME_CHANGEABLE may differ from the checkpoint's; anything else would not continue the same run."""
    base = from_checkpoint_dict(saved).to_dict()
    changes = {**(load_yaml(config_file) if config_file else {}), **(overrides or {})}
    for k, v in changes.items():
        v = coerce(k, v)
        if k == "model_args":
            v = {**base["model_args"], **v}
        if v != base.get(k) and k not in RESUME_CHANGEABLE:
            raise ConfigError(f"'{k}' cannot change when resuming (the run has {k}={base.get(k)!r}); "
                              "start a new run instead")
        base[k] = v
    cfg = TrainConfig(**base)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    if cfg.epochs < 1:
        raise ConfigError("epochs must be at least 1")
    if cfg.batch_size < 1:
        raise ConfigError("batch_size must be at least 1")
    if cfg.lr <= 0:
        raise ConfigError("lr must be positive")
    if not 0 < cfg.val_split < 1:
        raise ConfigError("val_split must be between 0 and 1")
    if cfg.accumulate < 1:
        raise ConfigError("accumulate must be at least 1")
    if cfg.progressive_resize is not None and cfg.progressive_resize < 4:
        raise ConfigError("progressive_resize must be at least 4 (pixels)")
    if not 0 < cfg.progressive_end <= 1:
        raise ConfigError("progressive_end must be in (0, 1]")
    if not 0 <= cfg.ema < 1:
        raise ConfigError("ema must be in [0, 1) (0 turns it off)")
    if not 0 <= cfg.lookahead < 1:
        raise ConfigError("lookahead must be in [0, 1) (0 turns it off)")
    if cfg.lookahead_every < 1 or cfg.ema_every < 1:
        raise ConfigError("lookahead_every and ema_every must be at least 1 (steps)")
    if cfg.muon_lr <= 0 or not 0 <= cfg.muon_momentum < 1:
        raise ConfigError("muon_lr must be positive and muon_momentum in [0, 1)")
    if cfg.dist_timeout <= 0:
        raise ConfigError("dist_timeout must be positive (seconds)")
    if cfg.img_size is not None and cfg.img_size < 1:
        raise ConfigError("img_size must be positive")


def from_checkpoint_dict(d: dict) -> TrainConfig:
    """Rebuild a config saved by an older or newer tudui: unknown keys are dropped, not fatal."""
    known = {f.name for f in config_fields()}
    return TrainConfig(**{k: v for k, v in d.items() if k in known})


def dump_yaml(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True)
