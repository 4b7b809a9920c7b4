"""examples/course_workflow.ipynb runs top to bottom on a python3 kernel (nbclient), in a temporary folder."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "course_workflow.ipynb"


def _generator():
    spec = importlib.util.spec_from_file_location("make_course_workflow", REPO / "examples" / "make_course_workflow.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cells(nb):
    return [(c.cell_type, c.source) for c in nb.cells]


def test_notebook_matches_its_generator():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert _cells(nb) == _cells(_generator().build()), "run `python examples/make_course_workflow.py`"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook unexecuted"


def test_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # the kernel is a child process: it inherits this environment (this checkout's code, one thread, Agg)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "src")] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "torch.Size([64, 10])" in text
    assert "accuracy" in text
    assert (tmp_path / "runs" / "course" / "best.pt").is_file()
    assert (tmp_path / "preview.png").is_file()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # rich results (_repr_html_): the run, the evaluation, the predictions, the report; the bar is a widget
    rich = "\n".join(o.get("data", {}).get("text/html", "") for c in nb.cells for o in c.get("outputs", []))
    for marker in ("tudui-train", "best.pt", "tudui-eval", "confusion", "tudui-predictions", "much brighter",
                   "<iframe srcdoc="):
        assert marker in rich, marker
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for c in nb.cells for o in c.get("outputs", [])), "the progress bar is a notebook widget"
