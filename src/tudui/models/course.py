"""The course's CIFAR-10 network, `Tudui`: Conv5x5(32)-MaxPool-Conv5x5(32)-MaxPool-Conv5x5(64)-MaxPool-
Flatten-Linear(1024, 64)-Linear(64, 10), adapted to any channel count, image size and class count.

Layers live in `self.model = nn.Sequential(...)` exactly as the course writes them, so with the default
arguments the state_dict keys (`model.0.weight` ... `model.8.bias`) are the course's own. The options the
course's notes teach (activation, dropout, normalization, init) insert layers only when asked.
"""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError

ACTIVATIONS = {"none": None, "relu": nn.ReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}
NORMS = ("none", "batchnorm", "layernorm")
INITS = ("default", "uniform", "normal", "kaiming", "xavier")


class Tudui(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, img_size=32, activation: str = "none",
                 dropout: float = 0.0, norm: str = "none", init: str = "default", hidden: int = 64):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"model argument activation must be one of {', '.join(ACTIVATIONS)}, got '{activation}'")
        if norm not in NORMS:
            raise ConfigError(f"model argument norm must be one of {', '.join(NORMS)}, got '{norm}'")
        if init not in INITS:
            raise ConfigError(f"model argument init must be one of {', '.join(INITS)}, got '{init}'")
        dropout = float(dropout)
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model argument dropout must be in [0, 1), got {dropout}")
        h, w = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size or (32, 32))
        fh, fw = h // 8, w // 8
        if fh < 1 or fw < 1:
            raise ConfigError(f"the tudui network pools three times by 2 and needs images of at least 8x8, "
                              f"got {h}x{w}; use --img-size 8 or larger")
        act = ACTIVATIONS[activation]
        layers = []
        c_in = in_channels
        for i, c_out in enumerate((32, 32, 64)):
            layers.append(nn.Conv2d(c_in, c_out, 5, 1, 2))
            if norm == "batchnorm":
                layers.append(nn.BatchNorm2d(c_out))
            elif norm == "layernorm":
                layers.append(nn.GroupNorm(1, c_out))  # LayerNorm over (C, H, W) of each image
            if act:
                layers.append(act())
            layers.append(nn.MaxPool2d(2))
            c_in = c_out
        layers.append(nn.Flatten())
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(64 * fh * fw, hidden))
        if act:
            layers.append(act())
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden, num_classes))
        self.model = nn.Sequential(*layers)
        init_weights(self, init)

    def forward(self, x):
        return self.model(x)


def init_weights(module: nn.Module, how: str) -> None:
    if how == "default":
        return
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if how == "uniform":
                nn.init.uniform_(m.weight, -0.05, 0.05)
            elif how == "normal":
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif how == "kaiming":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif how == "xavier":
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
