"""
Memory: the peak RSS of a batch rotation as the number of ids grows.

Rotates 10,000 and then 100,000 ids with the nylas-async batch, the
ids streamed from a file, the journal on and 64 in flight, and
compares the peak RSS (``ru_maxrss``) of the two client processes.
The fake is seeded with every id so that each rotation succeeds and
its secret reaches the journal, as in real use: unknown ids would
take the cheaper failure path and flatter the figure.  The fake's own
memory is in its own process and not counted.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ._harness import fake_server, run_contender
from ._settings import Settings


def run(
    settings: Settings, workdir: str, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Run one batch per size; return their measures by size."""
    small, large = settings.memory_counts
    runs: dict[int, dict[str, Any]] = {}
    with fake_server(workdir, seed=large, start_timeout=180) as fake:
        for count in (small, large):
            journal = os.path.join(workdir, f"journal-{count}.jsonl")
            runs[count] = run_contender(
                "batch",
                fake,
                count=count,
                concurrency=settings.concurrency,
                journal=journal,
                time_limit=max(settings.time_limit, 180.0),
            )
            os.remove(journal)
            peak = runs[count]["peak_rss_kib"] / 1024
            progress(f"batch of {count} ids with a journal: {peak:.1f} MiB")

    return {"runs": runs, "concurrency": settings.concurrency}
