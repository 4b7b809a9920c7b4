"""Shape fitting: which tudui model (and which class count, channels, image size) the weights of a file are."""
from __future__ import annotations

import math

from .. import models
from ..errors import CheckpointError, ConfigError
from ..models.course import Tudui
from ..models.head import head_modules
from ..models.meta import params_on_meta


def _fit_tudui(sd: dict, img_size) -> tuple:
    """The course's Tudui: three 5x5 convs and two linears; channels, hidden width, classes and (square)
    image size are read from the weight shapes."""
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
