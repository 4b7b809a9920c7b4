from __future__ import annotations

from .common import print_json


def add_parser(sub, name):
    p = sub.add_parser(name, help="show Python, torch and torchvision versions, CUDA/MPS and the auto device",
                       description="What the course's first lesson checks by hand (torch.cuda.is_available() ...).")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args):
    from .. import env_info  # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    info = env_info()
    if args.json:
        print_json(info)
        return 0
    rows = [("python", info["python"]), ("platform", info["platform"]), ("torch", info["torch"]),
            ("torchvision", info["torchvision"]),
            ("cuda available", f"{info['cuda_available']}" + (f" (CUDA {info['cuda_version']})" if info["cuda_available"] else "")),
            ("gpus", ", ".join(info["gpus"]) or "none"), ("mps available", info["mps_available"]),
            ("cpu threads", info["cpu_threads"]), ("--device auto picks", info["auto_device"]),
            ("distributed", ", ".join(info["distributed_backends"]) or "not available in this torch build")]
    for k, v in rows:
        print(f"{k:<20} {v}")
    return 0
