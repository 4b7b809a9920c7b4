"""How the model runs on its device, decided once per run: mixed precision, channels_last, torch.compile,
and the data sample a model's data-dependent initialization sees; the CPU threads on the cores left free."""
from __future__ import annotations

from typing import Optional

import torch

from ..console import say
from ..threads import ThreadGovernor
from ..data.preprocess import normalize_batch
from ..errors import TuduiError, first_line
from . import hooks


def _cpu_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_channels_last(cfg, model_spec: dict, device: torch.device) -> bool:
    """--channels-last / --no-channels-last, or by default: on for models built by name (tudui's, torchvision's,
    timm's) on a CPU for RGB images of 32 px or more, where oneDNN's convolutions are faster in that layout;
    off for a user's own module, which may reshape with .view() and need NCHW-contiguous tensors."""
    if cfg.channels_last is not None:
        return bool(cfg.channels_last)
    name = str(model_spec.get("name", ""))
    own = model_spec.get("user_module") or (":" in name and not name.startswith("timm:"))
    # tiny or single-channel inputs (digits: 1x8x8) ran several times slower per step in channels_last
    size = model_spec.get("img_size") or [0, 0]
    big_enough = model_spec.get("in_channels", 3) >= 3 and min(size) >= 32
    return device.type == "cpu" and not own and big_enough


def amp_dtype(kind: str, device: torch.device) -> Optional[torch.dtype]:
    """--amp bf16|fp16 -> autocast dtype, or None (fp32) with a notice where the device can't do it."""
    if kind == "none":
        return None
    dtype = torch.bfloat16 if kind == "bf16" else torch.float16
    if device.type == "cuda" and (kind == "fp16" or torch.cuda.is_bf16_supported()):
        return dtype
    if device.type == "cpu" and kind == "bf16" and _cpu_bf16():
        return dtype
    say(f"notice: --amp {kind} is not supported on this {device.type} device; training in fp32")
    return None


def compile_model(model):
    """torch.compile(model), or the model itself (with a notice) where compiling is not available."""
    try:
        return torch.compile(model)
    except Exception as e:
        say(f"notice: torch.compile is not available here ({first_line(e)}); training without it")
        return model


def data_init_sample(loader, n: int = 5000, seed: int = 0) -> torch.Tensor:
    """Up to n training images, un-augmented and normalized, for a model's `init_from_data`: taken from the
    in-memory tensor, or decoded from the split on the stream path."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(loader.n, generator=g)[:n]
    if loader.images is not None:
        x = loader.images[idx.to(loader.images.device)]
    else:
        pre = loader.pre
        x = torch.stack([loader.split.decode(int(i), pre["channels"], tuple(pre["size"])) for i in idx])
        x = x.to(loader.device)
    return normalize_batch(x, loader.mean, loader.std)


def nonfinite_loss(value: float, epoch: int, step: int) -> TuduiError:
    return TuduiError(f"the loss became {value} at epoch {epoch + 1}, step {step + 1}; lower --lr, or add --clip-grad; "
                      "best.pt and the previous last.pt are intact")


class LossSum:
    """An epoch's running sum of loss x images, and the check that every loss is finite.

    On a CPU (lazy=False) each loss is read as a Python float and checked at once, as always. On a GPU
    (lazy=True) the sum and the first non-finite loss stay on the device, so a training step never waits for
    the GPU to finish; `total()` reads them (and raises for a non-finite loss) only where the run needs the
    value: before a checkpoint is written and at the end of the epoch. The sums are the same float64 operations
    in the same order either way."""
    def __init__(self, device: torch.device, lazy: bool):
        self.device, self.lazy = device, lazy
        self.value = 0.0
        self._bad = None  # on the device: (epoch, step, loss) of the first non-finite loss, or -1s

    def start(self, value: float) -> None:
        if self.lazy:
            self.value = torch.tensor(float(value), dtype=torch.float64, device=self.device)
            self._bad = torch.full((3,), -1.0, dtype=torch.float64, device=self.device)
        else:
            self.value = float(value)

    def check_step(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        """Before the backward pass of (epoch, step)."""
        if not self.lazy:
            if not torch.isfinite(loss):
                raise nonfinite_loss(float(loss.detach()), epoch, step)
            return
        v = loss.detach().double()
        zero = torch.zeros_like(v)
        first = ~torch.isfinite(v) & (self._bad[0] < 0)
        self._bad = torch.where(first, torch.stack([zero + epoch, zero + step, v]), self._bad)

    def add(self, loss, n: int) -> None:
        if self.lazy:
            self.value += loss.detach().double() * n
        else:
            self.value += float(loss) * n

    def total(self) -> float:
        if self.lazy and self._bad is not None:
            epoch, step, value = self._bad.tolist()
            if epoch >= 0:
                raise nonfinite_loss(value, int(epoch), int(step))
        return float(self.value)


class FreeCoreThreads(hooks.Callback):
    """torch's threads on the cores other programs leave free, measured per epoch (threads.ThreadGovernor):
    with one of two cores busy elsewhere, one thread beats two that wait for each other. The Trainer adds it when
    --threads is not given, on the CPU, in a single process with no loader worker processes (their CPU time
    would read as another program's)."""

    def __init__(self):
        self.governor: Optional[ThreadGovernor] = None

    def on_fit_start(self, trainer) -> None:
        self.governor = ThreadGovernor(torch.set_num_threads, torch.get_num_threads(), say=say)
        self.governor.epoch_started()

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        self.governor.epoch_ended()
        self.governor.epoch_started()  # the next epoch starts now

    def on_fit_end(self, trainer, status: str) -> None:
        if self.governor is not None and self.governor.threads != self.governor.full:
            torch.set_num_threads(self.governor.full)  # the caller's process gets its threads back

    @staticmethod
    def applies(cfg, device: torch.device, distributed: bool) -> bool:
        return not cfg.threads and device.type == "cpu" and not distributed and not cfg.workers
