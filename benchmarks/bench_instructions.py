"""
Instructions per rotation: the client's CPU work counted by valgrind
(callgrind), which other load on the machine cannot disturb.

Runs raw aiohttp, nylas-async single calls and the nylas-async batch
under ``valgrind --tool=callgrind`` at two counts against the fake, and
takes the difference, so that start-up and imports cancel out.  It
counts user-space instructions only: system calls, cache misses and
the kernel's share are left out, and the client runs some fifty times
slower than usual, so the event loop batches more work per turn than
it would at full speed.  It complements the CPU times, it does not
replace them.  Opt-in (``--instructions``): it takes a few minutes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from ._harness import ROOT, BenchError, fake_server
from ._settings import Settings

CONTENDERS = ("aiohttp", "single", "batch")


def available() -> bool:
    """Whether valgrind is installed."""
    return shutil.which("valgrind") is not None


def _instructions(name: str, url: str, ids: str, count: int) -> int:
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "benchmarks._contenders",
            name,
            "--url",
            url,
            "--ids",
            ids,
            "--count",
            str(count),
            "--time-limit",
            "300",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise BenchError(f"callgrind of {name} failed:\n{done.stderr[-2000:]}")

    return int(found.group(1))


def run(
    settings: Settings, workdir: str, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Count each contender's instructions; return them per rotation."""
    low, high = (50, 150) if settings.quick else (200, 800)
    names = [c for c in CONTENDERS if c in settings.contenders]
    per: dict[str, float] = {}
    with fake_server(workdir, seed=high) as fake:
        for name in names:
            counts = [
                _instructions(name, fake.url, fake.ids_file, n)
                for n in (low, high)
            ]
            per[name] = (counts[1] - counts[0]) / (high - low)
            progress(f"{name}: {per[name] / 1e3:,.0f} k instructions")

    return {"per_rotation": per, "counts": (low, high)}
