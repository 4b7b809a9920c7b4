"""`tudui import`: turn a .pth saved the course's way into a tudui checkpoint without running code from it
(unpickle.py reads it; statedict.py maps its tensors; fit.py finds the model they fit)."""
from __future__ import annotations

import os

from ..checkpoint import save
from ..config import TrainConfig, coerce
from ..data.preprocess import make_preprocess
from ..errors import CheckpointError, ConfigError
from .fit import _fit_named, _fit_tudui
from .statedict import _check_course_layers, _match, extract_state_dict
from .unpickle import read_pth

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ---------------------------------------------------------------- class names, preprocessing, the checkpoint

def resolve_classes(spec, count: int) -> list:
    """None -> '0'..'N-1' (ImageNet's names for a 1000-wide head); 'cifar10'; 'imagenet'; a .txt of one name
    a line; 'a,b,c'; or a list."""
    if spec is None:
        names = _imagenet_classes() if count == 1000 else [str(i) for i in range(count)]
    elif isinstance(spec, (list, tuple)):
        names = [str(c) for c in spec]
    elif spec.lower() in ("cifar10", "cifar-10"):
        names = list(CIFAR10_CLASSES)
    elif spec.lower() == "imagenet":
        names = _imagenet_classes()
    elif os.path.isfile(spec):
        with open(spec, encoding="utf-8") as fh:
            names = [line.strip() for line in fh if line.strip()]
    elif spec.lower().endswith(".txt"):
        raise ConfigError(f"classes file not found: {spec}")
    else:
        names = [c.strip() for c in spec.split(",") if c.strip()]
    if len(names) != count:
        raise ConfigError(f"--classes gives {len(names)} names but the model has {count} outputs")
    if len(set(names)) != len(names):
        raise ConfigError("--classes has duplicate names")
    return names


def _imagenet_classes() -> list:
    from torchvision.models import ResNet18_Weights  # import-time cost: only for a 1000-class head
    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def _stats(value, channels: int, default: float, key: str) -> list:
    values = [default] * channels if value is None else coerce(key, value)
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise ConfigError(f"--{key} needs {channels} values for {channels}-channel images, got {len(values)}")
    return values


def import_pth(path, out, *, model: str = "tudui", classes=None, img_size=None, mean=None, std=None) -> dict:
    """Import a course-style .pth (whole pickled model or state_dict, saved on any device) as a tudui
    checkpoint at `out`. Preprocessing defaults to the course's Resize((S, S)) + ToTensor() (no Normalize).
    -> summary dict (out, model, num_classes, classes, img_size, kind, saved_class, saved_on, mapped)."""
    if img_size is not None and int(img_size) < 1:
        raise ConfigError("--img-size must be positive")
    obj, devices = read_pth(path)
    try:
        sd, kind, saved_class, leaves = extract_state_dict(obj)
    except RecursionError:
        raise CheckpointError(f"cannot import {path}: its modules are nested too deeply") from None
    except CheckpointError as e:
        raise CheckpointError(f"cannot import {path}: {e}") from None
    fit = _fit_tudui if model == "tudui" else (lambda s, size: _fit_named(model, s, size))
    try:
        if model == "tudui":
            _check_course_layers(leaves)
        target, args, num_classes, channels, size = fit(sd, img_size)
        state, how = _match(sd, target, model)
    except CheckpointError as e:
        raise CheckpointError(f"cannot import {path} as {model}: {e}") from None
    names = resolve_classes(classes, num_classes)
    pre = make_preprocess((size, size), channels, _stats(mean, channels, 0.0, "mean"),
                          _stats(std, channels, 1.0, "std"))
    # CIFAR-10 names mean the course's data: `tudui eval` then uses its test set; otherwise no data is recorded
    data = "cifar10" if names == CIFAR10_CLASSES and channels == 3 else ""
    config = TrainConfig(data=data, model=model, model_args=args, img_size=size, mean=pre["mean"],
                         std=pre["std"]).to_dict()
    source = {"file": os.path.basename(os.fspath(path)), "kind": kind, "saved_class": saved_class,
              "saved_on": sorted(devices), "mapped": how}
    save(out, model_state=state, model_spec={"name": model, "args": args, "num_classes": num_classes,
                                             "in_channels": channels, "img_size": [size, size]},
         classes=names, preprocess=pre, config=config, extra={"imported_from": source})
    return {"out": os.fspath(out), "model": model, "num_classes": num_classes, "classes": names,
            "img_size": size, **source}
