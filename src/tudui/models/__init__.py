"""Models: the course's network, torchvision's zoo, timm and a user's own class, all behind `create()`
(factory.py); heads and freezing (head.py); pretrained presets and the Trainer's build() (finetune.py)."""
from .course import Tudui
from .factory import REGISTRY, create, input_channels, list_models
from .finetune import apply_preset, build
from .head import freeze_backbone, head_modules

__all__ = ["create", "list_models", "REGISTRY", "Tudui", "input_channels", "apply_preset", "build",
           "freeze_backbone", "head_modules"]
