"""The documentation site builds with `mkdocs build --strict`, its generated reference covers every command,
flag and config key, the checkpoint format page matches real checkpoints, and the README's test command is
the one CI runs."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _subcommands():
    from tudui.cli import build_parser
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("tudui's parser has no subcommands")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    for mod in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "matplotlib"):
        pytest.importorskip(mod)
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1",
               PYTHONPATH=os.pathsep.join([str(REPO / "src")] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                           "-d", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return out


def _text(path: Path) -> str:
    import html
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


def _options(parser, prefix):
    """(command words, option) for a parser and its nested subcommands (`tudui runs list --json`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield (prefix + " " + sub, None)
                yield from _options(p, prefix + " " + sub)
        for opt in action.option_strings:
            if opt not in ("-h", "--help"):
                yield prefix, opt


def test_every_command_and_flag_has_its_reference_page(site):
    index = _text(site / "reference" / "cli" / "index.html")
    for name, parser in _subcommands().items():
        page = site / "reference" / "cli" / name / "index.html"
        assert page.is_file(), f"no reference page for `tudui {name}`"
        text = _text(page)
        assert f"tudui {name}" in index
        for words, opt in _options(parser, f"tudui {name}"):
            assert (opt or words) in text, f"`{words} {opt or ''}` is missing from its reference page"


def test_every_config_key_is_on_the_config_page(site):
    from tudui.config import config_fields
    from tudui.recipes import RECIPES
    text = _text(site / "reference" / "config" / "index.html")
    for f in config_fields():
        assert f.name in text, f"config key {f.name} is missing from the config reference"
    recipes = _text(site / "how-to" / "config-files" / "index.html")
    for name in RECIPES:
        assert name in recipes


def test_api_page_renders_docstrings(site):
    text = _text(site / "reference" / "api" / "index.html")
    import tudui
    for fn in (tudui.train, tudui.evaluate, tudui.load, tudui.import_pth):
        first_line = fn.__doc__.strip().splitlines()[0].strip()
        assert first_line[:40] in " ".join(text.split()), f"{fn.__name__}'s docstring is not on the API page"


def test_course_steps_are_one_click_from_the_nav(site):
    """Every course page is a nav entry of its own (the section lists them), in the course's order."""
    import yaml

    cfg = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    section = next(item["From the course to tudui"] for item in cfg["nav"]
                   if isinstance(item, dict) and "From the course to tudui" in item)
    pages = [list(e.values())[0] for e in section if isinstance(e, dict)]
    on_disk = sorted(str(p.relative_to(REPO / "docs")) for p in (REPO / "docs" / "course").glob("*.md")
                     if p.name != "index.md" and not p.name.endswith(".zh.md"))
    assert sorted(pages) == on_disk
    titles = [list(e)[0] for e in section if isinstance(e, dict)]
    assert [int(t.split(".")[0]) for t in titles] == list(range(1, len(titles) + 1))
    index = (REPO / "docs" / "course" / "index.md").read_text(encoding="utf-8")
    linked = re.findall(r"\]\(([\w-]+\.md)\)", index)
    assert [f"course/{p}" for p in linked] == pages, "the course overview table and the nav disagree"


def _switch(page: Path) -> dict:
    """hreflang -> the page its language switch links to, resolved in the built site."""
    html = page.read_text(encoding="utf-8")
    return {lang: (page.parent / href / "index.html").resolve()
            for href, lang in re.findall(r'<a href="([^"]*)" hreflang="([^"]*)"', html)}


def test_chinese_edition(site):
    """Every page of "From the course to tudui", the home page and Getting started have a Chinese edition
    (docs/**/PAGE.zh.md) built under zh/, in the same place as the English page; each edition's language
    switch links to the other; the other pages (the command reference included) are in the Chinese site too,
    in English."""
    english = ["index.md", "getting-started.md"] + sorted(
        str(p.relative_to(REPO / "docs")) for p in (REPO / "docs" / "course").glob("*.md") if p.name.count(".") == 1)
    for md in english:
        assert (REPO / "docs" / md.replace(".md", ".zh.md")).is_file(), f"docs/{md} has no Chinese edition"
        where = Path(md).with_suffix("")
        where = where.parent if where.name == "index" else where            # the page's folder in the site
        en, zh = site / where / "index.html", site / "zh" / where / "index.html"
        assert zh.is_file(), f"the Chinese edition of docs/{md} was not built"
        assert '<html lang="zh"' in zh.read_text(encoding="utf-8")
        assert _switch(zh) == {"en": en.resolve(), "zh": zh.resolve()}, f"{zh}'s language switch"
        assert _switch(en) == {"en": en.resolve(), "zh": zh.resolve()}, f"{en}'s language switch"
    course = _text(site / "zh" / "course" / "index.html")
    assert "从课程到 tudui" in course and "损失函数" in course          # the nav and the page are Chinese
    train = site / "zh" / "reference" / "cli" / "train" / "index.html"
    assert "--epochs" in _text(train) and _switch(train)["en"] == (site / "reference/cli/train/index.html").resolve()


def _nav_titles(items) -> set:
    titles = set()
    for item in items:
        if isinstance(item, dict):
            for title, value in item.items():
                titles.add(title)
                if isinstance(value, list):
                    titles |= _nav_titles(value)
    return titles


def test_nav_translations_name_real_titles():
    """Each translated nav title is one the nav has (a renamed English title would silently lose its
    translation), and every step of the course is translated."""
    import yaml

    cfg = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    i18n = next(p["i18n"] for p in cfg["plugins"] if isinstance(p, dict) and "i18n" in p)
    translations = next(lang["nav_translations"] for lang in i18n["languages"] if lang["locale"] == "zh")
    titles = _nav_titles(cfg["nav"]) | {"Overview"}       # the hooks add Overview under Commands
    assert set(translations) <= titles, f"not in the nav: {sorted(set(translations) - titles)}"
    course = next(item["From the course to tudui"] for item in cfg["nav"]
                  if isinstance(item, dict) and "From the course to tudui" in item)
    assert _nav_titles(course) <= set(translations)


def test_readme_editions_link_each_other():
    english = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    chinese = (REPO / "README.zh-CN.md").read_text(encoding="utf-8").splitlines()
    assert any("(README.zh-CN.md)" in line for line in english[:4]), "README.md's top lacks its Chinese edition's link"
    assert any("(README.md)" in line for line in chinese[:4]), "README.zh-CN.md's top lacks the English edition's link"


def _documented_keys(section: str) -> set:
    text = (REPO / "docs" / "reference" / "checkpoint.md").read_text(encoding="utf-8")
    body = text.split(section, 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([\w]+)` \|", body, flags=re.M))


def test_checkpoint_format_page_matches_real_checkpoints(tmp_path):
    import torch
    from torch import nn

    import tudui

    plain = tudui.train("digits", epochs=1, out=str(tmp_path), name="plain", progress=False)
    (tmp_path / "names.json").write_text('["零", "一"]', encoding="utf-8")  # --class-names: two of ten named
    averaged = tudui.train("digits", epochs=1, out=str(tmp_path), name="avg", ema=0.9, lookahead=0.9,
                           class_names=str(tmp_path / "names.json"), progress=False)
    sd = nn.Sequential(nn.Conv2d(3, 32, 5, 1, 2), nn.MaxPool2d(2), nn.Conv2d(32, 32, 5, 1, 2), nn.MaxPool2d(2),
                       nn.Conv2d(32, 64, 5, 1, 2), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1024, 64),
                       nn.Linear(64, 10)).state_dict()
    torch.save({f"model.{k}": v for k, v in sd.items()}, tmp_path / "course.pth")
    tudui.import_pth(tmp_path / "course.pth", tmp_path / "imported.pt")
    paths = [plain.best_path, plain.last_path, averaged.last_path, tmp_path / "imported.pt"]
    ckpts = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
    top = set().union(*(c.keys() for c in ckpts))
    train_state = set().union(*(c.get("train_state", {}).keys() for c in ckpts))
    assert _documented_keys("## Top-level keys") == top
    assert _documented_keys("## `train_state`") == train_state


def test_readme_test_command_is_the_ci_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    pip = re.search(r"pip install\s+(?:-q\s+)?-e\s+(\S+)", ci)
    pytest_args = re.search(r"-m pytest([^\n]*)", ci)
    assert pip and pytest_args, ".ci/run no longer installs with pip -e and runs pytest"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^pip install -e (\S+) && pytest([^\n]*)$", readme, flags=re.M)
    assert m, "README.md lost its one-line test command"
    assert m.group(1) == pip.group(1) and m.group(2).strip() == pytest_args.group(1).strip(), \
        f"README runs `pip install -e {m.group(1)} && pytest{m.group(2)}`, CI runs {pip.group(0)!r} and {pytest_args.group(0)!r}"
