"""Predict on many files: walk folders lazily, decode in parallel (ordered), run the model in batches, and
write complete rows to a CSV or JSONL file as they are computed. Memory stays flat in the number of files:
at most `window` decoded images and one batch of rows exist at a time."""
from __future__ import annotations

import csv
import io
import json
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Optional

from ..console import progress_bar
from ..data.images import failure_reason, is_image_file, open_image
from ..errors import ConfigError, DataError
from .open import open_predictor

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def _walk(folder: str) -> Iterator[str]:
    """A folder's images, recursively, in sorted order (hidden folders skipped); one folder listed at a time."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if is_image_file(f):
                yield os.path.join(dirpath, f)


def check_paths(paths) -> list:
    """Fail early on a missing path or a folder without images (stopping at a folder's first image)."""
    paths = [os.fspath(p) for p in paths]
    for p in paths:
        if os.path.isdir(p):
            if next(_walk(p), None) is None:
                raise DataError(f"folder {p} has no images")
        elif not os.path.isfile(p):
            raise DataError(f"image not found: {p}")
    return paths


def iter_files(paths) -> Iterator[str]:
    """Files as given; a folder's images in sorted order (recursively). Lazy: nothing is listed up front."""
    for p in check_paths(paths):
        yield from (_walk(p) if os.path.isdir(p) else (p,))


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def iter_predictions(model, paths, topk: int = 5, batch_size: int = 64, workers: Optional[int] = None,
                     on_error: str = "raise", device: str = "cpu") -> Iterator[dict]:
    """Yield {'path', 'topk': [{'label', 'index', 'prob'}]} per file, in input order. Decoding runs on
    `workers` threads ahead of the model (0: in this thread). on_error='row': a file that cannot be read
    yields {'path', 'error'} instead of stopping the run; 'raise': its DataError propagates."""
    predictor = open_predictor(model, device=device)
    if on_error not in ("raise", "row"):
        raise ValueError("on_error must be 'raise' or 'row'")
    batch_size = max(1, int(batch_size))
    workers = default_workers() if workers is None else max(0, int(workers))
    files = iter_files([paths] if isinstance(paths, (str, os.PathLike)) else paths)

    def decode(path):
        return predictor.prepare(open_image(path))

    def flush(batch):
        good = [t for _, t, _ in batch if t is not None]
        answers = iter(predictor.predict_prepared(good, topk))
        for path, t, err in batch:
            if err is not None:
                yield {"path": path, "error": err}
                continue
            row = {"path": path, "topk": next(answers)}
            note = predictor.input_note(t)
            if note:
                row["note"] = note
            yield row

    pool = ThreadPoolExecutor(workers, thread_name_prefix="tudui-decode") if workers else None
    window = batch_size * 2 + 4 * workers  # decoded images waiting: bounded whatever the number of files
    pending: deque = deque()
    try:
        def fill():
            while len(pending) < window:
                path = next(files, None)
                if path is None:
                    return
                pending.append((path, pool.submit(decode, path) if pool else path))

        fill()
        batch, n_good = [], 0
        while pending:
            path, job = pending.popleft()
            fill()
            try:
                t = job.result() if pool else decode(job)
                batch.append((path, t, None))
                n_good += 1
            except Exception as e:  # noqa: BLE001 - any decode failure is one file's problem
                if on_error == "raise":
                    raise
                batch.append((path, None, failure_reason(e)))  # the reason; the row names the file
            if n_good >= batch_size:
                yield from flush(batch)
                batch, n_good = [], 0
        if batch:
            yield from flush(batch)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------------- writing rows
def output_format(out: str) -> str:
    ext = os.path.splitext(os.fspath(out))[1].lower()
    if ext not in FORMATS:
        raise ConfigError(f"--out {out}: the file name must end in .csv or .jsonl (it sets the format)")
    return FORMATS[ext]


def csv_header(topk: int) -> list:
    cols = ["path", "label", "prob"]
    for i in range(2, topk + 1):
        cols += [f"label_{i}", f"prob_{i}"]
    return cols + ["error"]


def csv_row(r: dict, topk: int) -> list:
    if "error" in r:
        return [r["path"]] + [""] * (2 * topk) + [r["error"]]
    cells = [r["path"]]
    for t in r["topk"]:
        cells += [t["label"], repr(t["prob"])]
    return cells + [""] * (2 * topk - 2 * len(r["topk"])) + [""]


class RowWriter:
    """Appends whole lines: each batch of rows is one write() of complete lines on an unbuffered file, so a
    killed run leaves a file whose every line is a complete row (CSV with its header first, or JSONL)."""

    def __init__(self, out: str, topk: int):
        self.path = os.fspath(out)
        self.fmt = output_format(self.path)
        self.topk = topk
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(folder, exist_ok=True)
            self.fh = open(self.path, "wb", buffering=0)
        except OSError as e:
            raise ConfigError(f"--out {self.path}: cannot write there ({e.strerror or e}); choose another file") \
                from None
        if self.fmt == "csv":
            self._write([csv_header(topk)])

    def _write(self, rows: list) -> None:
        buf = io.StringIO()
        if self.fmt == "csv":
            w = csv.writer(buf, lineterminator="\n")
            w.writerows(rows)
        else:
            for r in rows:
                buf.write(json.dumps(r, ensure_ascii=False) + "\n")
        data = buf.getvalue().encode("utf-8")
        view = memoryview(data)
        while view:
            n = self.fh.write(view)
            view = view[n:]

    def write(self, rows: list) -> None:
        if rows:
            self._write([csv_row(r, self.topk) for r in rows] if self.fmt == "csv" else rows)

    def close(self) -> None:
        self.fh.close()


def count_files(paths) -> int:
    return sum(1 for _ in iter_files(paths))


def predict_to_file(model, paths, out: str, topk: int = 5, batch_size: int = 64, workers: Optional[int] = None,
                    device: str = "cpu", progress: bool = True, *, verify: bool = True,
                    unsafe_load: bool = False, invert: bool = False) -> dict:
    """Stream predictions for every image under `paths` into `out` (.csv or .jsonl), rows written as they are
    computed. Files that cannot be read become rows with an error. -> {'out', 'images', 'failed', 'seconds'}.
    verify / unsafe_load: see checkpoint.load."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    output_format(out)
    check_paths(paths)  # a mistyped folder fails before the model loads
    predictor = open_predictor(model, device=device, verify=verify, unsafe_load=unsafe_load)
    predictor.invert = bool(invert)
    k = max(1, min(int(topk), len(predictor.classes)))
    bar = None
    if progress:
        bar = progress_bar(count_files(paths), "predict", unit="img", dynamic_ncols=True)
    t0 = time.perf_counter()
    n = failed = 0
    writer = RowWriter(out, k)
    try:
        rows = []
        for r in iter_predictions(predictor, paths, topk=k, batch_size=batch_size, workers=workers, on_error="row"):
            rows.append(r)
            failed += "error" in r
            if len(rows) >= batch_size:
                writer.write(rows)
                n += len(rows)
                if bar is not None:
                    bar.update(len(rows))
                rows = []
        writer.write(rows)
        n += len(rows)
        if bar is not None:
            bar.update(len(rows))
    finally:
        writer.close()
        if bar is not None:
            bar.close()
    return {"out": os.fspath(out), "images": n, "failed": failed, "seconds": time.perf_counter() - t0,
            "model": predictor.meta.get("path"), "kind": predictor.kind}
