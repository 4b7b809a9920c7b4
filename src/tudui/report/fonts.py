"""Fonts for every figure tudui draws: class names in any script, never "tofu" (empty boxes).

matplotlib's default font (DejaVu Sans) has no Chinese, Japanese or Korean glyphs. Figures are drawn inside
`context()`, which adds an installed CJK font (found through matplotlib's font manager) as a fallback after
the default one, so 蚂蚁 draws as 蚂蚁. Labels go through `label()` / `labels()`: a name that the fonts still
cannot draw becomes its class index (the page beside the figure keeps the names), and one line says which
font package to install."""
from __future__ import annotations

import contextlib
import functools
import sys
from typing import Optional

# CJK-capable families, most common first: Linux (Noto, Source Han, WenQuanYi), Windows, macOS
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC", "Noto Sans CJK KR", "Noto Sans SC",
                "Source Han Sans SC", "Source Han Sans CN", "Source Han Sans", "WenQuanYi Zen Hei",
                "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC", "Hiragino Sans GB",
                "Arial Unicode MS")
INSTALL_HINT = ("figures show class numbers instead of names that the installed fonts cannot draw; install a "
                "CJK font to see them: fonts-noto-cjk (Debian/Ubuntu), google-noto-sans-cjk-fonts (Fedora), "
                "or Noto Sans CJK from fonts.google.com")
_warned = False


@functools.lru_cache(maxsize=None)
def cjk_family() -> Optional[str]:
    """The first installed CJK-capable family (None when there is none)."""
    from matplotlib import font_manager
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((f for f in CJK_FAMILIES if f in installed), None)


def families() -> list:
    """The font list figures use: matplotlib's configured family first, the CJK font as the fallback."""
    import matplotlib
    base = list(matplotlib.rcParams["font.family"])
    extra = cjk_family()
    return base + [extra] if extra and extra not in base else base


@functools.lru_cache(maxsize=None)
def _coverage(chain: tuple) -> frozenset:
    """Every code point some font of the chain has a glyph for."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font
    codes = set()
    for fam in chain:
        try:
            path = font_manager.findfont(font_manager.FontProperties(family=[fam]), fallback_to_default=False)
            codes.update(FT2Font(path).get_charmap())
        except (ValueError, RuntimeError, OSError):
            continue
    return frozenset(codes)


def drawable(s: str) -> bool:
    """Whether every character of `s` has a glyph in the figure fonts (spaces and controls always do)."""
    cov = _coverage(tuple(families()))
    return all(c.isspace() or ord(c) < 32 or ord(c) in cov for c in str(s))


def _hint() -> None:
    global _warned
    if not _warned:
        _warned = True
        print(f"notice: {INSTALL_HINT}", file=sys.stderr, flush=True)


def label(name, index: Optional[int] = None) -> str:
    """`name` when the fonts can draw it; else its class index (or '?' per missing character), with one
    notice per process saying which font to install."""
    name = str(name)
    if drawable(name):
        return name
    _hint()
    if index is not None:
        return str(index)
    return "".join(c if drawable(c) else "?" for c in name)


def labels(names) -> list:
    """A figure's class labels: each name, or its index where the fonts cannot draw it."""
    return [label(n, i) for i, n in enumerate(names)]


@contextlib.contextmanager
def context():
    """Draw figures inside this: text made (and rendered) here falls back to the CJK font."""
    import matplotlib
    with matplotlib.rc_context({"font.family": families()}):
        yield


def using_fonts(fn):
    """Decorator: the figure function builds its Figure inside `context()`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with context():
            return fn(*args, **kwargs)
    return wrapper
