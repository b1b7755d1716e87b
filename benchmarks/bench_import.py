"""
Import time: ``import nylas_async`` against ``import aiohttp`` (and,
for context, httpx and the official SDK).

Each import runs in a fresh interpreter under ``python -X importtime``
and the cumulative time of the top-level module is read from its
report, so interpreter start-up is left out.  The modules take turns,
the order reversed each round, and the median of the rounds is
reported with its range.  nylas-async imports aiohttp, so its figure
includes aiohttp's.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

from ._harness import ROOT, BenchError, Spread
from ._settings import Settings


def import_time(module: str) -> float:
    """Seconds a fresh interpreter takes to import *module*."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"cannot import {module}:\n{done.stderr[-2000:]}")
    for line in reversed(done.stderr.splitlines()):
        _, _, report = line.partition("import time:")
        fields = [f.strip() for f in report.split("|")]
        if len(fields) == 3 and fields[2] == module:
            return int(fields[1]) / 1e6

    raise BenchError(f"no import time reported for {module}")


def run(
    settings: Settings, workdir: str, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Time each module's import; return the spread of each."""
    modules = list(settings.import_modules)
    times: dict[str, list[float]] = {m: [] for m in modules}
    for number in range(settings.import_runs):
        order = modules if number % 2 == 0 else modules[::-1]
        for module in order:
            times[module].append(import_time(module))
    spreads = {m: Spread.of(t) for m, t in times.items()}
    ratios = Spread.of(
        [
            a / b
            for a, b in zip(
                times["nylas_async"], times["aiohttp"], strict=True
            )
        ]
    )
    progress(
        f"import nylas_async {spreads['nylas_async'].median * 1e3:.0f} ms, "
        f"aiohttp {spreads['aiohttp'].median * 1e3:.0f} ms"
    )

    return {"times": spreads, "ratio": ratios}
