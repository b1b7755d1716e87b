"""
Batch rotation over loopback against the fake Nylas: the invariant.

Every id ends with exactly one outcome; every ``rotated`` secret, in
the outcome and in the journal, is the fake's current secret; every
``failed`` id was never rotated.  Faults come from the fake, at random
with a fixed seed or scripted.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from nylas_async import (
    BatchSummary,
    Client,
    Outcome,
    RetryBudget,
    RetryPolicy,
    RotationOutcome,
    Timeouts,
    read_journal,
)
from nylas_async.testing import FakeNylas, FakeServer, Fault, RandomFaults

KEY = "nyk_batch_test"
FAST = RetryPolicy(initial=0.01, maximum=0.05)

#: The default mix plus HTTP-date 429s, replies slower than the client's
#: attempt timeout, and damaged 200 bodies (a truncated one may hold
#: the new secret, which no error text may then show).
MIX = {
    "rate_limited": 1.0,
    "rate_limited_retry_after": 1.0,
    "rate_limited_http_date": 0.5,
    "server_error_500": 1.0,
    "server_error_503": 1.0,
    "server_error_502_html": 1.0,
    "server_error_500_after_commit": 1.0,
    "drop_before_commit": 1.0,
    "drop_after_commit": 1.0,
    "slow": 0.5,
    "bad_body_truncated": 0.5,
    "bad_body_not_json": 0.5,
}

Arrivals = list[tuple[float, int]]


def _recording(fake: FakeNylas) -> Arrivals:
    """Record when each request arrived at *fake* and its status."""
    arrivals: Arrivals = []

    @web.middleware
    async def record(
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        arrived = time.monotonic()
        response = await handler(request)
        arrivals.append((arrived, response.status))
        return response

    fake.app.middlewares.append(record)
    return arrivals


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal.jsonl"


async def _run(
    client: Client, ids: list[str], **options: object
) -> tuple[list[RotationOutcome], BatchSummary]:
    batch = client.webhooks.rotate_secrets(ids, **options)  # type: ignore[arg-type]
    async with batch:
        outcomes = [outcome async for outcome in batch]

    return outcomes, batch.summary


def _check_invariant(
    fake: FakeNylas, outcomes: list[RotationOutcome], journal: Path
) -> None:
    """
    Each outcome agrees with the fake and the journal; a skipped id's
    journaled secret is still the fake's.
    """
    latest = read_journal(journal)
    secrets = {fake.secret_of(w) for w in fake.webhook_ids}
    for outcome in outcomes:
        record = latest[outcome.webhook_id]
        if outcome.outcome == Outcome.SKIPPED:
            current = fake.secret_of(outcome.webhook_id)
            assert record.outcome == "rotated"
            assert record.webhook_secret == current
            continue
        assert record.outcome == outcome.outcome
        text = f"{outcome.error} {record.error} {outcome!r} {record!r}"
        assert not any(secret in text for secret in secrets)
        if outcome.outcome == Outcome.ROTATED:
            current = fake.secret_of(outcome.webhook_id)
            assert outcome.webhook_secret == current
            assert record.webhook_secret == current
        else:
            assert outcome.webhook_secret is None
            assert record.webhook_secret is None
        if outcome.outcome == Outcome.FAILED:
            assert fake.rotations_of(outcome.webhook_id) == 0


class TestInvariantUnderFaults:
    async def test_two_thousand_ids(self, journal: Path) -> None:
        """
        2,000 ids under a fault mix each end once, consistently with the
        fake, and resuming settles every one of them.
        """
        # A fault on 30% of requests spends the retry budget, so that
        # some ids end unknown and the resumes have work to do.
        faults = RandomFaults(
            0.3, seed=20250101, weights=MIX, slow_seconds=1.0
        )
        fake = FakeNylas(KEY, random_faults=faults)
        real = [fake.add_webhook() for _ in range(2000)]
        missing = [f"gone{number:03d}" for number in range(10)]
        ids = [*real, *missing, *real[:25], "not/an/id"]

        async with (
            FakeServer(fake) as server,
            Client(
                api_key=KEY,
                api_uri=server.url,
                retry=RetryPolicy(attempts=4, testing=True),
                timeouts=Timeouts(connect=2, attempt=0.3),
                rate_limit=None,
            ) as client,
        ):
            started = time.monotonic()
            outcomes, summary = await _run(
                client, ids, concurrency=32, journal=journal
            )
            elapsed = time.monotonic() - started

            assert Counter(o.webhook_id for o in outcomes) == Counter(
                [*real, *missing, "not/an/id"]
            )
            _check_invariant(fake, outcomes, journal)
            by_kind = Counter(o.outcome for o in outcomes)
            assert by_kind[Outcome.ROTATED] > 1500
            assert by_kind[Outcome.UNKNOWN] > 0
            assert len(fake.requests) < 1.5 * len(real)
            assert summary.duplicates == 25
            assert summary.total == len(outcomes) == 2011
            assert summary.retries_by_reason
            assert elapsed < 30

            for _ in range(5):
                left = [
                    w
                    for w, r in read_journal(journal).items()
                    if not r.settled
                ]
                if not left:
                    break
                again, _ = await _run(
                    client, ids, concurrency=32, journal=journal, resume=True
                )
                _check_invariant(fake, again, journal)
                redone = {
                    o.webhook_id for o in again if o.outcome != "skipped"
                }
                assert set(left) <= redone
            else:
                pytest.fail(f"{len(left)} ids still unsettled after resuming")

        latest = read_journal(journal)
        for webhook_id in real:
            assert latest[webhook_id].outcome == "rotated"
            assert latest[webhook_id].webhook_secret == fake.secret_of(
                webhook_id
            )
        assert all(latest[w].outcome == "failed" for w in missing)


class TestRetryBudget:
    async def test_storm_does_not_multiply_load(self) -> None:
        """
        When every request fails, the shared budget holds the retries to
        its reserve: about one request per id, not one per attempt.
        """
        storm = RandomFaults(1.0, seed=1, weights={"server_error_503": 1})
        fake = FakeNylas(KEY, random_faults=storm)
        ids = [fake.add_webhook() for _ in range(200)]

        async with (
            FakeServer(fake) as server,
            Client(
                api_key=KEY,
                api_uri=server.url,
                retry=RetryPolicy(testing=True),
                rate_limit=None,
            ) as client,
        ):
            outcomes, summary = await _run(
                client,
                ids,
                concurrency=16,
                retry_budget=RetryBudget(reserve=10),
            )

        assert {o.outcome for o in outcomes} == {Outcome.UNKNOWN}
        assert len(fake.requests) == 200 + 10
        assert summary.retries_by_reason == {"status 503": 10}


class TestPacing:
    async def test_pace_stays_under_rate(self, journal: Path) -> None:
        """Across all workers, requests never outrun the client's rate."""
        fake = FakeNylas(KEY)
        arrivals = _recording(fake)
        ids = [fake.add_webhook() for _ in range(150)]
        rate = 100.0

        async with (
            FakeServer(fake) as server,
            Client(
                api_key=KEY, api_uri=server.url, retry=FAST, rate_limit=rate
            ) as client,
        ):
            outcomes, _ = await _run(client, ids, concurrency=32)

        assert len(outcomes) == 150
        times = sorted(t for t, _ in arrivals)
        # aiolimiter admits a burst of *rate* requests, then *rate* per
        # second.  Arrival at the server lags admission by up to a few
        # tens of ms (connections open in this same loop): hence *slack*.
        slack = 0.05
        for i, first in enumerate(times):
            for j in range(i + 1, len(times)):
                allowed = rate * (times[j] - first + slack) + rate + 1
                assert j - i + 1 <= allowed
        assert times[-1] - times[0] >= (len(times) - rate - 1) / rate - slack

    async def test_one_429_pauses_all_workers(self) -> None:
        """A 429 with Retry-After holds every worker, not only its own."""
        fake = FakeNylas(KEY, latency=0.005)
        arrivals = _recording(fake)
        ids = [fake.add_webhook() for _ in range(60)]
        fake.inject(Fault.rate_limited(1), operation="rotate")

        async with (
            FakeServer(fake) as server,
            Client(
                api_key=KEY, api_uri=server.url, retry=FAST, rate_limit=None
            ) as client,
        ):
            outcomes, summary = await _run(client, ids, concurrency=8)

        assert {o.outcome for o in outcomes} == {Outcome.ROTATED}
        assert summary.retries_by_reason == {"status 429": 1}
        [limited] = [t for t, status in arrivals if status == 429]
        during = [
            t for t, _ in arrivals if limited + 0.05 < t < limited + 0.95
        ]
        assert during == []
        assert max(t for t, _ in arrivals) > limited + 0.95

    async def test_pace_adapts_to_server_limit(self) -> None:
        """
        Against a server that allows a quarter of the client's rate, the
        pace backs off; what fails was never rotated and may be retried.
        """
        fake = FakeNylas(KEY, rate_limit=30)
        arrivals = _recording(fake)
        ids = [fake.add_webhook() for _ in range(90)]
        paces: list[float | None] = []

        async with (
            FakeServer(fake) as server,
            Client(
                api_key=KEY,
                api_uri=server.url,
                retry=RetryPolicy(attempts=8, initial=0.01, maximum=0.05),
                rate_limit=120,
            ) as client,
        ):
            outcomes, summary = await _run(
                client,
                ids,
                concurrency=16,
                on_progress=lambda p: paces.append(p.pace),
            )

        reduced = [p for p in paces if p is not None]
        assert reduced
        assert min(reduced) <= 30
        assert summary.rotated > 80
        for outcome in outcomes:
            if outcome.outcome != Outcome.ROTATED:
                assert outcome.outcome == Outcome.FAILED
                assert outcome.transient
                assert fake.rotations_of(outcome.webhook_id) == 0
        # Halves of the time taken, not of the requests: once the pace
        # is cut, the later requests are spread over a longer time.
        middle = (arrivals[0][0] + arrivals[-1][0]) / 2
        early = sum(s == 429 for t, s in arrivals if t < middle)
        late = sum(s == 429 for t, s in arrivals if t >= middle)
        assert late < early


