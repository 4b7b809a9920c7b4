"""Micro-batching: requests that arrive within a few milliseconds of each other run through the model as
one batch (up to `max_batch` images), in ONE worker thread, so the event loop never waits on the model.

    batcher = MicroBatcher(model.predict_images, max_batch=32, wait_ms=5)
    topk_lists = await batcher.predict([img1, img2], topk=3)

A batch waits (up to wait_ms) only while another request is on its way: the app wraps each request's
reading and decoding in `batcher.arriving()`, so a lone client is answered without any wait, and under load
a batch waits for the requests still being decoded. max_batch=1 turns batching off (one request's images
at a time, in chunks of one). With wait_ms=0 a batch takes what is already queued and never waits. A request larger than max_batch runs alone, in
chunks of max_batch. When a batch fails, each of its requests is retried alone, so one bad request cannot
fail the others.
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


@dataclass
class _Job:
    images: list
    topk: int
    future: asyncio.Future


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    largest: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, n: int) -> None:
        with self.lock:
            self.batches += 1
            self.images += n
            self.largest = max(self.largest, n)

    def as_dict(self) -> dict:
        return {"batches": self.batches, "images": self.images, "largest_batch": self.largest}


class MicroBatcher:
    def __init__(self, predict_fn, max_batch: int = 32, wait_ms: float = 5.0):
        if int(max_batch) < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if float(wait_ms) < 0:
            raise ValueError(f"wait_ms must be 0 or more, got {wait_ms}")
        self.predict_fn = predict_fn
        self.max_batch = int(max_batch)
        self.wait = float(wait_ms) / 1000.0
        self.stats = BatchStats()
        self._executor = None  # one model thread, made on first use (again after close())
        self._loop = None
        self._queue = None
        self._task = None
        self._arriving = 0  # requests being read and decoded, that will call predict() soon

    @contextlib.contextmanager
    def arriving(self):
        """Wrap a request's reading and decoding: while any is inside, a batch waits for it."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, or a new event loop (test clients make one per session)
            self._loop = loop
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tudui-model")
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._worker(self._queue))

    async def predict(self, images: list, topk: int) -> list:
        """-> one top-k list per image, computed in a batch with whatever else arrived meanwhile."""
        if not images:
            return []
        self._ensure_started()
        fut = self._loop.create_future()
        await self._queue.put(_Job(list(images), int(topk), fut))
        return await fut

    async def close(self) -> None:
        if self._task is not None and self._loop is asyncio.get_running_loop():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._task = self._loop = self._queue = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _collect(self, queue, first: _Job, held: list) -> list:
        """The first job plus what arrives within the wait window, up to max_batch images. A job that would
        overflow the batch is held for the next one."""
        jobs, n = [first], len(first.images)
        deadline = self._loop.time() + self.wait
        while n < self.max_batch:
            try:
                job = queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - self._loop.time()
                if remaining <= 0 or self._arriving <= 0:
                    break
                try:
                    job = await asyncio.wait_for(queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            if n + len(job.images) > self.max_batch:
                held.append(job)
                break
            jobs.append(job)
            n += len(job.images)
        return jobs

    async def _worker(self, queue) -> None:
        held: list = []
        while True:
            first = held.pop(0) if held else await queue.get()
            jobs = await self._collect(queue, first, held) if not first.future.done() else [first]
            jobs = [j for j in jobs if not j.future.done()]  # a client that went away
            if not jobs:
                continue
            outcomes = await self._loop.run_in_executor(self._executor, self._run, jobs)
            for job, outcome in zip(jobs, outcomes):
                if job.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    # --- in the model thread ---
    def _predict(self, images: list, topk: int) -> list:
        out = []
        for i in range(0, len(images), self.max_batch):
            chunk = images[i:i + self.max_batch]
            out += self.predict_fn(chunk, topk)
            self.stats.add(len(chunk))
        return out

    def _run(self, jobs: list) -> list:
        k = max(j.topk for j in jobs)
        try:
            preds = self._predict([im for j in jobs for im in j.images], k)
        except Exception as e:
            if len(jobs) == 1:
                return [e]
            return [self._run([j])[0] for j in jobs]
        outcomes, pos = [], 0
        for j in jobs:
            outcomes.append([p[:j.topk] for p in preds[pos:pos + len(j.images)]])
            pos += len(j.images)
        return outcomes
