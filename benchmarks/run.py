"""
Run the benchmark suite and write ``RESULTS.md`` and ``results.png``.

Measures nylas-async against a raw aiohttp loop, httpx and the
official ``nylas`` SDK, against the fake Nylas in a separate process
on 127.0.0.1: throughput and CPU per rotation, a latency-bound batch,
the memory of large batches, pacing against an enforced limit, and
import time (see each ``bench_*`` module).  The full suite takes a few
minutes on two cores; ``--quick`` runs tiny counts in seconds, to show
that the harness works, and its figures mean nothing.

Usage: ``python -m benchmarks.run [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import pickle
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
    __package__ = "benchmarks"

from . import (
    bench_import,
    bench_instructions,
    bench_latency,
    bench_memory,
    bench_pacing,
    bench_throughput,
)
from ._harness import ROOT
from ._report import chart, render
from ._settings import FULL, QUICK, Settings, without

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHES: dict[str, Callable[..., dict[str, Any]]] = {
    "throughput": bench_throughput.run,
    "latency": bench_latency.run,
    "pacing": bench_pacing.run,
    "memory": bench_memory.run,
    "imports": bench_import.run,
}


def _missing() -> set[str]:
    """The contenders whose libraries are not installed."""
    missing = set()
    if importlib.util.find_spec("httpx") is None:
        missing.add("httpx")
    if importlib.util.find_spec("nylas") is None:
        missing |= {"sdk", "sdk16"}
    from nylas_async._webhooks import Webhooks

    if not hasattr(Webhooks, "rotate_secrets"):
        missing.add("batch")

    return missing


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _git() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
            timeout=10,
        )
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "nylas_async")

    return commit + (" (nylas_async has uncommitted changes)" if dirty else "")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass

    return platform.processor() or "unknown"


def header(
    argv: list[str],
    took: float,
    load: tuple[float, ...],
    end_load: tuple[float, ...],
) -> list[str]:
    """The command, versions and machine, as Markdown lines."""
    command = "python -m benchmarks.run"
    if argv:
        command += " " + shlex.join(argv)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    packages = ", ".join(
        f"{name} {_version(name)}"
        for name in ("nylas-async", "aiohttp", "httpx", "nylas", "requests")
    )
    loads = "/".join(f"{x:.2f}" for x in load)
    ended = "/".join(f"{x:.2f}" for x in end_load)

    return [
        f"Command: `{command}` (from the repository root, in its venv); "
        f"run {now}, took {took / 60:.1f} min; commit {_git()}.",
        "",
        f"Versions: Python {platform.python_version()}, {packages}.",
        "",
        f"Machine: {_cpu_model()}, {os.cpu_count()} logical CPUs, "
        f"{platform.system()} {platform.release()}; load average "
        f"{loads} at the start and {ended} at the end (1/5/15 min).  "
        "The fake runs in its own process, so client and server share "
        "the two cores.",
    ]


def notes(settings: Settings, missing: set[str], shared: bool) -> list[str]:
    """What a reader needs to judge the figures."""
    found = [
        "- Every contender runs in a fresh process; its CPU is the "
        "user+sys time of the rotation loop (imports left out), its "
        "peak RSS the process's `ru_maxrss` (imports included).",
        "- The raw aiohttp loop and httpx read the secret out of the "
        "JSON reply and nothing else: no retries, no models, no "
        "request ids.  httpx's keep-alive pool is sized to the "
        "requests in flight; it needs `sniffio` installed, without "
        "which httpcore retries a failing import on every lock it "
        "makes and runs several times slower.  httpx is slow at high "
        "concurrency in any case (encode/httpx#3215).",
        "- The official SDK opens a new connection per request "
        "(`requests.request`, no session), as it does in real use.  "
        "It is driven through `http_client._execute` with the "
        "documented `POST /v3/webhooks/rotate-secret/{id}`; its "
        "`Response.from_dict` raises KeyError on the documented rotate "
        "reply (no timestamps), so the reply is decoded with its own "
        "model and `infer_missing=True`.",
        "- The slower contenders rotate fewer ids per run ("
        + ", ".join(f"{n} {c:,}" for n, c in settings.counts.items() if c)
        + ") so that each run takes a second or a few; rates and CPU "
        "are per rotation, so the figures compare directly.",
    ]
    if missing:
        found.append(
            "- Not run (left out, or their libraries missing): "
            + ", ".join(sorted(missing))
            + "."
        )
    if shared:
        found.append(
            "- The machine was shared with other work during the run "
            "(see the load average); the pairs and the A/A calibration "
            "are there for this reason."
        )
    if settings.quick:
        found.insert(
            0,
            "- **Quick mode: tiny counts, one pair; these figures only "
            "show that the harness runs and mean nothing.**",
        )

    return found


def _analysis() -> list[str]:
    """The hand-written analysis in ANALYSIS.md, if there is one."""
    path = os.path.join(HERE, "ANALYSIS.md")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as file:
        return file.read().rstrip().splitlines()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts: a smoke run"
    )
    parser.add_argument(
        "--out", default=HERE, help="where RESULTS.md and results.png go"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHES),
        help="run only these benchmarks (repeatable)",
    )
    parser.add_argument(
        "--shared",
        action="store_true",
        help="say in the results that the machine was shared",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions per rotation under valgrind "
        "(a few minutes more)",
    )
    parser.add_argument(
        "--keep",
        metavar="FILE",
        help="also pickle the raw measures to FILE",
    )
    parser.add_argument(
        "--render",
        metavar="FILE",
        help="measure nothing: write the outputs from a --keep FILE",
    )
    parser.add_argument(
        "--contenders",
        help="a comma-separated subset of: " + ", ".join(FULL.counts),
    )
    parser.add_argument(
        "--pairs", type=int, help="pairs per comparison (7; quick 1)"
    )
    args = parser.parse_args(argv)

    settings = QUICK if args.quick else FULL
    missing = _missing()
    if args.contenders:
        wanted = set(args.contenders.split(","))
        missing |= set(settings.counts) - wanted - {"aiohttp"}
    settings = without(settings, missing)
    if args.pairs:
        settings = replace(settings, pairs=args.pairs)
    started, load = time.monotonic(), os.getloadavg()

    def progress(message: str) -> None:
        took = time.monotonic() - started
        print(f"[{took:6.1f}s] {message}", file=sys.stderr, flush=True)

    results: dict[str, Any] = {}
    if args.render:
        with open(args.render, "rb") as file:
            results, argv, took, load, end_load = pickle.load(file)
    with tempfile.TemporaryDirectory(prefix="nylas-async-bench-") as work:
        for name, bench in BENCHES.items():
            if args.render or (args.only and name not in args.only):
                continue
            progress(f"{name} ...")
            results[name] = bench(settings, work, progress)
        if args.render:
            pass
        elif args.instructions and bench_instructions.available():
            progress("instructions ...")
            results["instructions"] = bench_instructions.run(
                settings, work, progress
            )
        elif args.instructions:
            progress("valgrind is not installed: no instruction counts")

    if not args.render:
        took, end_load = time.monotonic() - started, os.getloadavg()
    if args.keep:
        with open(args.keep, "wb") as file:
            kept = (results, argv, took, load, end_load)
            pickle.dump(kept, file)
    os.makedirs(args.out, exist_ok=True)
    text = render(
        results,
        header(argv, took, load, end_load),
        notes(settings, missing, args.shared or load[0] > 0.5),
        analysis=None if settings.quick else _analysis(),
    )
    path = os.path.join(args.out, "RESULTS.md")
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
    progress(f"wrote {path}")
    if results.get("throughput"):
        if importlib.util.find_spec("matplotlib") is None:
            progress("matplotlib is not installed: no chart")
        else:
            png = os.path.join(args.out, "results.png")
            chart(results, png)
            progress(f"wrote {png}")

    return 0


if __name__ == "__main__":
    sys.exit(main())
