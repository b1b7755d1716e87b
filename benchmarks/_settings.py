"""
How big each benchmark is: the full suite, sized for a few minutes on
two cores, and a quick smoke run that only shows the harness works.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Settings:
    """
    Counts and limits for one run of the suite.

    *counts* gives the rotations per run of each contender: the slow
    ones do fewer, so that every run takes one to three seconds, and
    their rates and CPU per rotation are reported per rotation all the
    same.  Times are in seconds.
    """

    quick: bool
    pairs: int
    counts: dict[str, int]
    concurrency: int = 64
    latency: float = 0.05
    latency_count: int = 2000
    latency_concurrency: int = 20
    memory_counts: tuple[int, int] = (10_000, 100_000)
    pace_limit: float = 50.0
    pace_count: int = 270
    pace_runs: int = 2
    import_runs: int = 7
    import_modules: tuple[str, ...] = ("nylas_async", "aiohttp")
    time_limit: float = 60.0
    contenders: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.contenders:
            object.__setattr__(self, "contenders", tuple(self.counts))


FULL = Settings(
    quick=False,
    pairs=7,
    counts={
        "aiohttp": 3000,
        "single": 3000,
        "batch": 3000,
        "httpx": 300,
        "sdk": 300,
        "sdk16": 500,
    },
    import_modules=("nylas_async", "aiohttp", "httpx", "nylas"),
)

QUICK = Settings(
    quick=True,
    pairs=1,
    counts={
        "aiohttp": 40,
        "single": 40,
        "batch": 40,
        "httpx": 20,
        "sdk": 10,
        "sdk16": 20,
    },
    concurrency=8,
    latency=0.01,
    latency_count=40,
    latency_concurrency=8,
    memory_counts=(100, 400),
    pace_count=20,
    pace_runs=1,
    import_runs=1,
    time_limit=30.0,
)


def without(settings: Settings, missing: set[str]) -> Settings:
    """*settings* less the contenders whose libraries are missing."""
    kept = tuple(c for c in settings.contenders if c not in missing)

    return replace(settings, contenders=kept)
