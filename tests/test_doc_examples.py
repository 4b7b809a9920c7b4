"""Every code block marked runnable in docs/ and README.md runs here (docs/contributing/examples.md).

Convention: the line `<!-- runnable -->` right before a fenced ```bash or ```python block (blank lines
allowed). The runnable blocks of one page run in order in one fresh temporary folder holding `digit.png`;
bash blocks in a subprocess (`bash -eu -o pipefail`, `tudui`/`python` = this interpreter with src/ first),
python blocks with exec in one namespace per page.

Translations (`docs/**/PAGE.zh.md`, `README.zh-CN.md`) show the code of their English page, comments
translated. A translated page whose runnable blocks are the English page's, comments aside, is covered by
the English page's run and is not run a second time (test_translations_show_the_english_code checks that
they are the same); one whose runnable blocks differ (the Chinese dataset example names its classes 蚂蚁
and 蜜蜂) runs like an English page.
"""
from __future__ import annotations

import ast
import os
import re
import shlex
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
    files = [REPO / "README.md", REPO / "README.zh-CN.md"] + sorted((REPO / "docs").rglob("*.md"))
    return [f for f in files if f.is_file()]


TRANSLATION = re.compile(r"(.+)\.zh(?:-CN)?\.md")


def english_edition(path: Path) -> Path | None:
    """docs/x.zh.md -> docs/x.md, README.zh-CN.md -> README.md; None for a page that is not a translation."""
    m = TRANSLATION.fullmatch(path.name)
    return path.with_name(m.group(1) + ".md") if m else None


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block of a Markdown text, runnable or not, indentation removed."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent, j = m.group(2), len(m.group(1)), i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence) and set(lines[j].strip()) == {fence[0]}):
            j += 1
        out.append((m.group(3).lower(), "\n".join(ln[indent:] for ln in lines[i + 1:j]) + "\n"))
        i = j + 1
    return out


def _shell_words(code: str) -> list:
    words = []
    for line in code.splitlines():
        try:
            split = shlex.split(line, comments=True)
        except ValueError:  # an open quote: compare the line as it is
            split = [line.strip()]
        if split:
            words.append(split)
    return words


def same_code(lang: str, a: str, b: str) -> bool:
    """The same program, comments aside: a translation translates the comments, never the code (its string
    literals and flags included)."""
    if lang == "python":
        try:
            return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
        except SyntaxError:  # an excerpt, not a program
            return a == b
    if lang in ("bash", "sh", "shell", "console"):
        return _shell_words(a) == _shell_words(b)
    return a == b


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


def _covered_by_english(page: Path) -> bool:
    english = english_edition(page)
    if english is None:
        return False
    theirs, ours = PAGES.get(english, []), PAGES[page]
    return len(theirs) == len(ours) and all(a.lang == b.lang and same_code(a.lang, a.code, b.code)
                                            for a, b in zip(ours, theirs))


RUN = sorted(p for p in PAGES if not _covered_by_english(p))  # the pages whose examples run here


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
    """The convention is in use where the docs promise it: the README's tour and the course pages, and their
    Chinese editions."""
    assert Path("README.md") in PAGES and Path("README.zh-CN.md") in PAGES
    assert any(str(p).startswith("docs/course/") for p in PAGES)
    assert any(str(p).startswith("docs/course/") and english_edition(p) for p in PAGES)
    assert any(b.lang == "bash" for blocks in PAGES.values() for b in blocks)
    assert any(b.lang == "python" for blocks in PAGES.values() for b in blocks)


def test_marker_rules():
    good = f"text\n{MARKER}\n\n```bash\ntudui env\n```\n````markdown\n{MARKER}\n```python\nx\n```\n````\n"
    blocks = parse_blocks(good, Path("x.md"))
    assert [(b.lang, b.code, b.line) for b in blocks] == [("bash", "tudui env\n", 5)]
    for bad in (f"{MARKER}\n```text\nhi\n```\n", f"{MARKER}\nprose\n```bash\nls\n```\n", f"x\n{MARKER}\n"):
        with pytest.raises(ValueError, match="runnable"):
            parse_blocks(bad, Path("x.md"))


def test_same_code_ignores_comments_only():
    assert same_code("python", "x = f(1)  # one\nprint(x)\n", "x = f(1)           # 一\nprint(x)\n")
    assert not same_code("python", 'print("a")\n', 'print("蚂蚁")\n')
    assert same_code("bash", "tudui env   # versions\n# a note\ntudui train --epochs 3\n",
                     "tudui env   # 版本\ntudui train --epochs 3   # 训练\n")
    assert not same_code("bash", "tudui train --epochs 3\n", "tudui train --epochs 4\n")
    assert code_blocks("x\n    ```bash\n    ls  # a\n    ```\n````md\n```py\n````\n") == [
        ("bash", "ls  # a\n"), ("md", "```py\n")]


def test_translations_show_the_english_code():
    """Each translation has its English page, and shows the same code blocks in the same order, comments
    aside. Where a runnable block differs on purpose, the page is in RUN: its examples run here too."""
    translations = [REPO / "README.zh-CN.md"] + sorted((REPO / "docs").rglob("*.zh.md"))
    assert len(translations) > 1
    for path in translations:
        rel = path.relative_to(REPO)
        english = english_edition(rel)
        assert (REPO / english).is_file(), f"{rel} translates {english}, which does not exist"
        ours = code_blocks(path.read_text(encoding="utf-8"))
        theirs = code_blocks((REPO / english).read_text(encoding="utf-8"))
        assert [lang for lang, _ in ours] == [lang for lang, _ in theirs], \
            f"{rel} and {english} have different code blocks: update the translation"
        for n, ((lang, a), (_, b)) in enumerate(zip(ours, theirs)):
            runs_here = rel in RUN and a in {blk.code for blk in PAGES.get(rel, [])}
            assert runs_here or same_code(lang, a, b), \
                f"code block {n + 1} of {rel} is not the one in {english} (comments aside): update the translation"
        if rel in PAGES:
            assert len(PAGES[rel]) == len(PAGES.get(english, [])), f"{rel} lost or added a runnable example"


@pytest.mark.parametrize("page", RUN, ids=str)
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
