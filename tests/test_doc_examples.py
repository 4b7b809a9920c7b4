"""Every code block marked runnable in docs/ and README.md runs here (docs/contributing/examples.md).

Convention: the line `<!-- runnable -->` right before a fenced ```bash or ```python block (blank lines
allowed). The runnable blocks of one page run in order in one fresh temporary folder holding `digit.png`;
bash blocks in a subprocess (`bash -eu -o pipefail`, `tudui`/`python` = this interpreter with src/ first),
python blocks with exec in one namespace per page.
"""
from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- runnable -->"
LANGS = ("bash", "python")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the code's first line
    lang: str
    code: str


def doc_files() -> list[Path]:
    files = [REPO / "README.md"] + sorted((REPO / "docs").rglob("*.md"))
    return [f for f in files if f.is_file()]


def parse_blocks(text: str, path: Path) -> list[Block]:
    """Runnable blocks of one Markdown text, in order. Markers inside code blocks are text, not markers;
    a marker not followed by a bash or python fence is an error."""
    lines = text.splitlines()
    blocks, i, pending = [], 0, None
    while i < len(lines):
        line = lines[i]
        m = FENCE.match(line)
        if m:
            fence, lang = m.group(2), m.group(3).lower()
            j = i + 1
            while j < len(lines) and not (lines[j].strip().startswith(fence[0] * len(fence))
                                          and set(lines[j].strip()) == {fence[0]}):
                j += 1
            if pending is not None:
                if lang not in LANGS:
                    raise ValueError(f"{path}:{pending + 1}: {MARKER} is followed by a '{lang or 'plain'}' block; "
                                     f"runnable blocks are {' or '.join(LANGS)}")
                indent = len(m.group(1))
                code = "\n".join(ln[indent:] if ln[:indent].strip() == "" else ln for ln in lines[i + 1:j])
                blocks.append(Block(path, i + 2, lang, code + "\n"))
                pending = None
            i = j + 1
            continue
        if line.strip() == MARKER:
            if pending is not None:
                raise ValueError(f"{path}:{pending + 1}: {MARKER} is not followed by a code block")
            pending = i
        elif line.strip() and pending is not None:
            raise ValueError(f"{path}:{pending + 1}: {MARKER} must come right before a ```bash or ```python block")
        i += 1
    if pending is not None:
        raise ValueError(f"{path}:{pending + 1}: {MARKER} at the end of the file, with no code block after it")
    return blocks


def all_blocks() -> dict[Path, list[Block]]:
    out = {}
    for f in doc_files():
        blocks = parse_blocks(f.read_text(encoding="utf-8"), f.relative_to(REPO))
        if blocks:
            out[f.relative_to(REPO)] = blocks
    return out


PAGES = all_blocks()


def write_digit_png(folder: Path) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits
    digits = load_digits()
    Image.fromarray((digits.images[7] * 255 / 16).astype("uint8"), mode="L").save(folder / "digit.png")


def shims(folder: Path) -> Path:
    """`tudui` and `python` on PATH: this interpreter, this checkout's code."""
    bin_dir = folder / ".bin"
    bin_dir.mkdir()
    for name, cmd in (("tudui", f'exec "{sys.executable}" -m tudui "$@"'), ("python", f'exec "{sys.executable}" "$@"')):
        p = bin_dir / name
        p.write_text(f"#!/bin/sh\n{cmd}\n")
        p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir


def run_bash(block: Block, cwd: Path, env: dict) -> None:
    proc = subprocess.run(["bash", "-eu", "-o", "pipefail", "-c", block.code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"{block.path}:{block.line}: the bash block exited with {proc.returncode}\n--- code\n{block.code}"
                    f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")


def run_python(block: Block, namespace: dict) -> None:
    exec(compile(block.code, f"{block.path}:{block.line}", "exec"), namespace)


def test_examples_are_collected():
    """The convention is in use where the docs promise it: the README's tour and the course pages."""
    assert Path("README.md") in PAGES
    assert any(str(p).startswith("docs/course/") for p in PAGES)
    assert any(b.lang == "bash" for blocks in PAGES.values() for b in blocks)
    assert any(b.lang == "python" for blocks in PAGES.values() for b in blocks)


def test_marker_rules():
    good = f"text\n{MARKER}\n\n```bash\ntudui env\n```\n````markdown\n{MARKER}\n```python\nx\n```\n````\n"
    blocks = parse_blocks(good, Path("x.md"))
    assert [(b.lang, b.code, b.line) for b in blocks] == [("bash", "tudui env\n", 5)]
    for bad in (f"{MARKER}\n```text\nhi\n```\n", f"{MARKER}\nprose\n```bash\nls\n```\n", f"x\n{MARKER}\n"):
        with pytest.raises(ValueError, match="runnable"):
            parse_blocks(bad, Path("x.md"))


@pytest.mark.parametrize("page", sorted(PAGES), ids=str)
def test_runnable_examples(page, tmp_path, monkeypatch):
    write_digit_png(tmp_path)
    env = dict(os.environ)
    env["PATH"] = f"{shims(tmp_path)}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src")] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny inputs: one thread is faster and kinder to a shared machine
    env["MPLBACKEND"] = "Agg"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__doc_example__"}
    for block in PAGES[page]:
        if block.lang == "bash":
            run_bash(block, tmp_path, env)
        else:
            run_python(block, namespace)
