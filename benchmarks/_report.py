"""What every benchmark script here shares: the machine it ran on, and its JSON result printed (and saved)."""
from __future__ import annotations

import json
import os
import platform


def machine(device: str = "cpu") -> dict:
    """The CPU's model name, core count, torch and Python versions, torch's threads and the device (the GPU's name on CUDA)."""
    import torch

    from tudui.device import cpu_name
    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def emit(result: dict, save: str | None = None, indent: int = 2) -> None:
    """Print the result as JSON on stdout and, with `save`, write the same text to that file."""
    text = json.dumps(result, indent=indent)
    print(text)
    if save:
        os.makedirs(os.path.dirname(os.path.abspath(save)), exist_ok=True)
        with open(save, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
