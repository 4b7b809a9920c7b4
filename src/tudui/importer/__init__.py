"""`tudui import` (import_pth) and the safe unpickler it reads with (read_pth: a pickle loaded without running
code), as a package along its seams: unpickle -> statedict -> fit -> pth."""
from .pth import CIFAR10_CLASSES, import_pth, resolve_classes
from .statedict import extract_state_dict
from .unpickle import UnsafePickle, read_pth

__all__ = ["import_pth", "read_pth", "extract_state_dict", "resolve_classes", "UnsafePickle", "CIFAR10_CLASSES"]
