"""`tudui audit`: wrong labels (confident learning on out-of-sample probabilities), exact and near duplicates,
leaks between splits, outliers, class imbalance and odd or unreadable files, on a page with decisions that the
next `tudui train --decisions FILE` applies."""
from .core import AuditResult, audit
from .write import summary_text

__all__ = ["audit", "AuditResult", "summary_text"]
