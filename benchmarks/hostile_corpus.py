"""Hostile input at scale: 1,000+ generated hostile files (tests/hostile.py, 30 kinds in their real formats)
through `tudui stats`, `tudui train` (memory and stream loaders), `tudui predict`, `tudui report` and
`tudui serve`, each a separate process with a time limit. Records the files tried, the failures (must be 0), wall
time and peak RSS of each command.

A failure is: a non-zero exit, a timeout (a hang), a bad file not reported exactly once, a good file reported
as unreadable, predict results that do not cover every listed file; for serve (a real server on 127.0.0.1 at a
free port, each file a client can read POSTed once as the raw body): a 5xx, a request that hangs or fails, a
status other than 200 for a good file or the guards' 4xx for a bad one, a server that stops answering.

    cpu-bench python benchmarks/hostile_corpus.py --files 1000 --save benchmarks/results/hostile_corpus.json
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

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


def _request(url: str, data=None, timeout: float = 30.0):
    """-> (status, parsed JSON or None); status None when the request failed (connection, timeout)."""
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/octet-stream"} if data
                                 is not None else {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    except (OSError, urllib.error.URLError):
        return None, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def _peak_rss_mib(pid: int):
    """The process's own peak resident set (VmHWM), Linux /proc."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return round(int(next(ln for ln in fh if ln.startswith("VmHWM:")).split()[1]) / 1024, 1)
    except (OSError, StopIteration, ValueError):
        return None


def serve_corpus(ckpt: str, files: list, timeout: float) -> tuple:
    """A real `tudui serve` on a free port; each readable file POSTed once to /predict. -> (result, failures)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tudui", "serve", ckpt, "--port", str(port), "--threads", "1",
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    failures, statuses, posted, unreadable = [], {}, 0, 0
    deadline = time.monotonic() + timeout
    try:
        while _request(url + "/health", timeout=2)[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                return {"rc": proc.poll(), "timeout": proc.poll() is None, "peak_rss_mib": None,
                        "seconds": round(time.perf_counter() - t0, 2)}, ["serve: the server did not start"]
            time.sleep(0.2)
        started = time.perf_counter() - t0
        t1 = time.perf_counter()
        for path, kind, expect in files:
            if time.monotonic() > deadline:
                failures.append(f"serve: ran past {timeout} s after {posted} uploads")
                break
            data = hostile.client_bytes(path)
            if data is None:
                unreadable += 1
                continue
            name = urllib.parse.quote(os.path.basename(path))
            status, body = _request(f"{url}/predict?name={name}", data, timeout=30)
            posted += 1
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status is None:
                failures.append(f"serve: no answer (hang or dropped connection) for {kind}: {path}")
            elif status not in hostile.expected_status(kind, expect) or not isinstance(body, dict):
                failures.append(f"serve: {status} for {kind} ({expect}): {path}")
            elif expect == "bad" and not str(body.get("detail", "")).strip():
                failures.append(f"serve: {status} without a reason for {kind}: {path}")
        loop = time.perf_counter() - t1
        if _request(url + "/health", timeout=5)[0] != 200:
            failures.append("serve: the server stopped answering /health")
        rss = _peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    if "Traceback" in (err or ""):
        failures.append("serve: a traceback in the server's log")
    return {"rc": 0, "timeout": False, "seconds": round(time.perf_counter() - t0, 2), "peak_rss_mib": rss,
            "startup_seconds": round(started, 2), "upload_loop_seconds": round(loop, 2), "posted": posted,
            "not_uploadable": unreadable, "statuses": statuses}, failures


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

    # report: the held-out (val) split's bad files, each once as "path: reason" in the page, escaped
    from markupsafe import escape
    page = os.path.join(root, "report", "report.html")
    r, out, err = run(["report", os.path.join(root, "runs", "memory", "best.pt"), "--out", page], a.timeout)
    results["report"] = r
    val = os.sep + "val" + os.sep
    try:
        with open(page, encoding="utf-8") as fh:
            listed = fh.read().split('<ul class="skipped">', 1)[1].split("</ul>", 1)[0]
        failures += [f"report: {f}" for f in check_listing(listed, {str(escape(p)) for p in bad if val in p},
                                                           {str(escape(p)) for p in ok if val in p}, "<li>{}: ")]
    except (OSError, IndexError):
        failures.append("report: no page, or no list of skipped files in it")

    r, serve_failures = serve_corpus(os.path.join(root, "runs", "memory", "best.pt"), files, a.timeout)
    results["serve"] = r
    failures += serve_failures
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
