"""`tudui audit DATA`: find wrong labels, duplicates, leaks, outliers and odd files (tudui.audit)."""
from __future__ import annotations

from .common import add_device, add_load_flags, print_json
from .train import add_config_flags, collect_overrides

SKIPPED = ("data", "device", "report", "out", "name")  # training keys that mean nothing (or else) here


def add_parser(sub, name):
    p = sub.add_parser(name, help="find wrong labels, duplicates, leaks between splits, outliers and odd files",
                       description="Audit a dataset: label issues from out-of-sample predictions (k-fold "
                                   "cross-validation, or --run for splits the run never trained on), exact and near "
                                   "duplicates, leaks between splits, outliers, class imbalance, odd and unreadable "
                                   "files. Writes OUT/audit.html (mark keep/relabel/drop and save decisions.csv), "
                                   "OUT/issues.csv and OUT/issues.json. Training flags (--epochs, --model, ...) set "
                                   "the cross-validation models.")
    p.add_argument("data", metavar="DATA", help="built-in name, image folder or labels CSV (as for tudui train)")
    p.add_argument("--out", default="audit", metavar="DIR", help="the audit folder (default: audit)")
    p.add_argument("--split", action="append", default=None, metavar="NAME",
                   help="audit the labels of this split (repeatable; default: every split)")
    p.add_argument("--run", default=None, metavar="RUN_DIR|CKPT",
                   help="a trained run whose model predicts the splits it never trained on (the training split "
                        "still gets cross-validation)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5; 0: none)")
    p.add_argument("--ensemble", type=int, default=1, metavar="N",
                   help="repeat the cross-validation N times with other seeds and average the probabilities "
                        "(N times the training; default: 1)")
    p.add_argument("--method", default="prune_by_noise_rate", choices=["prune_by_noise_rate", "confident_learning"],
                   help="confident-learning filter (default: prune_by_noise_rate)")
    p.add_argument("--ranking", default="self_confidence", choices=["self_confidence", "normalized_margin"],
                   help="order of the label issues (default: self_confidence)")
    p.add_argument("--near", default="phash", choices=["phash", "features", "both", "none"],
                   help="how near duplicates are found: perceptual hash, model features, either, or not at all "
                        "(default: phash)")
    p.add_argument("--phash-bits", type=int, default=16, metavar="N",
                   help="perceptual hashes at most N of 64 bits apart are near-duplicate candidates, kept when their "
                        "pixels correlate (default: 16)")
    p.add_argument("--min-corr", type=float, default=0.95, metavar="R",
                   help="pixel correlation from which a candidate pair is a near copy (default: 0.95; small "
                        "grayscale images such as digits correlate highly: 0.99 there)")
    p.add_argument("--feature-sim", type=float, default=0.97, metavar="S",
                   help="feature cosine similarity from which images are near duplicates (default: 0.97)")
    p.add_argument("--outlier-z", type=float, default=3.5, metavar="Z",
                   help="robust z-score of the neighbour distance from which an image is an outlier (default: 3.5)")
    p.add_argument("--top", type=int, default=60, metavar="N", help="cards per issue on the page (default: 60)")
    p.add_argument("--json", action="store_true", help="print the rows and summary as JSON on stdout")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="print no progress lines")
    p.add_argument("--config", default=None, help="YAML file of training options for the cross-validation models")
    add_load_flags(p)
    add_config_flags(p, skip=SKIPPED)
    add_device(p, default="auto")
    return p


def run(args):
    from ..api import audit
    from ..api import audit_summary as summary_text
    from ..errors import ConfigError
    options = {k: v for k, v in collect_overrides(args).items() if k not in SKIPPED}
    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    result = audit(args.data, out=args.out, split=args.split, run=args.run, folds=args.folds, ensemble=args.ensemble,
                   method=args.method, ranking=args.ranking, near=args.near, phash_bits=args.phash_bits,
                   feature_sim=args.feature_sim, min_corr=args.min_corr, outlier_z=args.outlier_z, top=args.top, device=args.device, config=args.config,
                   progress=args.progress, verify=args.verify, unsafe_load=args.unsafe_load, **options)
    if args.json:
        print_json({"summary": result.summary, "counts": result.counts(), "html": result.html,
                    "rows": [{k: v for k, v in r.items() if k not in ("row", "other_row")} for r in result.rows]})
    else:
        print(summary_text(result))
    return 0
