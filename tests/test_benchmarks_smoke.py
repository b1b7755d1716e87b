"""
The benchmark harness runs end to end in quick mode.

Only behaviour is checked: the suite starts its fakes and contenders,
and writes its table and chart.  Timing never goes into the tests.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("matplotlib") is None,
        reason="the benchmark extra is not installed",
    ),
]


def test_quick_run_writes_results_and_chart(tmp_path: Path) -> None:
    """A quick run writes RESULTS.md with every section, and the chart."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", tmp_path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    text = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    for heading in (
        "## Goals (issue 5)",
        "## 1. Throughput",
        "## 2. Latency-bound",
        "## 3. Memory",
        "## 4. Pacing",
        "## 5. Import time",
        "Quick mode",
    ):
        assert heading in text
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")
