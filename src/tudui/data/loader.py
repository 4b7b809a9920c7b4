"""Batches for training and evaluation.

Two ways to feed a model, chosen by `--loader auto|memory|stream`:
- memory: every image decoded once into one uint8 tensor (N, C, H, W) kept on the training device;
  shuffling, augmentation and normalization are batched tensor operations there.
- stream: a DataLoader decodes each batch from the source (worker processes optional); the decoded
  uint8 batch then goes through the very same batched augmentation and normalization.
Both take their order and randomness from (seed, epoch, batch index) alone, so a run can resume
mid-epoch and replay exactly.
"""
from __future__ import annotations

import os
import random
from typing import Iterator, Optional

import torch
from torch.utils.data import DataLoader, Dataset

from ..console import progress_bar
from ..errors import DataError
from .augment import batch_seed, BatchAugment
from .images import failure_reason, open_image, to_mode
from .preprocess import build_transforms, normalize_batch, stats_tensors
from .splits import ArraySplit, FileSplit, Split


def decode_workers(split: Split, workers: int = 0) -> int:
    """Processes for the one-time decode of a whole split of image files: every core (up to 8) for a big
    split (decoding is CPU-bound and runs before training, so it competes with nothing), none for a small
    one. A user's own Dataset gets only the --workers asked for: it may not survive being forked."""
    n = len(split)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    auto = min(cores, 8) if isinstance(split, FileSplit) and n >= 2000 and cores > 1 else 0
    return max(int(workers), auto)


def decode_all(split: Split, channels: int, size, workers: int = 0, desc: str = "decode") -> tuple:
    """Decode a whole split -> (uint8 tensor (N, C, H, W), kept indices, unreadable: ['<file>: <reason>']).
    `size` (H, W) is required for files: every image is resized to it, so they stack into one tensor."""
    if isinstance(split, ArraySplit):
        fast = split.decode_all(channels, size)
        if fast is not None:
            return fast.contiguous(), list(range(len(split))), []
    n = len(split)
    if n == 0:
        raise DataError("a data split is empty")
    out, kept, bad = None, [], []
    ds = _DecodeDataset(split, channels, size, tolerant=True)
    # workers hand back one stacked tensor per chunk: one shared-memory transfer, not one per image
    dl = DataLoader(ds, batch_size=256, num_workers=workers, collate_fn=_stack_decoded)
    bar = progress_bar(n, desc, n >= 2000, unit="img", leave=False)
    for good, imgs, failed in dl:
        bad += [f"{split.describe(i)}: {reason}" for i, reason in failed]
        if imgs is not None:
            if out is None:
                out = torch.empty((n,) + tuple(imgs.shape[1:]), dtype=torch.uint8)
            out[len(kept):len(kept) + len(good)] = imgs
            kept += good
        bar.update(len(good) + len(failed))
    bar.close()
    if out is None:
        raise DataError(f"no readable images in this split (first: {bad[0] if bad else '?'})")
    return out[:len(kept)].clone() if len(kept) < n else out, kept, bad


def _stack_decoded(items):
    """[(index, image or failure reason)] -> (readable indices, stacked images or None, [(index, reason)])."""
    good = [(i, img) for i, img in items if not isinstance(img, str)]
    failed = [(i, img) for i, img in items if isinstance(img, str)]
    imgs = torch.stack([img for _, img in good]) if good else None
    return [i for i, _ in good], imgs, failed


class _DecodeDataset(Dataset):
    def __init__(self, split: Split, channels: int, size, tolerant: bool = False):
        self.split, self.channels, self.size, self.tolerant = split, channels, size, tolerant

    def __len__(self):
        return len(self.split)

    def __getitem__(self, i):
        if not self.tolerant:
            return self.split.decode(i, self.channels, self.size)
        try:
            return i, self.split.decode(i, self.channels, self.size)
        except Exception as e:  # any failure is that sample's: reported with its reason, never fatal
            return i, failure_reason(e)


