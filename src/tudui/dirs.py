"""Where tudui keeps files that are not runs: the decode cache and the built-in datasets.

Precedence, for each: an explicit flag or config value > an environment variable > the platform's user cache
folder (platformdirs: `$XDG_CACHE_HOME/tudui`, else `~/.cache/tudui` on Linux; `~/Library/Caches/tudui` on
macOS; `%LOCALAPPDATA%\\tudui\\Cache` on Windows).

- decode cache: `--cache-dir`, `$TUDUI_CACHE_DIR`, `<user cache>/` (entries under `decoded/`);
- built-in datasets: `--data-dir`, `$TUDUI_DATA_DIR`, `<user cache>/data` (they can always be downloaded again).

The values older tudui versions wrote as defaults (`~/.cache/tudui`, `~/.cache/tudui/data`) count as "not set".
"""
from __future__ import annotations

import os
from typing import Optional

LEGACY_CACHE_DEFAULT = "~/.cache/tudui"
LEGACY_DATA_DEFAULT = "~/.cache/tudui/data"


def user_cache_dir() -> str:
    import platformdirs  # import-time cost: only when a folder is resolved
    return platformdirs.user_cache_dir("tudui", appauthor=False)


def cache_dir(value: Optional[str] = None) -> str:
    """The decode cache's root folder."""
    if value and value != LEGACY_CACHE_DEFAULT:
        return os.path.expanduser(value)
    return os.path.expanduser(os.environ.get("TUDUI_CACHE_DIR") or user_cache_dir())


def data_dir(value: Optional[str] = None) -> str:
    """The root of the built-in datasets (torchvision's layout)."""
    if value and value != LEGACY_DATA_DEFAULT:
        return os.path.expanduser(value)
    return os.path.expanduser(os.environ.get("TUDUI_DATA_DIR") or os.path.join(user_cache_dir(), "data"))