class TestCancellation:
    async def test_cancel_then_resume(self, journal: Path) -> None:
        """
        Requests cut by closing end unknown, though the fake rotated
        them; resuming rotates them again and the journal is right.
        """
        fake = FakeNylas(KEY)
        ids = [fake.add_webhook() for _ in range(20)]
        fake.inject(*[Fault.slow(10)] * 4, operation="rotate")

        async with (
            FakeServer(fake) as server,
            Client(
                api_key=KEY, api_uri=server.url, retry=FAST, rate_limit=None
            ) as client,
        ):
            batch = client.webhooks.rotate_secrets(
                ids, concurrency=4, journal=journal, grace=0.2
            )
            async with batch:
                while len(fake.requests) < 4:  # noqa: ASYNC110 -- fake
                    await asyncio.sleep(0.005)
                await asyncio.sleep(0.05)
            cut = {w for w, r in read_journal(journal).items()}
            assert batch.summary.unknown == batch.summary.total == 4
            assert all(fake.rotations_of(w) == 1 for w in cut)

            outcomes, summary = await _run(
                client, ids, concurrency=4, journal=journal, resume=True
            )

        assert summary.rotated == 20
        _check_invariant(fake, outcomes, journal)
        assert all(fake.rotations_of(w) == 2 for w in cut)


@pytest.fixture
async def quiet_server() -> AsyncIterator[tuple[FakeNylas, str]]:
    fake = FakeNylas(KEY)
    async with FakeServer(fake) as server:
        yield fake, server.url


class TestJournalFile:
    async def test_journal_mode(
        self, quiet_server: tuple[FakeNylas, str], journal: Path
    ) -> None:
        """The journal a batch creates is readable by its owner only."""
        fake, url = quiet_server
        ids = [fake.add_webhook() for _ in range(3)]

        async with Client(api_key=KEY, api_uri=url, rate_limit=None) as c:
            await _run(c, ids, journal=journal)

        assert os.stat(journal).st_mode & 0o777 == 0o600
