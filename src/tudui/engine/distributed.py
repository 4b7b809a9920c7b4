"""Data-parallel training under `torchrun`, with PyTorch's own distributed package.

torchrun starts one process per device and tells each who it is in the environment (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT). `setup()` reads that, picks the device (cuda:LOCAL_RANK on GPUs)
and joins the process group: gloo on CPUs, NCCL on CUDA, with a timeout on every collective so a lost peer
ends the job instead of hanging it. Without those variables (or with WORLD_SIZE=1) everything here is a
no-op and training is the single process it always was.

The rules the trainer follows with a `Dist`:
- `--batch-size` is the global batch; each rank trains on its contiguous share of every global batch of
  one seeded permutation per epoch (`BatchLoader.shard`), so N processes x B/N see what 1 x B sees.
- DistributedDataParallel averages gradients; the loss of a rank is weighted by its share of the global
  batch, so uneven last batches still give the global batch's mean gradient.
- rank 0 alone prints, writes the run folder and checkpoints (of the bare module: no `module.` prefix);
  every rank takes part in the collectives that gather what a checkpoint needs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import torch

from ..errors import ConfigError

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class Dist:
    """Where this process stands: rank `rank` of `world` (local rank on its machine), and the backend."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str = ""
    owned: bool = False  # this process group was created here (and is destroyed by `close`)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    # ---- collectives (no-ops alone) ----
    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """Sum `t` over every rank, in place."""
        if self.enabled:
            import torch.distributed as dist  # import-time cost: torch.distributed, only under torchrun
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def max_int(self, value: int, device) -> int:
        """The largest `value` over every rank."""
        if not self.enabled:
            return int(value)
        import torch.distributed as dist  # import-time cost: torch.distributed, only under torchrun
        t = torch.tensor([int(value)], dtype=torch.int64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def gather(self, obj) -> list:
        """[obj of rank 0, obj of rank 1, ...] on every rank (picklable values)."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist  # import-time cost: torch.distributed, only under torchrun
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        import torch.distributed as dist  # import-time cost: torch.distributed, only under torchrun
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self, wait: bool = True) -> None:
        """Destroy the process group made here. wait: first meet every rank (rank 0 may still be writing its
        end-of-run summary; a rank that tears gloo down while a peer still uses it can abort at exit)."""
        if self.owned:
            import torch.distributed as dist  # import-time cost: torch.distributed, only under torchrun
            if dist.is_initialized():
                if wait:
                    try:
                        dist.barrier()
                    except Exception:  # a peer already gone: nothing left to wait for
                        pass
                dist.destroy_process_group()
            self.owned = False


def backends() -> dict:
    """The distributed backends this torch build offers ({name: available})."""
    import torch.distributed as dist  # import-time cost: torch.distributed, only under torchrun
    if not dist.is_available():
        return {}
    return {"gloo": dist.is_gloo_available(), "nccl": dist.is_nccl_available(), "mpi": dist.is_mpi_available(),
            "ucc": bool(getattr(dist, "is_ucc_available", lambda: False)())}


def launched() -> bool:
    """Whether torchrun (or another launcher setting its variables) started this process with peers."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def from_env() -> Dist:
    """The Dist of an already initialized process group, of torchrun's variables, or a single process."""
    import torch.distributed as dist  # import-time cost: torch.distributed, only under torchrun
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())),
                    dist.get_backend())
    if not launched():
        return Dist()
    missing = [k for k in ENV_KEYS if k not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but {', '.join(missing)} not set; start "
                          "several processes with torchrun (torchrun --nproc-per-node=2 -m tudui train ...)")
    return Dist(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))


def setup(cfg, device: torch.device) -> tuple:
    """-> (Dist, this rank's device). Joins the process group when started by torchrun; checks that the
    global batch splits evenly and that --sync-bn has the GPUs it needs."""
    if cfg.sync_bn and device.type != "cuda":
        raise ConfigError("--sync-bn needs CUDA GPUs (SyncBatchNorm has no CPU implementation); drop it on a CPU")
    d = from_env()
    if not d.enabled:
        return d, device
    if device.type == "mps":
        raise ConfigError("torchrun with --device mps: no distributed backend runs on MPS; use --device cpu")
    if cfg.batch_size % d.world:
        raise ConfigError(f"--batch-size {cfg.batch_size} is the global batch and must split evenly over "
                          f"{d.world} processes; use a multiple of {d.world}")
    if device.type == "cuda":
        n = torch.cuda.device_count()
        if d.local_rank >= n:
            raise ConfigError(f"local rank {d.local_rank} has no GPU of its own (this machine has {n}); "
                              f"start at most {n} processes per machine (--nproc-per-node={n})")
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    import torch.distributed as dist  # import-time cost: torch.distributed, only under torchrun
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kw = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, timeout=timedelta(seconds=float(cfg.dist_timeout)), **kw)
        d.backend, d.owned = backend, True
    else:
        d.backend = dist.get_backend()
    return d, device


def wrap(model: torch.nn.Module, d: Dist, device: torch.device) -> torch.nn.Module:
    """The module the training step calls: DistributedDataParallel around `model` (which stays the module
    that is saved, evaluated and averaged), or `model` itself alone."""
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP  # import-time cost: DDP, only under torchrun
    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids, output_device=device.index if ids else None)


def convert_sync_bn(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """BatchNorm layers normalizing over the global batch (before any copy of the model is taken)."""
    if not d.enabled:
        return model
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def launcher_prefix(d: Dist) -> str:
    """How the resume command starts: '' alone, 'torchrun --nproc-per-node=N -m ' on one machine."""
    if not d.enabled:
        return ""
    local = os.environ.get("LOCAL_WORLD_SIZE")
    if local and int(local) == d.world:
        return f"torchrun --nproc-per-node={local} -m "
    return "torchrun <the same options> -m "


def peer_failure(e: BaseException) -> Optional[str]:
    """A one-line reason when `e` is what a collective raises because another process failed or hung."""
    import torch.distributed as dist  # import-time cost: torch.distributed, only under torchrun
    errors = tuple(t for t in (getattr(dist, "DistError", None), getattr(dist, "DistBackendError", None)) if t)
    text = str(e)
    if isinstance(e, errors) or (isinstance(e, RuntimeError) and any(
            s in text for s in ("Connection closed by peer", "Connection reset by peer", "Timed out waiting",
                                "NCCL communicator was aborted", "Broken pipe", "ProcessGroupGloo"))):
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        return first[:200]
    return None
