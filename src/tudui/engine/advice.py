"""What the closing lines of a run suggest next, beyond where its files are."""
from __future__ import annotations

import os
import shlex

PHOTO_FLOOR = 0.80  # below this on a folder of photos trained from scratch, suggest fine-tuning
RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"  # torchvision's IMAGENET1K_V1


def next_steps(cfg, best_acc) -> list:
    """Lines to print after training: a small photo folder trained from scratch that ends below 80% is told
    to fine-tune a pretrained model (the command, and the offline route)."""
    data = str(cfg.data or "")
    if best_acc is None or best_acc >= PHOTO_FLOOR or cfg.pretrained or cfg.weights or not os.path.isdir(data):
        return []
    base = f"tudui train --data {shlex.quote(data)} --model resnet18"
    return [f"{best_acc:.0%} from scratch: a model pretrained on ImageNet usually does far better on a few "
            "hundred photos. Fine-tune one:",
            f"  {base} --pretrained --freeze backbone --epochs 5",
            f"  offline: fetch {RESNET18_URL} elsewhere, then {base} --weights resnet18-f37072fd.pth "
            "--freeze backbone --epochs 5   (docs/how-to/finetune-offline.md)"]
