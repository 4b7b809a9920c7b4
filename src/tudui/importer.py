"""`tudui import`: turn a .pth saved the course's way into a tudui checkpoint without running code from it.

The course saves either the whole module (`torch.save(model, "tudui_29_gpu.pth")`, often on a GPU, with its
class in `__main__` or `model.py`) or its `state_dict()`, and loads it with `torch.load`, which runs whatever
the pickle names. Here the pickle is read by a restricted unpickler instead:

- real objects are made only by a short allowlist: tensor rebuilders (our own, reading the archive's bytes),
  `collections.OrderedDict`, `set`, dtypes, `torch.device`, `torch.Size`;
- every other class reference (the user's `__main__.Tudui`, torch.nn's and torchvision's modules) becomes an
  inert stub: created without running the class's code, it only records the state the pickle gives it, so
  parameters and buffers are collected by attribute path afterwards; calling a stub is refused;
- a reference to the standard library (`os.system`, `builtins.eval`, `subprocess.Popen` ...) or to torch
  outside that allowlist stops the import at once.

Storage device tags (`cuda:0`) are only recorded, so files saved on a GPU import on a CPU. Both the zip format
(torch >= 1.6) and the older single-stream format are read.
"""
from __future__ import annotations

import _compat_pickle
import io
import math
import os
import pickle
import sys
import zipfile
from collections import OrderedDict

import torch

from .errors import CheckpointError, ConfigError

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128, "UntypedStorage": torch.uint8,
}
_TORCH_CONSTANTS = {n: v for n, v in vars(torch).items() if isinstance(v, (torch.dtype, torch.layout))}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
# `test` is CPython's own test package, never in a pickle; as a name it is more likely the user's test.py
_STDLIB = (set(sys.stdlib_module_names) | {"__builtin__", "copy_reg"}) - {"test"}


class UnsafePickle(CheckpointError):
    """The file asks for something other than tensors and module state: refused before anything ran."""


# ---------------------------------------------------------------- inert stand-ins for the file's classes

class _StubType(type):
    def __call__(cls, *args, **kwargs):  # REDUCE / INST: the pickle wants to run this callable
        raise UnsafePickle(f"it calls {cls.target}(...), and tudui does not run code from model files")


class _Stub(metaclass=_StubType):
    """An object of a class the file names but we never import; `state` is what the pickle set on it."""
    __slots__ = ("state",)
    target = "?"

    def __new__(cls, *args, **kwargs):  # NEWOBJ creates instances this way, without the class's __init__
        obj = object.__new__(cls)
        obj.state = None
        return obj


_STUBS: dict = {}


def _stub_class(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _STUBS:
        _STUBS[key] = _StubType(name, (_Stub,), {"__slots__": (), "target": key})
    return _STUBS[key]


# ---------------------------------------------------------------- storages and tensor rebuilders

class _StorageType:
    def __init__(self, name: str):
        self.name, self.dtype = name, _STORAGE_DTYPES[name]


class _Storage:
    """Raw bytes of one saved storage (a uint8 tensor) and the dtype they hold."""

    def __init__(self, dtype: torch.dtype, raw: torch.Tensor):
        self.dtype, self.raw = dtype, raw


def _tensor_from(storage, offset, size, stride, dtype=None) -> torch.Tensor:
    if not isinstance(storage, _Storage):
        raise UnsafePickle("it rebuilds a tensor from something that is not a saved storage")
    flat = storage.raw.view(dtype or storage.dtype)
    return torch.as_strided(flat, tuple(size), tuple(stride), int(offset))  # torch checks the bounds


def _rebuild_tensor(storage, offset, size, stride):
    return _tensor_from(storage, offset, size, stride)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    return _tensor_from(storage, offset, size, stride)  # hooks are never saved; conj/neg bits unused by weights


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None):
    if not isinstance(dtype, torch.dtype):
        raise UnsafePickle("it rebuilds a tensor with an invalid dtype")
    return _tensor_from(storage, offset, size, stride, dtype)


def _rebuild_parameter(data, requires_grad=True, hooks=None, state=None):
    if not isinstance(data, torch.Tensor):
        raise UnsafePickle("it rebuilds a parameter from something that is not a tensor")
    return data


_REBUILDERS = (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter)


def _rebuild_from_type(func, new_type, args, state):
    """Tensors with a subclass or attributes: rebuild the plain tensor, drop the subclass and its state."""
    if func not in _REBUILDERS:
        raise UnsafePickle("it rebuilds a tensor with a function other than torch's tensor rebuilders")
    return func(*args)


def _layout(name):
    if name not in _TORCH_CONSTANTS:
        raise UnsafePickle(f"it names an unknown tensor layout {name!r}")
    return _TORCH_CONSTANTS[name]


def _encode(text, encoding="latin1"):  # how protocol 2 pickles bytes
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickle("it calls _codecs.encode in a way bytes are never pickled")
    return text.encode("latin1")


