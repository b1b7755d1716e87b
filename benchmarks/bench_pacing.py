"""
Pacing: how much of an enforced rate limit a batch uses, and how often
it runs into it.

The fake admits 50 requests a second (a token bucket holding up to 50)
and answers 429 above that, as Nylas does for the webhooks API.  The
nylas-async batch, with the client's default ``rate_limit``, rotates a
few hundred ids; measured are the sustained rate (rotations finished
after the first second, over the time they took, so that the bursts
both sides allow at the start do not count) as a share of 50, the
overall rate, and the share of requests answered 429.  Each run gets
a fresh fake, so that no run starts with a bucket the last one
emptied.  Single calls from 64 tasks are run once for comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._harness import fake_server, run_contender
from ._settings import Settings

#: Rotations finished before this many seconds count only overall.
WARMUP = 1.0


def sustained_rate(done_at: list[float]) -> float | None:
    """Rotations per second after `WARMUP`; ``None`` if too few."""
    late = sorted(t for t in done_at if t >= WARMUP)
    if len(late) < 2 or late[-1] == late[0]:
        return None

    return (len(late) - 1) / (late[-1] - late[0])


def run(
    settings: Settings, workdir: str, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Run each paced contender; return their measures."""
    plan = []
    if "batch" in settings.contenders:
        plan += ["batch"] * settings.pace_runs
    plan.append("single")
    runs: list[dict[str, Any]] = []
    for name in plan:
        with fake_server(
            workdir, seed=settings.pace_count, rate_limit=settings.pace_limit
        ) as fake:
            result = run_contender(
                name,
                fake,
                count=settings.pace_count,
                concurrency=settings.concurrency,
                rate_limit="default",
                times=True,
                time_limit=settings.time_limit,
            )
        result["sustained"] = sustained_rate(result.pop("done_at"))
        result["share_429"] = result["rate_limited"] / result["requests"]
        runs.append(result)
        progress(
            f"paced {name}: {result['throughput']:.1f}/s overall, "
            f"{result['rate_limited']} answered 429"
        )

    return {"runs": runs, "limit": settings.pace_limit}
