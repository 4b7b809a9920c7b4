"""From the unpickled object tree to a state_dict, and onto the parameters of a tudui model (by name, else by
order; every shape must agree)."""
from __future__ import annotations

from collections import OrderedDict

import torch

from ..checkpoint import clean_state_dict
from ..errors import CheckpointError
from .unpickle import _Stub


# ---------------------------------------------------------------- from object tree to state_dict

def _module_state(stub: _Stub, prefix: str, out: dict, leaves: list, path_ids: set) -> None:
    state = stub.state
    if isinstance(state, tuple) and len(state) == 2:  # (__dict__, slots)
        state = {**(state[0] or {}), **(state[1] or {})}
    where = prefix[:-1] or "the top level"
    if not isinstance(state, dict) or not isinstance(state.get("_parameters"), dict):
        raise CheckpointError(f"{stub.target} at {where} is not a torch.nn.Module")
    if id(stub) in path_ids:
        raise CheckpointError(f"its modules contain themselves (at {where})")
    path_ids = path_ids | {id(stub)}
    skip = state.get("_non_persistent_buffers_set") or set()
    buffers = [(k, v) for k, v in (state.get("_buffers") or {}).items() if k not in skip]
    items = [*state["_parameters"].items(), *buffers]
    for name, value in items:
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{prefix}{name} is a {type(value).__name__}, not a tensor")
        out[prefix + name] = value
    children = [(k, v) for k, v in (state.get("_modules") or {}).items() if v is not None]
    if not children:
        leaves.append((prefix[:-1], stub.target))
    for name, child in children:
        if not isinstance(child, _Stub):
            raise CheckpointError(f"{prefix}{name} is a {type(child).__name__}, not a module")
        _module_state(child, f"{prefix}{name}.", out, leaves, path_ids)


def extract_state_dict(obj) -> tuple:
    """-> (OrderedDict name -> tensor, 'whole model' | 'state_dict', the saved class name or None,
    [(path, class name) of each module without submodules] or None for a state_dict)."""
    if isinstance(obj, _Stub):
        out: dict = OrderedDict()
        leaves: list = []
        _module_state(obj, "", out, leaves, set())
        if not out:
            raise CheckpointError(f"the saved {obj.target} has no parameters")
        return clean_state_dict(out), "whole model", obj.target, leaves
    if isinstance(obj, dict) and obj:
        if all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return clean_state_dict(obj), "state_dict", None, None
        for key in ("state_dict", "model_state_dict", "model", "net"):  # common training-checkpoint dicts
            if isinstance(obj.get(key), (dict, _Stub)):
                return extract_state_dict(obj[key])
    raise CheckpointError(f"it holds a {type(obj).__name__}, not a model or a state_dict")


# ---------------------------------------------------------------- onto a tudui model

def _match(sd: dict, target: dict, model: str) -> tuple:
    """Pair the file's tensors with the model's by name, else by order; every shape must agree."""
    if set(sd) == set(target):
        pairs, how = [(k, k) for k in target], "by name"
    elif len(sd) == len(target):
        pairs, how = list(zip(sd, target)), "by order"
    else:
        missing = [k for k in target if k not in sd][:3]
        raise CheckpointError(f"the file has {len(sd)} tensors but the {model} model has {len(target)} "
                              f"(e.g. missing {', '.join(missing) or '-'}); is --model right?")
    out = OrderedDict()
    for src, dst in pairs:
        a, b = sd[src], target[dst]
        if tuple(a.shape) != tuple(b.shape):
            raise CheckpointError(f"the file's {src} has shape {list(a.shape)} but the {model} model's {dst} "
                                  f"needs {list(b.shape)}")
        t = a.detach()
        whole = t.is_contiguous() and not t.storage_offset() and t.untyped_storage().nbytes() == t.nbytes
        if t.dtype != b.dtype or not whole:  # else it already owns exactly its bytes: no second copy of a big model
            t = t.to(dtype=b.dtype, copy=True).contiguous()
        out[dst] = t
    return out, how


# layers of the course's Tudui (Dropout is the identity at inference, so a saved one changes nothing)
_COURSE_LAYERS = {"Conv2d", "MaxPool2d", "Flatten", "Linear", "Dropout", "Identity"}


def _check_course_layers(leaves) -> None:
    """A whole model shows its layers: a torch.nn layer the course's Tudui lacks (ReLU, BatchNorm ...) would make
    the imported network compute something else, so refuse rather than predict wrongly."""
    extra = [f"{path} ({target.rsplit('.', 1)[1]})" for path, target in leaves or []
             if target.startswith("torch.nn.") and target.rsplit(".", 1)[1] not in _COURSE_LAYERS]
    if extra:
        raise CheckpointError(f"the saved network has layers the course's Tudui lacks: {', '.join(extra[:4])}; "
                              "tudui import maps the course's layout only")
