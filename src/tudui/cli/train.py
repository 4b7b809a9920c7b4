"""`tudui train`: every config key is a flag (generated from TrainConfig, so the two never drift)."""
from __future__ import annotations

import argparse
import os
import shlex
import sys

from ..config import _base_type, config_fields, field_types


def add_config_flags(p: argparse.ArgumentParser, skip=()) -> None:
    types = field_types()
    for f in config_fields():
        if f.name in skip:
            continue
        flag = "--" + f.metadata.get("flag", f.name.replace("_", "-"))
        base = _base_type(types[f.name])
        helptext = f.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
        if f.name == "model_args":
            p.add_argument(flag, dest="model_args", action="append", metavar="KEY=VALUE", default=None, help=helptext)
        elif base is bool:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                           help=f"{helptext} (default: {f.default})")
        elif f.name == "transforms":
            continue  # config files only
        else:
            choices = f.metadata.get("choices")
            shown = f.default if not callable(getattr(f, "default_factory", None)) else "{}"
            p.add_argument(flag, dest=f.name, default=None, choices=choices,
                           metavar=None if choices else f.name.upper(), help=f"{helptext} (default: {shown})")


def parse_model_args(items) -> dict:
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..config import safe_yaml
    from ..errors import ConfigError
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--model-arg needs KEY=VALUE, got '{item}'")
        k, v = item.split("=", 1)
        out[k.strip()] = safe_yaml(v, f"--model-arg {k.strip()}") if v.strip() else v
    return out


def collect_overrides(args) -> dict:
    over = {}
    for f in config_fields():
        v = getattr(args, f.name, None)
        if v is None:
            continue
        if f.name == "model_args":
            v = parse_model_args(v)
        over[f.name] = v
    return over


def add_parser(sub, name):
    p = sub.add_parser(name, help="train a classifier (no arguments: the course's network on the digits set)",
                       description="Train a classifier. Every option can also be set in a YAML file (--config) "
                                   "under the flag's name with '-' turned into '_'; flags override the file.")
    p.add_argument("--config", default=None, help="YAML file of options (flat keys as the long flags)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--resume", default=None, metavar="CKPT",
                   help="continue a run exactly from its last.pt (or run folder), to its original end; "
                        "with a larger --epochs, extend it")
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    from .common import add_load_flags
    add_load_flags(p)  # for --resume
    add_config_flags(p)
    return p

  # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
def run(args):
    from ..config import dump_yaml, resolve, resolve_resume
    overrides = collect_overrides(args)
    if args.print_config:
        if args.resume:
            from ..api import load_resume
            ck = load_resume(args.resume, verify=args.verify, unsafe_load=args.unsafe_load)
            cfg = resolve_resume(ck["config"], overrides, config_file=args.config)
        else:
            cfg = resolve(overrides, config_file=args.config)
        # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
        sys.stdout.write(dump_yaml(cfg))
        return 0
    from ..api import PeerFailed, TrainingInterrupted, train
    from ..console import rank
    from ..errors import CheckpointError, ConfigError, DataError
    try:  # --report: api.train writes it when the run ends, also when it is interrupted
        result = train(config=args.config, progress=args.progress, resume=args.resume, verify=args.verify,
                       unsafe_load=args.unsafe_load, **overrides)
    except TrainingInterrupted as e:  # the trainer already said where it saved and how to resume
        return e.exit_code
    except PeerFailed as e:  # the failing process shows its own error; this one says why it stops, in one line
        print(f"tudui train: {e}", file=sys.stderr)
        return 1
    except (ConfigError, DataError, CheckpointError):
        if rank() > 0:  # every process meets the same mistake in the same input: rank 0 says it
            return 2
        raise
    if rank() > 0:
        return 0
    final = result.final
    out = os.path.dirname(result.run_dir)
    print(f"run folder: {result.run_dir}", file=sys.stderr)
    if final.get("val_acc") is not None:
        best = result.best
        print(f"final val_acc {final['val_acc']:.4f};  best.pt: val_acc {best['val_acc']:.4f} (epoch {best['epoch']}) "
              f"{result.best_path}", file=sys.stderr)
    print(f"see it:     tensorboard --logdir {shlex.quote(os.path.abspath(out))}   (or: tudui board {shlex.quote(out)})",
          file=sys.stderr)
    print(f"try it:     tudui predict {shlex.quote(result.best_path)} IMAGE...", file=sys.stderr)
    for line in getattr(result, "advice", []):  # e.g. below 80% on photos: fine-tune a pretrained model
        print(line, file=sys.stderr)
    return 0
