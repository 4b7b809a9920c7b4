"""--device resolution: auto, cpu, cuda, cuda:N, mps (the facts of `tudui env` are in tudui.env)."""
from __future__ import annotations

import platform
import sys

import torch

from .errors import TuduiError


def resolve_device(spec: str = "auto") -> torch.device:
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TuduiError(f"--device {spec} asked for CUDA, but this machine has no usable CUDA GPU "
                             "(torch.cuda.is_available() is False); use --device cpu or auto")
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TuduiError(f"--device {spec}: there are only {torch.cuda.device_count()} CUDA devices "
                             f"(0..{torch.cuda.device_count() - 1})")
        return dev
    if spec == "mps":
        if not mps_available():
            raise TuduiError("--device mps asked for Apple's MPS, which is not available here; use --device cpu or auto")
        return torch.device("mps")
    raise TuduiError(f"unknown device '{spec}'; use auto, cpu, cuda, cuda:N or mps")


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux; what the platform module knows elsewhere)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        return names[0] if names else cpu
    except OSError:
        return cpu


def cpu_flags() -> list:
    """The CPU's feature flags (Linux: /proc/cpuinfo 'flags', or 'Features' on ARM; macOS arm64: the FEAT_*
    names sysctl reports as present); [] where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as fh:
            for ln in fh:
                if ln.startswith(("flags", "Features")):
                    return ln.split(":", 1)[1].split()
        return []
    except OSError:
        pass
    if sys.platform == "darwin" and platform.machine() == "arm64":
        import subprocess
        try:
            out = subprocess.run(["sysctl", "hw.optional.arm"], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        return [ln.split(":")[0].rsplit(".", 1)[-1] for ln in out.splitlines() if ln.strip().endswith(": 1")]
    return []


def native_bf16_cpu() -> list:
    """The CPU features that make bf16 native here (avx512_bf16, amx_bf16; ARM: bf16 / FEAT_BF16), or [] where
    bf16 would be emulated."""
    flags = set(cpu_flags())
    return [f for f in ("avx512_bf16", "amx_bf16", "bf16", "FEAT_BF16") if f in flags]


def auto_amp(device: torch.device) -> tuple:
    """--amp auto on this device -> ('bf16' | 'none', why): bf16 where the hardware computes it natively (a CUDA
    GPU with bf16 support, a CPU with AVX512-BF16, AMX or ARM BF16), float32 elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return "bf16", f"{torch.cuda.get_device_name(device)} supports bf16"
        return "none", f"{torch.cuda.get_device_name(device)} has no native bf16"
    if device.type == "cpu":
        flags = native_bf16_cpu()
        if flags:
            return "bf16", f"the CPU has {', '.join(flags)}"
        return "none", "the CPU has no native bf16 (no avx512_bf16, amx_bf16 or ARM bf16)"
    return "none", f"bf16 autocast is not used on {device.type}"


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())
