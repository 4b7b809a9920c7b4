"""CIFAR-10 speed benchmark: run `tudui train --recipe R` end to end for N seeds, then `tudui eval --json` on each
run's last.pt, and print one JSON object with per-seed accuracy and seconds, their mean, and the machine.

Seconds are the wall time of the `tudui train` command, from its start to its exit: loading the decoded-data
cache, the data-dependent init, training, and the final evaluation with the recipe's test-time augmentation.
The cache is built (or found) before the clock starts. The accuracy is what `tudui eval --json` reports for
last.pt, which applies the recipe's TTA itself.

    python benchmarks/cifar_speed.py --data ~/.cache/tudui/cifar10-jpeg --seeds 3 \\
        --save benchmarks/results/cifar_speed.json
    python benchmarks/cifar_speed.py --recipe course --seeds 1          # the course's own recipe
    python benchmarks/cifar_speed.py --device cuda --seeds 3            # on a GPU
Any further arguments go to `tudui train` unchanged (e.g. --epochs 6).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _report import emit, machine  # benchmarks/_report.py, beside this script


def warm_cache(recipe: str, data: str, extra: list) -> dict:
    """Decode the data into tudui's cache (if it is not there yet) before any clock starts, with the same
    options the timed runs get. Returns the resolved training config (seed aside)."""
    from tudui.cli.train import add_parser, collect_overrides
    from tudui.config import resolve
    from tudui.data import load_source
    from tudui.data.pipeline import prepare

    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(), "train")
    cfg = resolve(collect_overrides(p.parse_args(["train", "--recipe", recipe, "--data", data, *extra])))
    source = load_source(cfg.data, data_dir=cfg.data_dir, seed=cfg.seed, val_split=cfg.val_split)
    prepare(source, cfg, "cpu")
    return {k: v for k, v in cfg.to_dict().items() if k not in ("seed", "out", "name")}


def earlier_runs(path, config: dict, recipe: str, device: str = "cpu") -> list:
    """The runs of an earlier result (--include) of the same resolved config on the same device, or []."""
    if not path:
        return []
    with open(path) as fh:
        earlier = json.load(fh)
    if earlier.get("config") != config or earlier["machine"]["device"] != device:
        sys.exit(f"{path} measured another configuration or device than this run would "
                 f"(compare its 'config' with `tudui train --recipe {recipe} --print-config`)")
    return list(earlier["runs"])


def run_seed(recipe: str, data: str, seed: int, device: str, out: str, extra: list) -> dict:
    name = f"seed{seed}"
    cmd = [sys.executable, "-m", "tudui", "train", "--recipe", recipe, "--data", data, "--seed", str(seed),
           "--device", device, "--out", out, "--name", name, "--no-progress", *extra]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    load1 = os.getloadavg()[0]
    last = os.path.join(out, name, "last.pt")
    ev = subprocess.run([sys.executable, "-m", "tudui", "eval", last, "--json", "--device", device],
                        check=True, capture_output=True, text=True)
    acc = json.loads(ev.stdout)["accuracy"]
    with open(os.path.join(out, name, "metrics.jsonl")) as fh:
        rows = [json.loads(ln) for ln in fh if ln.strip()]
    final = next((r for r in reversed(rows) if r.get("val_acc") is not None), {})
    return {"seed": seed, "accuracy": acc, "seconds": round(seconds, 1), "train_val_acc": final.get("val_acc"),
            "epochs": len(rows), "loadavg_1min_start_end": [round(load0, 2), round(load1, 2)]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="cifar10-speed")
    ap.add_argument("--data", default=os.path.expanduser("~/.cache/tudui/cifar10-jpeg"),
                    help="the extracted CIFAR-10 JPEG folder (train/ and test/ of class folders)")
    ap.add_argument("--seeds", type=int, default=3, help="run N seeds: --first-seed .. --first-seed + N - 1")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--include", default=None, metavar="JSON",
                    help="an earlier result of this script whose runs count too (its resolved config and device must "
                         "be this run's), so seeds measured one at a time add up to one mean")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="parent folder of the runs (default: a temporary folder)")
    ap.add_argument("--save", default=None, help="also write the JSON to this file")
    ap.add_argument("--note", default="", help="free text stored with the result (e.g. how loaded the machine was)")
    args, extra = ap.parse_known_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="tudui-speed-")
    config = warm_cache(args.recipe, args.data, extra)
    runs = earlier_runs(args.include, config, args.recipe, args.device)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        if any(r["seed"] == seed for r in runs):
            sys.exit(f"seed {seed} is already in {args.include}")
        runs.append(run_seed(args.recipe, args.data, seed, args.device, out, extra))
        print(f"seed {seed}: accuracy {runs[-1]['accuracy']:.4f} in {runs[-1]['seconds']:.0f} s", file=sys.stderr)
    n = len(runs)
    result = {"recipe": args.recipe, "data": args.data, "extra_args": extra, "config": config, "note": args.note,
              "runs": runs, "mean_accuracy": round(sum(r["accuracy"] for r in runs) / n, 5),
              "mean_seconds": round(sum(r["seconds"] for r in runs) / n, 1),
              "machine": machine(args.device), "runs_folder": out,
              "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    emit(result, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
