"""What a notebook shows for the objects the Python API returns (`_repr_html_`): a training run (its curves
and final numbers), an evaluation (metrics, per-class table and confusion matrix), a list of predictions
(each image's thumbnail with its top classes) and a report (the page itself, inline). Each is the plain
value it always was (a TrainResult, a dict, a list, a path string) that also knows how to draw itself."""
from __future__ import annotations

import dataclasses
import html as _html

import numpy as np

from ..engine.trainer import TrainResult

THUMB = 96  # px, the longer side of a prediction's thumbnail
REPORT_HEIGHT = 720  # px of the inline report's frame


def _e(v) -> str:
    return _html.escape(str(v))


def _figure(fig) -> str:
    from . import figures, html  # matplotlib: imported when a notebook draws, not with tudui
    if fig is None:
        return ""
    return f'<img alt="figure" style="max-width:100%" src="{html.data_uri(figures.png_bytes(fig))}">'


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


@dataclasses.dataclass
class TrainRun(TrainResult):
    """A TrainResult that a notebook shows as its curves and final numbers."""

    @classmethod
    def of(cls, result: TrainResult) -> "TrainRun":
        run = cls(**{f.name: getattr(result, f.name) for f in dataclasses.fields(result)})
        run.__dict__.update({k: v for k, v in vars(result).items() if k not in run.__dict__})
        return run

    def _repr_html_(self) -> str:
        from .figures import curves
        final, best = self.final, self.best
        facts = [("run folder", self.run_dir), ("epochs", final.get("epoch", 0)),
                 ("final val accuracy", _pct(final.get("val_acc"))),
                 ("best.pt", f"{_pct(best.get('val_acc'))} (epoch {best.get('epoch', '-')})"),
                 ("final train loss", f"{final['train_loss']:.4f}" if final.get("train_loss") is not None else "-")]
        if self.stopped_early:
            facts.append(("stopped", "early (no improvement)"))
        rows = "".join(f"<tr><th style='text-align:left'>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
        return f"<div class='tudui-train'><table>{rows}</table>{_figure(curves(self.history))}</div>"


class Evaluation(dict):
    """tudui.evaluate's dict, shown in a notebook as its metrics, per-class table and confusion matrix."""

    def _repr_html_(self) -> str:
        from .figures import confusion
        head = [("images", self.get("num_samples")), ("accuracy", _pct(self.get("accuracy")))]
        if "top5" in self:
            head.append(("top-5", _pct(self["top5"])))
        if self.get("loss") is not None:
            head.append(("loss", f"{self['loss']:.4f}"))
        line = " · ".join(f"<b>{_e(k)}</b> {_e(v)}" for k, v in head)
        per = self.get("per_class") or {}
        body = "".join(f"<tr><td>{_e(c)}</td><td>{m['precision']:.3f}</td><td>{m['recall']:.3f}</td>"
                       f"<td>{m['f1']:.3f}</td><td>{m['support']}</td></tr>" for c, m in per.items())
        table = ("<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>"
                 f"{body}</table>")
        cm = self.get("confusion_matrix")
        fig = confusion(np.asarray(cm), list(self.get("classes") or []))[0] if cm else None
        return (f"<div class='tudui-eval'><p>{_e(self.get('split', ''))} split: {line}</p>"
                f"<div style='display:flex;gap:1em;flex-wrap:wrap;align-items:flex-start'>{table}"
                f"<div style='max-width:480px'>{_figure(fig)}</div></div></div>")


def _thumbnail(path) -> str:
    from PIL import Image

    from .html import image_uri
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB, THUMB))
            return f'<img alt="" src="{image_uri(np.asarray(im), min_side=48)}" style="max-height:{THUMB}px">'
    except Exception:  # noqa: BLE001 - an unreadable file shows its error instead
        return ""


class Predictions(list):
    """tudui.predict's list, shown in a notebook as each image's thumbnail with its top classes."""

    def _repr_html_(self) -> str:
        cells = []
        for r in self:
            if "error" in r:
                text = f"<span style='color:#b00'>{_e(r['error'])}</span>"
            else:
                text = "<br>".join(f"{_e(t['label'])} <b>{t['prob']:.3f}</b>" for t in r["topk"])
                if r.get("note"):
                    text += f"<br><small style='color:#a60'>{_e(r['note'])}</small>"
            cells.append(f"<div style='display:inline-block;vertical-align:top;margin:4px;padding:6px;"
                         f"border:1px solid #ddd;border-radius:6px;max-width:220px'>{_thumbnail(r['path'])}"
                         f"<div><small>{_e(r['path'])}</small></div><div>{text}</div></div>")
        return f"<div class='tudui-predictions'>{''.join(cells)}</div>"


class ReportPage(str):
    """tudui.report's path, shown in a notebook as the page itself (inline frame)."""

    def _repr_html_(self) -> str:
        try:
            with open(self, encoding="utf-8") as fh:
                page = fh.read()
        except OSError as e:
            return f"<p>report {_e(self)}: {_e(e)}</p>"
        return (f"<p><small>{_e(self)}</small></p><iframe srcdoc=\"{_html.escape(page, quote=True)}\" "
                f"style='width:100%;height:{REPORT_HEIGHT}px;border:1px solid #ddd'></iframe>")
