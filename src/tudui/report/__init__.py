"""See what a model learned: an HTML report (curves, confusion matrix, per-class table, the most confident
mistakes with Grad-CAM, calibration, dataset and run facts), `tudui runs` and `tudui compare`.

    import tudui
    html_path = tudui.report("runs/20250101-120000-1234")
"""
from __future__ import annotations


def report(path, data=None, **kwargs) -> str:
    """Write the HTML report of a run folder or checkpoint; returns its path (see tudui.report.build.report)."""
    from .build import report as _report  # import-time cost: matplotlib and captum, not at `import tudui`
    return _report(path, data, **kwargs)


__all__ = ["report"]