_SAFE = {
    "collections.OrderedDict": OrderedDict,
    "builtins.set": set, "builtins.frozenset": frozenset,
    "_codecs.encode": _encode,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type,
    # only ever type arguments of _rebuild_from_type_v2, which ignores them: inert, never constructed
    "torch.nn.parameter.Parameter": _stub_class("torch.nn.parameter", "Parameter"),
    "torch.Tensor": _stub_class("torch", "Tensor"),
    "torch.Size": torch.Size,
    "torch.device": torch.device,
    "torch.serialization._get_layout": _layout,
}


class _Unpickler(pickle._Unpickler):
    """The pure-Python unpickler, so BUILD (setting an object's state) can be limited to our stubs too."""

    def __init__(self, stream, load_storage=None):
        super().__init__(stream)
        self._load_storage = load_storage
        self.devices: set = set()

    def find_class(self, module, name):
        if self.proto < 3:  # protocol 2 writes Python 2 names (__builtin__, commands ...); read them as pickle does
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        full = f"{module}.{name}"
        if full in _SAFE:
            return _SAFE[full]
        if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name in _TORCH_CONSTANTS:
            return _TORCH_CONSTANTS[name]
        top = module.split(".")[0]
        torch_nn = module == "torch.nn" or module.startswith("torch.nn.")
        if top in _STDLIB or (top == "torch" and not torch_nn):
            raise UnsafePickle(f"it refers to {full}, which rebuilding a model never needs")
        return _stub_class(module, name)

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise UnsafePickle("it holds an unknown persistent reference")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module" and len(pid) == 4 and isinstance(pid[1], _StubType):  # old format: class + its source
            return pid[1]
        if kind != "storage" or len(pid) not in (5, 6) or not isinstance(pid[1], _StorageType):
            raise UnsafePickle(f"it holds an unknown persistent reference {kind!r}")
        location = pid[3].decode("ascii") if isinstance(pid[3], bytes) else str(pid[3])
        self.devices.add(location)
        return self._load_storage(pid[1].dtype, str(pid[2]), int(pid[4]), pid[5] if len(pid) == 6 else None)

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, _Stub):
            inst.state = state
        elif not isinstance(inst, dict):  # a state_dict's `_metadata` (layer versions) may be set; nothing else
            raise UnsafePickle(f"it sets the state of a {type(inst).__name__} object")

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = load_build


# ---------------------------------------------------------------- reading the file

def _element_size(dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _swap_bytes(raw: torch.Tensor, dtype) -> None:
    size = _element_size(dtype)
    if size > 1:
        raw.copy_(raw.view(-1, size).flip(1).reshape(-1))


def _unpickle(data: bytes, load_storage):
    up = _Unpickler(io.BytesIO(data), load_storage)
    try:
        return up.load(), up.devices
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError("its pickle is nested too deeply to be a model") from None
    except Exception as e:
        raise CheckpointError(f"it is not a readable torch.save file ({type(e).__name__}: {str(e)[:150]})") from None


def _read_zip(path: str):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        if any(n.endswith("/constants.pkl") for n in names):
            raise CheckpointError("it is a TorchScript file (torch.jit.save); tudui imports torch.save files")
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise CheckpointError("it is a zip archive but not a torch.save file (no data.pkl)")
        root = pkl[0].rsplit("/", 1)[0]
        order = root + "/byteorder"
        swap = order in names and zf.read(order).decode("ascii", "replace").strip() != sys.byteorder
        cache: dict = {}

        def load_storage(dtype, key, numel, _view):
            if key not in cache:
                name, nbytes = f"{root}/data/{key}", numel * _element_size(dtype)
                try:
                    info = zf.getinfo(name)
                except KeyError:
                    raise CheckpointError(f"it is damaged: storage {key} is missing") from None
                if info.file_size != nbytes:
                    raise CheckpointError(f"it is damaged: storage {key} has {info.file_size} bytes, expected {nbytes}")
                raw = torch.empty(nbytes, dtype=torch.uint8)
                with zf.open(info) as fh:
                    if fh.readinto(memoryview(raw.numpy())) != nbytes:
                        raise CheckpointError(f"it is damaged: storage {key} is truncated")
                if swap:
                    _swap_bytes(raw, dtype)
                cache[key] = _Storage(dtype, raw)
            return cache[key]

        return _unpickle(zf.read(pkl[0]), load_storage)


def _read_legacy(path: str):
    """torch < 1.6 (or _use_new_zipfile_serialization=False): pickles in a row, then the raw storages."""
    with open(path, "rb") as fh:
        buf = io.BytesIO(fh.read())
    total = len(buf.getvalue())

    def next_pickle(load_storage=None):  # each reads one pickle and leaves the stream right after it
        return _Unpickler(buf, load_storage)

    try:
        magic = next_pickle().load()
    except CheckpointError:
        raise
    except Exception:
        magic = None
    if magic != _LEGACY_MAGIC:
        raise CheckpointError("it is not a file written by torch.save")
    next_pickle().load()  # protocol version
    sys_info = next_pickle().load()
    little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
    roots: dict = {}

    def load_storage(dtype, key, numel, view):
        if key not in roots:
            if numel * _element_size(dtype) > total:
                raise CheckpointError(f"it is damaged: storage {key} is larger than the file")
            roots[key] = _Storage(dtype, torch.zeros(numel * _element_size(dtype), dtype=torch.uint8))
        if view is None:
            return roots[key]
        _, offset, size = view
        size_b = _element_size(dtype)
        return _Storage(dtype, roots[key].raw[offset * size_b:(offset + size) * size_b])

    up = next_pickle(load_storage)
    try:
        obj = up.load()
        keys = next_pickle().load()
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"it is not a readable torch.save file ({type(e).__name__}: {str(e)[:150]})") from None
    for key in keys if isinstance(keys, list) else []:
        st = roots.get(key)
        header = buf.read(8)
        if st is None or len(header) != 8:
            raise CheckpointError("it is damaged: its storages do not match its pickle")
        nbytes = int.from_bytes(header, "little" if little else "big") * _element_size(st.dtype)
        data = buf.read(nbytes)
        if nbytes != st.raw.numel() or len(data) != nbytes:
            raise CheckpointError(f"it is damaged: storage {key} is truncated")
        st.raw.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        if little != (sys.byteorder == "little"):
            _swap_bytes(st.raw, st.dtype)
    return obj, up.devices


