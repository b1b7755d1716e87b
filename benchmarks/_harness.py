"""
The harness: the fake Nylas in a process of its own, contenders in
processes of their own, pairs run in alternating order, and the
statistics of their ratios.
"""

from __future__ import annotations

import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

from ._contenders import API_KEY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
URL_PREFIX = "Fake Nylas webhooks API listening on "
IDS_PREFIX = "Seeded webhooks: "


def _pinned(cpu: int) -> Callable[[], None] | None:
    """
    A ``preexec_fn`` that keeps a process on CPU *cpu*, or ``None``
    where that cannot be done.

    With the fake on one core and the contender on the other, neither
    takes the other's core or its caches; other work on the machine can
    still disturb both.
    """
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return None
    if os.environ.get("NYLAS_ASYNC_BENCH_PIN", "1") == "0":
        return None

    def pin() -> None:
        os.sched_setaffinity(0, {cpu})

    return pin


class BenchError(RuntimeError):
    """A benchmark could not run: the fake or a contender failed."""


@dataclass
class Fake:
    """A running fake: its base URL and a file of its seeded ids."""

    url: str
    ids_file: str
    count: int


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextmanager
def fake_server(
    workdir: str,
    *,
    seed: int,
    latency: float = 0.0,
    rate_limit: float | None = None,
    start_timeout: float = 120.0,
) -> Iterator[Fake]:
    """
    Run ``nylas-async fake-server`` on a free loopback port with *seed*
    destinations; yield its URL and ids; terminate it on exit.

    Waits at most *start_timeout* seconds for the URL and the ids.
    """
    command = [
        sys.executable,
        "-m",
        "nylas_async",
        "fake-server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--api-key",
        API_KEY,
        "--seed-webhooks",
        str(seed),
        "--latency",
        str(latency),
    ]
    if rate_limit is not None:
        command += ["--rate-limit", str(rate_limit)]
    with tempfile.TemporaryFile("w+", dir=workdir) as errors:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=_pinned(0),
        )
        try:
            yield _started(process, workdir, start_timeout)
        except BenchError:
            errors.seek(0)
            sys.stderr.write(errors.read()[-2000:])
            raise
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _started(
    process: subprocess.Popen[str], workdir: str, timeout: float
) -> Fake:
    """Wait for the fake's URL and ids; write the ids to a file."""
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(
        target=_pump, args=(process.stdout, lines), daemon=True
    ).start()
    url, ids = _await_start(lines, timeout)
    if not url.startswith("http://127.0.0.1:"):
        raise BenchError(f"the fake is not on loopback: {url}")
    ids_file = os.path.join(workdir, f"ids-{len(ids)}.txt")
    with open(ids_file, "w", encoding="ascii") as file:
        file.write("\n".join(ids) + "\n")

    return Fake(url, ids_file, len(ids))


def _await_start(
    lines: queue.Queue[str | None], timeout: float
) -> tuple[str, list[str]]:
    deadline = time.monotonic() + timeout
    url = None
    while True:
        left = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(0.0, left))
        except queue.Empty:
            raise BenchError(
                f"the fake did not start in {timeout:g}s"
            ) from None
        if line is None:
            raise BenchError("the fake exited before it was ready")
        if line.startswith(URL_PREFIX):
            url = line[len(URL_PREFIX) :].strip()
        elif line.startswith(IDS_PREFIX) and url is not None:
            listed = line[len(IDS_PREFIX) :].strip()
            ids = [] if listed == "-" else listed.split(", ")
            return url, ids


def run_contender(
    name: str,
    fake: Fake,
    *,
    count: int,
    concurrency: int = 64,
    rate_limit: str = "none",
    journal: str | None = None,
    times: bool = False,
    time_limit: float = 60.0,
    ids_file: str | None = None,
) -> dict[str, Any]:
    """
    Run contender *name* in a fresh process and return its measures.

    Raises `BenchError` when it fails, times out or rotates nothing.
    """
    command = [
        sys.executable,
        "-m",
        "benchmarks._contenders",
        name,
        "--url",
        fake.url,
        "--ids",
        ids_file or fake.ids_file,
        "--count",
        str(count),
        "--concurrency",
        str(concurrency),
        "--rate-limit",
        rate_limit,
        "--time-limit",
        str(time_limit),
    ]
    if journal is not None:
        command += ["--journal", journal]
    if times:
        command.append("--times")
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=time_limit + 30,
            check=False,
            preexec_fn=_pinned(1),
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{name} did not finish in time") from None
    if done.returncode != 0:
        raise BenchError(f"{name} failed:\n{done.stderr[-3000:]}")

    import json

    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["ok"] == 0:
        raise BenchError(f"{name} rotated nothing: {result}")
    result["throughput"] = result["count"] / result["elapsed"]
    result["cpu_per"] = result["cpu"] / result["count"]

    return result


@dataclass
class Spread:
    """The median of some values with their smallest and largest."""

    median: float
    low: float
    high: float
    values: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(
            statistics.median(values), min(values), max(values), list(values)
        )

    def within(self, other: Spread) -> bool:
        """Whether our median lies inside *other*'s range."""
        return other.low <= self.median <= other.high


@dataclass
class Pairs:
    """The runs of two contenders in alternating pairs."""

    a: str
    b: str
    runs: list[tuple[dict[str, Any], dict[str, Any]]]

    def ratio(self, key: str) -> Spread:
        """The median and range of a's *key* over b's, pair by pair."""
        return Spread.of([ra[key] / rb[key] for ra, rb in self.runs])


def run_pairs(
    comparisons: Sequence[tuple[str, str, Callable[[str], dict[str, Any]]]],
    pairs: int,
    progress: Callable[[str], None],
) -> list[Pairs]:
    """
    Run each comparison *pairs* times, rounds interleaved, with the
    order within a pair flipped each time (a then b, then b then a).

    Each comparison is ``(a, b, run)``, where ``run(name)`` runs one
    contender and returns its measures.
    """
    results = [Pairs(a, b, []) for a, b, _ in comparisons]
    for number in range(pairs):
        for index, (a, b, run) in enumerate(comparisons):
            first_a = (number + index) % 2 == 0
            if first_a:
                ra = run(a)
                rb = run(b)
            else:
                rb = run(b)
                ra = run(a)
            results[index].runs.append((ra, rb))
            progress(
                f"pair {number + 1}/{pairs} {a} vs {b}: "
                f"{ra['throughput']:.0f}/s vs {rb['throughput']:.0f}/s"
            )

    return results
