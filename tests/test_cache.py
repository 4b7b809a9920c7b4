"""The on-disk cache of decoded splits: reused while the files are unchanged, rebuilt (and the old copy
removed) when one changes, never fatal when damaged."""
import os

import numpy as np
import torch
from PIL import Image

from tudui.config import TrainConfig
from tudui.data import cache as cache_mod
from tudui.data.cache import cached_decode
from tudui.data.pipeline import prepare
from tudui.data.splits import DataSource, FileSplit


def jpegs(folder, n=6, side=10, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(p, quality=95)
        paths.append(str(p))
    return FileSplit(paths, [i % 2 for i in range(n)])


def entries(cache_dir):
    d = os.path.join(cache_dir, "decoded")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_cache_is_reused_while_files_are_unchanged(tmp_path, monkeypatch):
    split = jpegs(tmp_path / "imgs")
    cache = str(tmp_path / "cache")
    first, kept, bad, status = cached_decode(split, 3, (10, 10), cache)
    assert status == "written" and kept == list(range(6)) and bad == []
    assert first.dtype == torch.uint8 and first.shape == (6, 3, 10, 10)
    assert len(entries(cache)) == 1

    def no_decoding(*a, **k):
        raise AssertionError("decoded again although the cache is valid")
    monkeypatch.setattr(cache_mod, "decode_all", no_decoding)
    again, kept2, _, status = cached_decode(split, 3, (10, 10), cache)
    assert status == "hit" and kept2 == kept and torch.equal(again, first)
    # other decode settings are another entry; the first one stays
    monkeypatch.undo()
    gray, _, _, status = cached_decode(split, 1, (8, 8), cache)
    assert status == "written" and gray.shape == (6, 1, 8, 8) and len(entries(cache)) == 2


def test_cache_is_rebuilt_when_a_file_changes(tmp_path):
    split = jpegs(tmp_path / "imgs")
    cache = str(tmp_path / "cache")
    before, _, _, _ = cached_decode(split, 3, (10, 10), cache)
    old_entry = entries(cache)
    # replace one image by another of the same name; move its mtime on so the change is visible
    Image.fromarray(np.full((10, 10, 3), 200, dtype=np.uint8)).save(split.paths[2], quality=95)
    st = os.stat(split.paths[2])
    os.utime(split.paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    after, _, _, status = cached_decode(split, 3, (10, 10), cache)
    assert status == "written"
    assert torch.equal(after[[0, 1, 3, 4, 5]], before[[0, 1, 3, 4, 5]])
    assert not torch.equal(after[2], before[2]) and (after[2].float().mean() - 200).abs() < 3
    new_entry = entries(cache)
    assert len(new_entry) == 1 and new_entry != old_entry  # the stale copy was removed, not kept beside
    assert cached_decode(split, 3, (10, 10), cache)[3] == "hit"


def test_damaged_cache_file_is_rebuilt(tmp_path, capsys):
    split = jpegs(tmp_path / "imgs")
    cache = str(tmp_path / "cache")
    good, _, _, _ = cached_decode(split, 3, (10, 10), cache)
    path = os.path.join(cache, "decoded", entries(cache)[0])
    with open(path, "wb") as fh:
        fh.write(b"not a tensor file")
    again, _, _, status = cached_decode(split, 3, (10, 10), cache)
    assert status == "written" and torch.equal(again, good)
    assert "rebuilding damaged cache file" in capsys.readouterr().err


def test_unreadable_files_are_remembered_with_the_cache(tmp_path):
    split = jpegs(tmp_path / "imgs")
    with open(split.paths[4], "wb") as fh:
        fh.write(b"broken")
    cache = str(tmp_path / "cache")
    imgs, kept, bad, _ = cached_decode(split, 3, (10, 10), cache)
    assert kept == [0, 1, 2, 3, 5] and len(bad) == 1 and bad[0].startswith(split.paths[4] + ": ") and imgs.shape[0] == 5
    imgs2, kept2, bad2, status = cached_decode(split, 3, (10, 10), cache)
    assert status == "hit" and (kept2, bad2) == (kept, bad) and torch.equal(imgs, imgs2)


def test_second_run_reads_the_cache_and_says_so(tmp_path):
    src = DataSource(name="j", classes=["a", "b"], native_size=(10, 10),
                     splits={"train": jpegs(tmp_path / "tr", n=8), "val": jpegs(tmp_path / "va", n=4, seed=1)})
    cfg = TrainConfig(batch_size=4, cache_dir=str(tmp_path / "cache"), loader="memory")
    first = prepare(src, cfg, "cpu")
    assert "decoded 8 images" in first.loader_reason and "cached for the next run" in first.loader_reason
    second = prepare(src, cfg, "cpu")
    assert "read from the decode cache" in second.loader_reason and "decoded 8" not in second.loader_reason
    assert torch.equal(first.train.images, second.train.images)
    assert first.pre == second.pre  # the same normalization statistics from the cached pixels
