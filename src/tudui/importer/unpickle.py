"""Load a pickle (a .pth) without running code from it: a restricted unpickler that builds tensors and inert stubs.

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
import os
import pickle
import sys
import zipfile
from collections import OrderedDict

import torch

from ..errors import CheckpointError

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
