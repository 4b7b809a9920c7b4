"""The check every export passes before it is reported done: the exported file, loaded back by its runtime,
against PyTorch eager on the same inputs at several batch sizes."""
from __future__ import annotations

import torch

from ..data.preprocess import normalize_batch, stats_tensors
from ..errors import first_line
from .common import ExportError

BATCH_SIZES = (1, 2, 7)


def sample_inputs(pre: dict, n: int = 64, seed: int = 0) -> torch.Tensor:
    """n random images (uniform 0-255 pixels) normalized with the model's mean/std: inputs in the range the
    model sees in use."""
    g = torch.Generator().manual_seed(seed)
    c, (h, w) = int(pre["channels"]), pre["size"]
    x = torch.randint(0, 256, (n, c, int(h), int(w)), generator=g, dtype=torch.uint8)
    return normalize_batch(x, *stats_tensors(pre, "cpu"))


def compare(reference, candidate, inputs: torch.Tensor, rtol: float, atol: float, what: str,
            batch_sizes=BATCH_SIZES) -> dict:
    """Run both on every input at each batch size; raise ExportError (one line, the largest difference) unless
    allclose(rtol, atol) holds and the top-1 class agrees on every input. A top-1 disagreement between two
    classes whose reference logits are themselves within the tolerance is a tie, counted but not an error."""
    worst_abs, worst_ratio, mismatches, ties = 0.0, 0.0, 0, 0
    abs_batch = None
    for b in batch_sizes:
        for i in range(0, len(inputs), b):
            x = inputs[i:i + b]
            try:
                with torch.no_grad():
                    ref = reference(x).float()
            except Exception as e:  # noqa: BLE001 - the model's own code cannot take this batch size
                msg = first_line(e)
                raise ExportError(f"the PyTorch model itself fails at batch size {len(x)} ({msg}); an exported "
                                  "model has a dynamic batch axis: replace code that fixes the batch size (e.g. "
                                  "x.view(2, -1)) with x.flatten(1) or x.view(x.size(0), -1); no file kept") from None
            try:
                with torch.no_grad():
                    got = candidate(x).float()
            except Exception as e:  # the runtime refusing a batch size is a failed check, not a crash
                msg = first_line(e)
                raise ExportError(f"the exported {what} fails at batch size {len(x)} ({msg}); a model whose "
                                  "code fixes the batch size (e.g. x.view(2, -1)) cannot take other batch sizes: "
                                  "use x.flatten(1) or x.view(x.size(0), -1); no file kept") from None
            if got.shape != ref.shape:
                raise ExportError(f"the exported {what} returns shape {tuple(got.shape)} where PyTorch returns "
                                  f"{tuple(ref.shape)} at batch size {len(x)}; no file kept")
            diff = (got - ref).abs()
            allowed = atol + rtol * ref.abs()
            ratio = float((diff / allowed).max())
            if float(diff.max()) >= worst_abs:
                worst_abs, abs_batch = float(diff.max()), len(x)
            worst_ratio = max(worst_ratio, ratio)
            r1, g1 = ref.argmax(1), got.argmax(1)
            for row in (r1 != g1).nonzero().flatten().tolist():
                a, c = ref[row, r1[row]], ref[row, g1[row]]
                if float(a - c) <= float(atol + rtol * a.abs()):
                    ties += 1
                else:
                    mismatches += 1
    if worst_ratio > 1.0 or mismatches:
        top1 = f"; the top-1 class differs on {mismatches} of {len(inputs) * len(batch_sizes)} answers" \
            if mismatches else ""
        raise ExportError(f"the exported {what} differs from PyTorch: largest difference {worst_abs:.3g} (at batch "
                          f"size {abs_batch}; allowed rtol={rtol:g}, atol={atol:g}){top1}; no file kept")
    return {"checked_inputs": len(inputs), "batch_sizes": list(batch_sizes), "max_abs_diff": worst_abs,
            "rtol": rtol, "atol": atol, "top1_ties": ties}
