"""
Throughput and client CPU per rotation, many rotations in flight.

Measures rotations per second and the client process's user+sys CPU
seconds per rotation for every contender in `benchmarks._contenders`,
against the fake Nylas (no latency, no rate limit) in another process.
Each contender is compared with raw aiohttp, the floor for this stack,
and nylas-async also with the official SDK on 16 threads, in
alternating pairs; nylas-async single calls against themselves (A/A)
show how far the noise alone moves a ratio.  nylas-async runs with
pacing off (``rate_limit=None``), since the fake does not limit here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._harness import Pairs, fake_server, run_contender, run_pairs
from ._settings import Settings

BASELINE = "aiohttp"
SDK_THREADS = "sdk16"


def comparisons(settings: Settings) -> list[tuple[str, str]]:
    """The pairs to run: everyone against raw aiohttp, nylas-async
    against the SDK's threads, and nylas-async against itself."""
    ours = [c for c in ("single", "batch") if c in settings.contenders]
    others = [c for c in settings.contenders if c != BASELINE]
    found = [(c, BASELINE) for c in others]
    if SDK_THREADS in settings.contenders:
        found += [(c, SDK_THREADS) for c in ours]

    return [*found, ("single", "single")]


def run(
    settings: Settings, workdir: str, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Run the pairs; return them with the settings used."""
    seed = max(settings.counts.values())
    with fake_server(workdir, seed=seed) as fake:

        def one(name: str) -> dict[str, Any]:
            return run_contender(
                name,
                fake,
                count=settings.counts[name],
                concurrency=settings.concurrency,
                time_limit=settings.time_limit,
            )

        wanted = comparisons(settings)
        plan: list[tuple[str, str, Callable[[str], dict[str, Any]]]] = [
            (a, b, one) for a, b in wanted
        ]
        results: list[Pairs] = run_pairs(plan, settings.pairs, progress)

    return {
        "pairs": results,
        "counts": dict(settings.counts),
        "concurrency": settings.concurrency,
    }