class BatchLoader:
    """Iterates (x, y) on `device`: x normalized float (B, C, H, W), y int64 (B,)."""
    def __init__(self, *, targets: torch.Tensor, batch_size: int, pre: dict, device, seed: int = 0,
                 shuffle: bool = False, augment: Optional[BatchAugment] = None, sample_weights=None,
                 channels_last: bool = False, images: Optional[torch.Tensor] = None,
                 split: Optional[Split] = None, workers: int = 0, drop_last: bool = False):
        self.device = torch.device(device)
        self.targets = targets.to(self.device)
        self.n = len(targets)
        self.batch_size = int(batch_size)
        self.seed, self.shuffle, self.augment = seed, shuffle, augment
        self.sample_weights = sample_weights
        self.channels_last = channels_last
        self.pre = pre
        self.mean, self.std = stats_tensors(pre, self.device)
        self.images = images.to(self.device) if images is not None else None
        self.split, self.workers = split, workers
        self.drop_last = drop_last
        self.kind = "memory" if images is not None else "stream"
        self.rank, self.world = 0, 1  # see shard()

    def shard(self, rank: int, world: int) -> None:
        """Make this process one of `world` that share every batch: `batch_size` stays the global batch and
        len() the number of global batches; each iteration yields this rank's contiguous part of a global batch
        (sizes differ by at most one). A training loader drops a last global batch smaller than 2 x world
        (alone: of one image), so every rank trains on at least two images in every step."""
        self.rank, self.world = int(rank), int(world)
        if self.shuffle and 0 < self.n % self.batch_size < 2 * self.world:
            self.drop_last = True

    def local_bounds(self, b: int) -> tuple:
        """(lo, hi): this rank's positions in the epoch's order for global batch b."""
        start = b * self.batch_size
        end = min(self.n, start + self.batch_size)
        if self.world == 1:
            return start, end
        q, r = divmod(end - start, self.world)
        lo = start + self.rank * q + min(self.rank, r)
        return lo, lo + q + (1 if self.rank < r else 0)

    def global_batch_len(self, b: int) -> int:
        """Images in global batch b (over every rank)."""
        return min(self.n, (b + 1) * self.batch_size) - b * self.batch_size

    def aug_seed(self, epoch: int, b: int) -> int:
        """The augmentation seed of this rank's part of batch b (rank 0: the single process's seed)."""
        return (batch_seed(self.seed, epoch, b) + self.rank) % 2 ** 63

    def __len__(self) -> int:
        if self.drop_last:
            return max(1, self.n // self.batch_size)
        return (self.n + self.batch_size - 1) // self.batch_size

    def order(self, epoch: int) -> torch.Tensor:
        if self.sample_weights is not None:
            g = torch.Generator().manual_seed(batch_seed(self.seed, epoch, -1))
            return torch.multinomial(self.sample_weights, self.n, replacement=True, generator=g)
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator().manual_seed(batch_seed(self.seed, epoch, -1))
        return torch.randperm(self.n, generator=g)

    def batch_indices(self, epoch: int) -> list:
        """This rank's dataset indices of every batch of `epoch` (alone: the whole batches)."""
        order = self.order(epoch)
        return [order[slice(*self.local_bounds(b))] for b in range(len(self))]

    def iterate(self, epoch: int = 0, start: int = 0) -> Iterator:
        """Batches of `epoch`, beginning at batch index `start` (for resuming mid-epoch)."""
        if self.images is not None:
            order = self.order(epoch).to(self.device)  # one transfer per epoch, not one per batch
            in_order = not self.shuffle and self.sample_weights is None
            for b in range(start, len(self)):
                lo, hi = self.local_bounds(b)
                if hi <= lo:
                    continue  # an evaluation batch smaller than the number of processes: nothing here
                idx = order[lo:hi]
                # unshuffled (evaluation): a slice is a view, no gather needed
                x = self.images[lo:hi] if in_order else self.images.index_select(0, idx)
                yield self._finish(x, idx, epoch, b)
        else:
            batches = [(b, t) for b, t in enumerate(self.batch_indices(epoch)) if b >= start and len(t)]
            ds = _DecodeDataset(self.split, self.pre["channels"], tuple(self.pre["size"]))
            dl = DataLoader(ds, batch_sampler=[t.tolist() for _, t in batches], num_workers=self.workers,
                            pin_memory=self.device.type == "cuda", persistent_workers=False)
            for (b, t), x in zip(batches, dl):
                yield self._finish(x.to(self.device, non_blocking=True), t.to(self.device), epoch, b)

    def __iter__(self):
        return self.iterate(0)

    def _finish(self, x_u8, idx, epoch, b):
        if self.augment is not None and self.augment.active:
            g = torch.Generator(device=self.device).manual_seed(self.aug_seed(epoch, b))
            x_u8 = self.augment(x_u8, g, epoch=epoch, indices=idx)
        if self.channels_last:  # convert the uint8 batch (4x fewer bytes); normalizing keeps the format
            x_u8 = x_u8.contiguous(memory_format=torch.channels_last)
        return normalize_batch(x_u8, self.mean, self.std), self.targets[idx]


class TransformLoader(BatchLoader):
    """The course's way, kept for explicit `transforms:` in a config: torchvision transforms per image."""
    def __init__(self, *, split: Split, transform_spec: list, channels: int, **kw):
        super().__init__(split=split, **kw)
        self.tf = build_transforms(transform_spec)
        self.channels = channels
        self.kind = "stream (custom transforms)"

    def iterate(self, epoch: int = 0, start: int = 0):
        order = self.order(epoch)
        ids = order.tolist()
        ds = _TransformDataset(self.split, self.tf, self.channels)
        # each image carries its own seed for the random transforms, from (seed, epoch, batch, position in the
        # global batch): what an image gets depends on neither the worker or process that loads it nor where
        # the run (re)started
        plan = []
        for b in range(start, len(self)):
            lo, hi = self.local_bounds(b)
            base = b * self.batch_size
            if hi > lo:
                plan.append((b, order[lo:hi], [(ids[j], (batch_seed(self.seed, epoch, b) * 257 + j - base)
                                                % 2 ** 63) for j in range(lo, hi)]))
        # its own generator: a DataLoader draws its workers' base seed from the global one otherwise
        g = torch.Generator().manual_seed(batch_seed(self.seed, epoch, -2))
        dl = DataLoader(ds, batch_sampler=[p for _, _, p in plan], num_workers=self.workers, generator=g)
        for (b, idx, _), x in zip(plan, dl):
            x = x.to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.targets[idx.to(self.device)]


class _TransformDataset(Dataset):
    def __init__(self, split, tf, channels):
        self.split, self.tf, self.channels = split, tf, channels

    def __len__(self):
        return len(self.split)

    def __getitem__(self, item):
        """`item` is an index, or (index, seed): the random transforms then draw from that seed alone (torch's
        and Python's generators, the ones torchvision's transforms use), and both are restored afterwards."""
        i, seed = item if isinstance(item, tuple) else (item, None)
        img = self._image(i)
        if seed is None:
            out = self.tf(img)
        else:
            py_state = random.getstate()
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.default_generator.manual_seed(seed)  # not torch.manual_seed: that one costs ~0.3 ms
                    random.seed(seed)
                    out = self.tf(img)
            finally:
                random.setstate(py_state)
        if not isinstance(out, torch.Tensor):
            raise DataError("the configured transforms must end with ToTensor")
        return out

    def _image(self, i):
        from PIL import Image  # import-time cost: Pillow, only when images are decoded
        if isinstance(self.split, FileSplit):
            return to_mode(open_image(self.split.paths[i]), self.channels)
        t = self.split.decode(i, self.channels, None)
        return Image.fromarray(t.permute(1, 2, 0).squeeze(-1).numpy())
