"""Named bundles of training options (`--recipe NAME`). A recipe only sets config keys;
every technique it uses is a general option that any dataset can use on its own."""
from __future__ import annotations

from .errors import ConfigError

RECIPES: dict[str, dict] = {
    # The course's own loop: its network as written (no activations), ToTensor only,
    # plain SGD lr 0.01, batch 64, 10 epochs, no schedule.
    "course": dict(model="tudui", augment="none", mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0],
                   optimizer="sgd", lr=0.01, momentum=0.0, weight_decay=0.0, batch_size=64,
                   epochs=10, scheduler="none", clip_grad=None,  # the course's loop clips nothing
                   model_args={"activation": "none"}),
}


def _fast_cifar(widths: str, epochs: int, block1_epochs: int, batch_size: int = 256) -> dict:
    """The fast CIFAR-10 recipes (Page's "How to train your ResNet", Jordan's airbench) as tudui options,
    adapted to a CPU. Their hyperparameters are per example, so the lr scales with the batch while the weight
    decay per example stays fixed: peak lr 1.5 and weight decay 1.33e-3 at batch 1024 (mean-reduced loss).
    CPU choices, measured on a 2-core EPYC (benchmarks/results/cifar_speed_cpu_notes.md): batch 256 (per image
    as fast as 512 or 1024 there, with more steps per epoch), channels_last (1.4x faster convolutions than
    NCHW in oneDNN), progressive resizing (the first 70% of the epochs at 20 px growing to 32 px), which at
    equal compute beat fewer full-size epochs by a point, freezing the first block for the last epochs,
    which makes them 30-45% cheaper for 0.2 points, and a narrower first block with more epochs."""
    return dict(
        # patch-whitening stem (its bias trained for the first 3 epochs only), frozen-scale BN, 1/9 logits;
        # the first block frozen after `block1_epochs` (its backward and block 2's input gradient skipped)
        model="fastnet", model_args={"widths": widths, "whiten_bias_epochs": 3, "block1_epochs": block1_epochs},
        img_size=32, augment="basic", translate=2, alt_flip=True,  # 2-px translate, flips alternating per epoch
        optimizer="sgd", momentum=0.85, nesterov=True, lr=1.5 * batch_size / 1024, weight_decay=1.33e-3,
        norm_bias_lr_scale=64.0, label_smoothing=0.2,
        lookahead=0.95, lookahead_every=5,  # every 5 steps into a slow average, the run ending on it
        clip_grad=None,  # unclipped, as published (tudui's default clips at 2)
        scheduler="onecycle", warmup_epochs=0.0,  # triangle: up over the first quarter, then down to zero
        batch_size=batch_size, epochs=epochs, progressive_resize=20, progressive_end=0.7,
        tta=True, eval_every=1000,  # evaluate (with flip + shift TTA) after the last epoch only
        channels_last=True, loader="memory",
        # bf16 where the CPU computes it natively (AVX512-BF16, AMX), fp32 elsewhere: over seeds 0-2 on a 2-core
        # Xeon with AMX, cifar10-speed gave 88.37/88.29/88.34% in bf16 against 88.13/88.14/88.25% in fp32
        # (benchmarks/results/bf16_accuracy-xeon.json); on an AVX2-only CPU nothing changes
        amp="auto",
    )


# a 32-channel first block makes an epoch ~40% cheaper than airbench93's 64; the time saved buys 11 epochs
RECIPES["cifar10-speed"] = _fast_cifar("32,128,128", epochs=11, block1_epochs=8)
# the same net trained longer: 89.45% in 1,308 s (seed 0) where 64,256,256 for 6 epochs gave 88.44% in 1,517 s;
# in bf16 on a 2-core Xeon with AMX, 89.38% (6 seeds) against airbench93's 89.42% (bf16) in 0.78x its time;
# 16 epochs there: 88.91% in 260 s, so no preset between (benchmarks/results/cpu_record-speed9*-xeon.json)
RECIPES["cifar10-speed94"] = _fast_cifar("32,128,128", epochs=17, block1_epochs=13)


def get_recipe(name: str) -> dict:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe '{name}'; choose one of: {', '.join(sorted(RECIPES))}")
    return dict(RECIPES[name])
