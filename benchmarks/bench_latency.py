"""
Latency-bound efficiency: how close a batch comes to the ideal time
when the server, not the processor, sets the pace.

The fake adds a fixed latency (50 ms) to every reply; 2,000 ids are
rotated with 20 in flight, so the ideal is N x latency / concurrency
= 5 s.  Measures the elapsed time of the nylas-async batch against
that ideal and against a raw aiohttp loop at the same settings, in
alternating pairs.  Pacing is off (``rate_limit=None``): the fake does
not limit here, and 400 requests a second would be far above the
default pace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._harness import fake_server, run_contender, run_pairs
from ._settings import Settings


def run(
    settings: Settings, workdir: str, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Run the pairs; return them with the ideal time."""
    ours = "batch" if "batch" in settings.contenders else "single"
    count = settings.latency_count
    with fake_server(workdir, seed=count, latency=settings.latency) as fake:

        def one(name: str) -> dict[str, Any]:
            return run_contender(
                name,
                fake,
                count=count,
                concurrency=settings.latency_concurrency,
                time_limit=settings.time_limit,
            )

        pairs = run_pairs([(ours, "aiohttp", one)], settings.pairs, progress)

    ideal = count * settings.latency / settings.latency_concurrency

    return {
        "pairs": pairs[0],
        "ideal": ideal,
        "count": count,
        "latency": settings.latency,
        "concurrency": settings.latency_concurrency,
    }
