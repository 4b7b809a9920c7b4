"""What a checkpoint records about its run besides the weights, for the commands that use it later: the display
names of the classes (--class-names), the training images' brightness (so predict and serve can say when an
input is far outside it) and the device the run actually used (the config may say `auto`)."""
from __future__ import annotations

import torch

from ..console import notice, say
from ..data.brightness import training_stats
from ..data.class_names import read_class_names
from ..errors import first_line


def run_facts(cfg, classes: list, train_loader, device: torch.device) -> dict:
    facts = {"train_device": device_label(device)}
    if cfg.class_names:
        names, notes = read_class_names(cfg.class_names, classes)
        for n in notes:
            say(n)
        facts["class_names"] = names
    try:
        stats = training_stats(train_loader)
    except Exception as e:  # noqa: BLE001 - a statistic must never cost a run
        notice(f"no brightness statistics in the checkpoint ({first_line(e)})")
        stats = None
    if stats is not None:
        facts["input_stats"] = stats
    return facts


def device_label(device: torch.device) -> str:
    """'cpu', or 'cuda:0 (NVIDIA H100 80GB HBM3)': the device a run used, as the report shows it."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
