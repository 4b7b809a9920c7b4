"""MkDocs hooks: the reference pages generated from the code, so they cannot drift from it.

- Commands: one page per subcommand of `tudui.cli.build_parser()`, added to the nav section named
  "Commands" (a command added to `cli.COMMANDS` gets its page with no change here). Each page has the
  command's description, usage and every argument from its argparse parser, followed by the hand-written
  notes in `docs/_cli/<command>.md` when that file exists.
- Markers replaced in hand-written pages: `<!-- generated: config-keys -->` (every TrainConfig key),
  `<!-- generated: recipes -->` (every recipe and the keys it sets).
- Benchmarks: the result files of benchmarks/results/ are copied into the site, and figures are drawn
  from them with matplotlib (Agg) into images/bench/.
- Languages: with the i18n plugin (mkdocs-static-i18n) the site is built once per language in one
  `mkdocs build`; the generated pages are added after the plugin has sorted the files, under the
  language's folder (`zh/reference/cli/...`), and know their other editions for the language switch.
"""
from __future__ import annotations

import argparse
import glob
import io
import json
import os
import sys

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

COMMANDS_SECTION = "Commands"
CLI_DIR = "reference/cli"
RESULTS = os.path.join(ROOT, "benchmarks", "results")


# ---------------------------------------------------------------- argparse -> Markdown

def subcommands() -> dict:
    """name -> (one-line help, parser) for every `tudui` subcommand, in registration order."""
    from tudui.cli import build_parser

    parser = build_parser()
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                out[name] = (helps.get(name, ""), sub)
    return out


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _argument_rows(parser: argparse.ArgumentParser, positional: bool):
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        if bool(action.option_strings) == positional:
            continue
        if positional:
            name = action.metavar or action.dest
            if action.nargs in ("+", "*"):
                name += "..."
        else:
            name = ", ".join(action.option_strings)
            if action.nargs != 0 and not isinstance(action, argparse.BooleanOptionalAction):
                metavar = action.metavar or (None if action.choices else action.dest.upper())
                if action.choices:
                    metavar = "{" + ",".join(map(str, action.choices)) + "}"
                name += " " + metavar
        helptext = formatter._expand_help(action) if action.help else ""
        if isinstance(action, argparse._SubParsersAction):
            helptext = (helptext + "; " if helptext else "") + "one of " + ", ".join(f"`{c}`" for c in action.choices) \
                + " (each below)"
            yield name, helptext, "subcommand"
            continue
        yield name, helptext, action.dest


def _usage(parser: argparse.ArgumentParser) -> str:
    usage = parser.format_usage().strip()
    if usage.startswith("usage: "):  # drop the prefix and the indent argparse aligns continuation lines with
        usage = usage[len("usage: "):].replace("\n" + " " * len("usage: "), "\n")
    return usage


