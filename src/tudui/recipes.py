"""Named bundles of training options (`--recipe NAME`). A recipe only sets config keys;
every technique it uses is a general option that any dataset can use on its own."""
from __future__ import annotations

from .errors import ConfigError

RECIPES: dict[str, dict] = {
    # The course's own loop: its network as written (no activations), ToTensor only,
    # plain SGD lr 0.01, batch 64, 10 epochs, no schedule.
    "course": dict(model="tudui", augment="none", mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0],
                   optimizer="sgd", lr=0.01, momentum=0.0, weight_decay=0.0, batch_size=64,
                   epochs=10, scheduler="none", model_args={"activation": "none"}),
}


def get_recipe(name: str) -> dict:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe '{name}'; choose one of: {', '.join(sorted(RECIPES))}")
    return dict(RECIPES[name])
