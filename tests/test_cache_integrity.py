"""Cache and data folders follow the platform (platformdirs; XDG_CACHE_HOME on Linux) with TUDUI_CACHE_DIR /
TUDUI_DATA_DIR and the flags winning; a truncated or bit-flipped cache entry is detected and rebuilt."""
import os
import sys

import pytest
import torch

from tudui import dirs
from tudui.data.cache import cached_decode
from test_cache import entries, jpegs


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CACHE_HOME is the Linux convention")
def test_folders_follow_xdg_and_env_and_flags_win(tmp_path, monkeypatch):
    monkeypatch.delenv("TUDUI_CACHE_DIR", raising=False)
    monkeypatch.delenv("TUDUI_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dirs.cache_dir() == str(tmp_path / "xdg" / "tudui")
    assert dirs.data_dir() == str(tmp_path / "xdg" / "tudui" / "data")
    assert dirs.cache_dir("~/.cache/tudui") == str(tmp_path / "xdg" / "tudui")  # an old default: not set
    monkeypatch.setenv("TUDUI_CACHE_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("TUDUI_DATA_DIR", str(tmp_path / "envdata"))
    assert dirs.cache_dir() == str(tmp_path / "env") and dirs.data_dir() == str(tmp_path / "envdata")
    assert dirs.cache_dir(str(tmp_path / "flag")) == str(tmp_path / "flag")
    assert dirs.data_dir(str(tmp_path / "flagdata")) == str(tmp_path / "flagdata")
    # the decode cache really lands there
    monkeypatch.delenv("TUDUI_CACHE_DIR")
    cached_decode(jpegs(tmp_path / "imgs"), 3, (10, 10), None)
    assert entries(str(tmp_path / "xdg" / "tudui"))


def _entry(cache):
    return os.path.join(cache, "decoded", entries(cache)[0])


@pytest.mark.parametrize("damage", ["truncate", "flip", "no-hash"])
def test_damaged_entry_is_detected_and_rebuilt(tmp_path, capsys, damage):
    split = jpegs(tmp_path / "imgs")
    cache = str(tmp_path / "cache")
    good, _, _, status = cached_decode(split, 3, (10, 10), cache)
    assert status == "written"
    path = _entry(cache)
    if damage == "truncate":
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
    elif damage == "flip":  # a pixel changes, the file still loads: only the checksum can tell
        d = torch.load(path, weights_only=True)
        d["images"][2, 1, 3, 4] ^= 1
        torch.save(d, path)
    else:
        d = torch.load(path, weights_only=True)
        del d["sha256"]
        torch.save(d, path)
    again, _, _, status = cached_decode(split, 3, (10, 10), cache)
    assert status == "written" and torch.equal(again, good)
    assert "rebuilding damaged cache file" in capsys.readouterr().err
    assert cached_decode(split, 3, (10, 10), cache)[3] == "hit"