def _nested(parser: argparse.ArgumentParser) -> dict:
    """Sub-subcommands (`tudui runs list`), name -> (help, parser)."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            out.update({n: (helps.get(n, ""), p) for n, p in action.choices.items()})
    return out


def _argument_tables(parser: argparse.ArgumentParser, level: str, config_keys: set) -> list:
    lines = []
    for title, positional in (("Arguments", True), ("Options", False)):
        rows = [r for r in _argument_rows(parser, positional) if r[2] != argparse.SUPPRESS]
        if not rows:
            continue
        lines += [f"{level} {title}", "", "| argument | what it does |", "| --- | --- |"]
        for n, h, dest in rows:
            key = f" ([config key](../config.md#{dest}))" if not positional and dest in config_keys else ""
            lines.append(f"| `{_md(n)}` | {_md(h)}{key} |")
        lines.append("")
    return lines


def command_page(name: str, short: str, parser: argparse.ArgumentParser, notes: str | None) -> str:
    config_keys = _config_keys()
    lines = [f"# tudui {name}", "", _md(parser.description or short), "", "```text", _usage(parser), "```", ""]
    if notes:
        lines += [notes.strip(), ""]
    lines += _argument_tables(parser, "##", config_keys)
    for sub, (sub_help, sub_parser) in _nested(parser).items():
        lines += [f"## tudui {name} {sub}", "", _md(sub_parser.description or sub_help), "",
                  "```text", _usage(sub_parser), "```", ""]
        lines += _argument_tables(sub_parser, "###", config_keys)
    lines += ["Generated from the command's argparse parser; `tudui " + name + " --help` prints the same.", ""]
    return "\n".join(lines)


def _config_keys() -> set:
    from tudui.config import config_fields
    return {f.name for f in config_fields() if f.name != "transforms"}


def commands_index(cmds: dict) -> str:
    lines = ["# Commands", "",
             "Every command has `--help`. Mistakes (a missing file, an unknown name, `--device cuda` without CUDA, "
             "a file that is not a checkpoint) print one line saying what is wrong and exit with code 2. With "
             "`--json`, standard output carries only JSON; progress and notices go to standard error.", "",
             "| command | what it does |", "| --- | --- |"]
    lines += [f"| [`tudui {n}`]({n}.md) | {_md(h)} |" for n, (h, _) in cmds.items()]
    lines += ["", "These pages are generated from `tudui.cli.build_parser()` when the site is built.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- config keys and recipes

def _type_name(tp) -> str:
    from tudui.config import _base_type
    base = _base_type(tp)
    name = getattr(base, "__name__", str(base))
    optional = base is not tp
    return name + (" or null" if optional else "")


def config_table() -> str:
    import dataclasses

    from tudui.config import config_fields, field_types

    types = field_types()
    lines = ["| key | flag | type | default | what it sets |", "| --- | --- | --- | --- | --- |"]
    for f in config_fields():
        flag = "--" + f.metadata.get("flag", f.name.replace("_", "-"))
        if f.name == "transforms":
            flag = "(config file only)"
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        default = "null" if default is None else json.dumps(default)
        helptext = f.metadata.get("help", "")
        if f.metadata.get("choices"):
            helptext += "; one of " + ", ".join(f"`{c}`" for c in f.metadata["choices"])
        flag_cell = flag if flag.startswith("(") else f"`{flag}`"
        lines.append(f'| <a id="{f.name}"></a>`{f.name}` | {flag_cell} | {_type_name(types[f.name])} '
                     f"| `{_md(default)}` | {_md(helptext)} |")
    return "\n".join(lines)


def recipes_table() -> str:
    from tudui.recipes import RECIPES

    lines = ["| recipe | keys it sets |", "| --- | --- |"]
    for name, values in RECIPES.items():
        keys = ", ".join(f"`{k}: {_md(json.dumps(v))}`" for k, v in values.items())
        lines.append(f"| `{name}` | {keys} |")
    return "\n".join(lines)


def resume_keys() -> str:
    from tudui.config import RESUME_CHANGEABLE
    return ", ".join(f"`{k}`" for k in RESUME_CHANGEABLE)


MARKERS = {
    "<!-- generated: resume-keys -->": resume_keys,
    "<!-- generated: config-keys -->": config_table,
    "<!-- generated: recipes -->": recipes_table,
}


# ---------------------------------------------------------------- benchmark figures

def _fig_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def throughput_figure(path: str) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(path, encoding="utf-8") as fh:
        res = json.load(fh)
    per_batch = res["results_images_per_s"]
    series = [("course_w0", "course, 0 workers"), ("course_w2", "course, 2 workers"), ("tudui_nchw", "tudui, NCHW"),
              ("tudui", "tudui"), ("bound", "bound (model + SGD only)")]
    batches = sorted(per_batch, key=int)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / len(series)
    for i, (key, label) in enumerate(series):
        xs = [b + (i - (len(series) - 1) / 2) * width for b in range(len(batches))]
        ax.bar(xs, [per_batch[b][key] for b in batches], width, label=label)
    ax.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
    ax.set_ylabel("training images / s")
    m = res.get("machine", {})
    ax.set_title(f"CIFAR-10, course network, {m.get('cores', '?')}-core {m.get('cpu', 'CPU')}, torch {m.get('torch', '?')}",
                 fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    data = _fig_bytes(fig)
    plt.close(fig)
    return data


SPEED_LABELS = {  # result file -> label in the figure; the lr sweep (cifar_speed_lr_*) is left out
    "cifar_speed_course": "--recipe course",
    "cifar_speed": "cifar10-speed",
    "cifar_speed_B_64wide_7epochs": "64,128,128, 7 ep.",
    "cifar_speed_muon_M1": "cifar10-speed + muon",
    "cifar_speed94": "cifar10-speed94",
    "cifar_speed94_64x256_6epochs": "64,256,256, 6 ep.",
}


def cifar_speed_figure(paths: tuple[str, ...]) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [1, 2]})
    for p in paths:
        name = os.path.basename(p)[:-5]
        if name not in SPEED_LABELS:
            continue
        with open(p, encoding="utf-8") as fh:
            res = json.load(fh)
        runs = [r for r in res.get("runs", []) if "seconds" in r and "accuracy" in r]
        for ax in axes:
            ax.scatter([r["seconds"] for r in runs], [100 * r["accuracy"] for r in runs], s=14, alpha=0.5)
            ax.scatter([res["mean_seconds"]], [100 * res["mean_accuracy"]], marker="x", color="black", s=25)
        axes[0 if res["mean_accuracy"] < 0.8 else 1].annotate(
            SPEED_LABELS[name], (res["mean_seconds"], 100 * res["mean_accuracy"]), fontsize=7, xytext=(4, 3),
            textcoords="offset points")
    axes[1].set_ylim(87, 90)
    axes[0].set_title("all", fontsize=9)
    axes[1].set_title("the fast recipes (zoomed)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("seconds for tudui train")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("CIFAR-10 test accuracy, %")
    fig.suptitle("benchmarks/results/cifar_speed*.json: each seed (dots), each file's mean (x)", fontsize=9)
    data = _fig_bytes(fig)
    plt.close(fig)
    return data


# ---------------------------------------------------------------- MkDocs events

def on_config(config, **kwargs):
    """Fill the nav section "Commands" with one page per subcommand."""
    cmds = subcommands()

    def fill(items):
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            for title, value in item.items():
                if title == COMMANDS_SECTION and isinstance(value, str):
                    items[i] = {title: [{"Overview": value}] + [{f"tudui {n}": f"{CLI_DIR}/{n}.md"} for n in cmds]}
                    return True
                if title == COMMANDS_SECTION and value and value[0] == {"Overview": f"{CLI_DIR}/index.md"}:
                    return True  # filled by this build's first language (the i18n plugin builds each language)
                if isinstance(value, list) and fill(value):
                    return True
        return False

    if config.nav and not fill(config.nav):
        raise ValueError(f"mkdocs.yml nav has no '{COMMANDS_SECTION}: {CLI_DIR}/index.md' entry for the hooks to fill")
    return config


def _languages(config) -> tuple[str, dict]:
    """(the language being built, {each built language: its folder in the site}); ("", {"": ""}) without the
    i18n plugin."""
    i18n = config.plugins.get("i18n")
    if i18n is None or i18n.current_language is None:
        return "", {"": ""}
    return i18n.current_language, {lang: "" if lang == i18n.default_language else lang + "/"
                                   for lang in i18n.build_languages}


def _generated(config, src_uri: str, **source) -> File:
    """File.generated, a page placed in the folder of the language being built. A page also gets the attributes
    the i18n plugin gives the pages it sorted (its locale, its edition in each language), which its language
    switch reads. Assets stay at the site's root: every language's pages link to the one copy."""
    lang, folders = _languages(config)
    f = File.generated(config, src_uri, **source)
    if not lang or not f.is_documentation_page():
        return f
    editions = {}
    for language, folder in folders.items():
        edition = f if language == lang else File.generated(config, src_uri, **source)
        edition.dest_uri = folder + edition.dest_uri
        editions[language] = edition
    f.locale = f.locale_alternate_of = lang
    f.alternates = editions
    return f


@event_priority(-200)  # after the i18n plugin (-100), which keeps only the docs_dir files of the language it builds
def on_files(files, config, **kwargs):
    cmds = subcommands()
    files.append(_generated(config, f"{CLI_DIR}/index.md", content=commands_index(cmds)))
    for name, (short, parser) in cmds.items():
        notes_path = os.path.join(config.docs_dir, "_cli", f"{name}.md")
        notes = None
        if os.path.isfile(notes_path):
            with open(notes_path, encoding="utf-8") as fh:
                notes = fh.read()
        files.append(_generated(config, f"{CLI_DIR}/{name}.md", content=command_page(name, short, parser, notes)))
    for path in sorted(glob.glob(os.path.join(RESULTS, "*.json"))):
        files.append(_generated(config, "benchmarks/results/" + os.path.basename(path), abs_src_path=path))
    throughput = os.path.join(RESULTS, "throughput-epyc-quiet.json")
    if os.path.isfile(throughput):
        files.append(_generated(config, "images/bench/throughput.png", content=_figure(throughput_figure, throughput)))
    speed = tuple(sorted(glob.glob(os.path.join(RESULTS, "cifar_speed*.json"))))
    if speed:
        files.append(_generated(config, "images/bench/cifar_speed.png", content=_figure(cifar_speed_figure, speed)))
    return files


_FIGURES: dict = {}


def _figure(draw, paths) -> bytes:
    """A figure drawn once per `mkdocs build` (or `mkdocs serve` rebuild, which loads the hooks afresh), though
    each language's build asks for it."""
    key = (draw.__name__, paths)
    if key not in _FIGURES:
        _FIGURES[key] = draw(paths)
    return _FIGURES[key]


def on_page_markdown(markdown, page, config, files, **kwargs):
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown


@event_priority(-200)  # after the i18n plugin's page context
def on_page_context(context, page, config, nav, **kwargs):
    """The language switch links each page to its own other edition, by a relative link. The i18n plugin
    (which runs before this hook) leaves the home pages' links absolute ("/zh/"), which break when the site
    is opened from its files or served under a sub-path."""
    alternates = getattr(page.file, "alternates", None)
    # the plugin sets config.extra.alternate as an attribute (which the theme's template reads), not as an item
    for entry in getattr(config.extra, "alternate", None) or [] if alternates else []:
        edition = alternates.get(entry.get("lang"))
        if edition is not None:
            entry["link"] = edition.url
    return context


def on_template_context(context, template_name, config, **kwargs):
    """The 404 page (served at any path, so its links are absolute) switches to each language's home page,
    not to the editions of the page built last."""
    i18n = config.plugins.get("i18n")
    if template_name == "404.html" and i18n is not None:
        config.extra.alternate = [{"name": lang.name, "link": lang.link, "lang": lang.locale}
                                  for lang in i18n.config.languages if lang.build]
    return context