def read_pth(path: str):
    """-> (object tree of stubs, dicts and tensors, set of device tags), without executing the file's code."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"file not found: {path}")
    try:
        return _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
    except CheckpointError as e:
        cls = type(e)
        msg = f"{path} was not imported: {e}" if cls is UnsafePickle else f"cannot import {path}: {e}"
        raise cls(msg + (" (refused; nothing from the file was run)" if cls is UnsafePickle else "")) from None


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
    from .checkpoint import clean_state_dict
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


def _fit_tudui(sd: dict, img_size) -> tuple:
    """The course's Tudui: three 5x5 convs and two linears; channels, hidden width, classes and (square)
    image size are read from the weight shapes."""
    from .models.course import Tudui
    from .models.meta import params_on_meta
    convs = [v for v in sd.values() if v.ndim == 4]
    linears = [v for v in sd.values() if v.ndim == 2]
    if len(convs) != 3 or len(linears) != 2:
        shapes = ", ".join(str(list(v.shape)) for v in sd.values() if v.ndim >= 2)
        raise CheckpointError(f"its weights are not the course's Tudui (3 Conv2d + 2 Linear): {shapes}; "
                              "for a torchvision model pass --model NAME")
    in_ch, (hidden, flat), classes = convs[0].shape[1], linears[0].shape, linears[1].shape[0]
    if img_size is None:
        side = math.isqrt(flat // 64)
        if 64 * side * side != flat:
            raise CheckpointError(f"its first Linear takes {flat} features, which no square image gives; "
                                  "pass --img-size")
        img_size = 8 * side
    args = {} if hidden == 64 else {"hidden": int(hidden)}
    with params_on_meta():  # shapes only: no weights are allocated or initialized
        target = Tudui(num_classes=classes, in_channels=in_ch, img_size=img_size, **args).state_dict()
    return target, args, int(classes), int(in_ch), int(img_size)


def _fit_named(name: str, sd: dict, img_size) -> tuple:
    """A zoo (or other registered) model: its class count is the width of the head found in the weights."""
    from . import models
    from .models.finetune import head_modules
    from .models.meta import params_on_meta
    with params_on_meta():  # the head the factory recorded (SqueezeNet's is a 1x1 conv), else the last Linear
        heads = head_modules(models.create(name, 10, in_channels=3))
    if not heads:
        raise ConfigError(f"{name} has no classifier head (a Linear layer) to read the class count from")
    head = heads[-1]
    weight = sd.get(head + ".weight")
    if weight is None or weight.ndim not in (2, 4):  # Linear (out, in) or a 1x1 conv (out, in, 1, 1)
        raise CheckpointError(f"its weights are not a {name}: there is no {head}.weight (the {name} head)")
    classes = int(weight.shape[0])
    with params_on_meta():  # a size the user gave is checked against the model (a dry run on meta tensors)
        target = models.create(name, classes, in_channels=3, img_size=img_size).state_dict()
    return target, {}, classes, 3, int(img_size or 224)


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
    from torchvision.models import ResNet18_Weights
    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def _stats(value, channels: int, default: float, key: str) -> list:
    from .config import coerce
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
    from .checkpoint import save
    from .config import TrainConfig
    from .data.preprocess import make_preprocess

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
