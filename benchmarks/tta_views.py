"""Which test-time views pay for their time: a checkpoint's logits for the image, its mirror and both under
every 1-pixel shift (reflect padding), on the data `tudui eval` uses, then the top-1 accuracy of view sets
from one view to all 18, as JSON. Each view costs one more forward pass over the split.

    python benchmarks/tta_views.py runs/seed0/last.pt runs/seed1/last.pt
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import tudui
from _report import emit  # benchmarks/_report.py, beside this script
from tudui.config import from_checkpoint_dict
from tudui.data import load_source
from tudui.data.pipeline import prepare

SHIFTS = {"none": [(0, 0)], "diagonal": [(1, 1), (-1, -1)], "anti-diagonal": [(1, -1), (-1, 1)],
          "axis": [(1, 0), (-1, 0), (0, 1), (0, -1)]}


def view_logits(checkpoint: str) -> tuple:
    """{(dy, dx, mirrored): logits} over the checkpoint's held-out split, and the labels."""
    clf = tudui.load(checkpoint)
    cfg = from_checkpoint_dict(clf.meta.get("config", {}))
    source = load_source(cfg.data, data_dir=cfg.data_dir, seed=cfg.seed, val_split=cfg.val_split)
    source.channels = clf.preprocess["channels"]
    val = prepare(source, cfg, clf.device, pre=clf.preprocess, train=False, eval_split="val").val
    model = clf.model.eval()
    logits, labels = {}, []
    with torch.no_grad():
        for x, y in val.iterate():
            labels.append(y)
            H, W = x.shape[-2:]
            xp = F.pad(x, (1, 1, 1, 1), mode="reflect")
            for dy, dx in [s for group in SHIFTS.values() for s in group]:
                v = xp[..., 1 + dy:1 + dy + H, 1 + dx:1 + dx + W]
                for mirrored in (False, True):
                    u = (v.flip(-1) if mirrored else v).contiguous(memory_format=torch.channels_last)
                    logits.setdefault((dy, dx, mirrored), []).append(model(u))
    return {k: torch.cat(v) for k, v in logits.items()}, torch.cat(labels)


def view_sets(logits: dict) -> dict:
    """name -> summed logits. 'level2' is tudui's --tta (airbench's level 2): the unshifted pair weighs half,
    the diagonal pairs share the other half; the others add shifts with the same split or weigh all equally."""
    pair = lambda s: logits[s + (False,)] + logits[s + (True,)]
    out = {"1 view": logits[(0, 0, False)], "mirror (2)": pair((0, 0))}
    for name, groups in (("level2 (6)", ["diagonal"]), ("diagonals (10)", ["diagonal", "anti-diagonal"]),
                         ("all shifts (18)", ["diagonal", "anti-diagonal", "axis"])):
        shifts = [s for g in groups for s in SHIFTS[g]]
        out[name] = 0.25 * pair((0, 0)) + (0.25 / len(shifts)) * sum(pair(s) for s in shifts)
        if name != "level2 (6)":
            out[name.replace(" (", ", equal weights (")] = pair((0, 0)) + sum(pair(s) for s in shifts)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--save", help="also write the JSON to this file")
    args = ap.parse_args(argv)
    rows = {}
    for ck in args.checkpoints:
        t0 = time.perf_counter()
        logits, y = view_logits(ck)
        acc = {name: round(100 * float((z.argmax(1) == y).float().mean()), 2) for name, z in view_sets(logits).items()}
        rows[ck] = {"top1_percent": acc, "seconds_for_18_views": round(time.perf_counter() - t0, 1)}
    names = next(iter(rows.values()))["top1_percent"]
    mean = {n: round(sum(r["top1_percent"][n] for r in rows.values()) / len(rows), 2) for n in names}
    emit({"checkpoints": rows, "mean_top1_percent": mean, "threads": torch.get_num_threads()}, args.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
