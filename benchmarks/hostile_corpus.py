"""Hostile input at scale: 1,000+ generated hostile files (tests/hostile.py, 30 kinds in their real formats)
through `tudui stats`, `tudui train` (memory and stream loaders) and `tudui predict`, each a separate process
with a time limit. Records the files tried, the failures (must be 0), wall time and peak RSS of each command.

A failure is: a non-zero exit, a timeout (a hang), a bad file not reported exactly once, a good file reported
as unreadable, or predict results that do not cover every listed file.

    cpu-bench python benchmarks/hostile_corpus.py --files 1000 --save benchmarks/results/hostile_corpus.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, HERE)

import hostile  # noqa: E402
from _report import emit, machine  # noqa: E402

# runs a command and prints its peak RSS (its own process tree's, via RUSAGE_CHILDREN of this wrapper)
WRAP = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "sys.stderr.write('\\nPEAK_RSS_KB %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
        "sys.exit(r.returncode)")


def run(args, timeout):
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-c", WRAP, sys.executable, "-m", "tudui", *args], capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"rc": None, "timeout": True, "seconds": timeout, "peak_rss_mib": None}, "", ""
    rss = [ln for ln in p.stderr.splitlines() if ln.startswith("PEAK_RSS_KB ")]
    return {"rc": p.returncode, "timeout": False, "seconds": round(time.perf_counter() - t0, 2),
            "peak_rss_mib": round(int(rss[-1].split()[1]) / 1024, 1) if rss else None}, p.stdout, p.stderr


def check_listing(text: str, bad: set, ok: set, fmt: str) -> list:
    """Problems: a bad file not named exactly once, a good file named as unreadable."""
    problems = []
    for p in bad:
        n = text.count(fmt.format(p))
        if n != 1:
            problems.append(f"bad file reported {n} times: {p}")
    problems += [f"good file reported unreadable: {p}" for p in ok if fmt.format(p) in text]
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--timeout", type=int, default=240, help="seconds each command may take")
    ap.add_argument("--save", default=None)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="tudui-hostile-")
    t0 = time.perf_counter()
    files = hostile.make_corpus(os.path.join(root, "data"), n=a.files, seed=0)
    made = time.perf_counter() - t0
    data = os.path.join(root, "data")
    bad = {p for p, _, e in files if e == "bad"}
    ok = {p for p, _, e in files if e == "ok"}
    env_cache = ["--cache-dir", os.path.join(root, "cache")]
    results, failures = {}, []

    base, _, _ = run(["--version"], a.timeout)  # `python -m tudui` imports torch: the floor of every figure
    r, out, err = run(["stats", data], a.timeout)
    results["stats"] = r
    failures += check_listing(out, bad, ok, "  {}: ")

    for loader in ("memory", "stream"):
        r, out, err = run(["train", "--data", data, "--epochs", "1", "--img-size", "32", "--batch-size", "32",
                           "--out", os.path.join(root, "runs"), "--name", loader, "--threads", "1", "--no-progress",
                           "--loader", loader, *env_cache], a.timeout)
        results[f"train_{loader}"] = r
        failures += [f"train {loader}: {f}" for f in check_listing(err, bad, ok, "  {}: ")]

    r, out, err = run(["predict", os.path.join(root, "runs", "memory", "best.pt"), data, "--json"], a.timeout)
    results["predict"] = r
    try:
        preds = json.loads(out)
        errors = {x["path"]: x["error"] for x in preds if "error" in x}
        if {x["path"] for x in preds} != ok | bad:
            failures.append("predict: results do not cover exactly the listed files")
        if set(errors) != bad or not all(errors.values()):
            failures.append(f"predict: {len(set(errors) ^ bad)} files misreported")
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        failures.append(f"predict: no JSON ({type(e).__name__})")
    for name, r in results.items():
        if r["timeout"]:
            failures.append(f"{name}: timed out after {a.timeout} s")
        elif r["rc"] != 0:
            failures.append(f"{name}: exit code {r['rc']}")
    hostile.restore_permissions(root)
    kinds = {}
    for _, k, e in files:
        kinds.setdefault(k, {"files": 0, "expect": e})["files"] += 1
    emit({"benchmark": "hostile_corpus", "command": " ".join(["python", "benchmarks/hostile_corpus.py"] + sys.argv[1:]),
          "machine": machine(), "files_tried": len(files), "bad_files": len(bad), "good_files": len(ok),
          "kinds": kinds, "corpus_seconds": round(made, 1), "commands": results,
          "baseline_peak_rss_mib": base["peak_rss_mib"], "failures": len(failures),
          "failure_list": failures[:50], "ran_as_root": os.geteuid() == 0,
          "note": "as root, chmod 000 files are readable, so they count as good files"}, a.save)
    import shutil
    shutil.rmtree(root, ignore_errors=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
