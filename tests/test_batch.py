"""
Batch rotation against an in-process stand-in for the webhooks API.

These pin down the batch's own logic (workers, dedupe, journal order,
callbacks, canary, resume, cancellation, pacing state) without HTTP;
tests/test_batch_fake.py runs the same machinery over loopback against
the fake Nylas.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import logging
import os
import stat
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from nylas_async import (
    AuthenticationError,
    BatchProgress,
    Client,
    ClientClosedError,
    JournalError,
    NotFoundError,
    NylasError,
    Outcome,
    RateLimitedError,
    Response,
    RetryBudget,
    RetryPolicy,
    RotationBatch,
    RotationOutcome,
    SecretStateUnknownError,
    ServerError,
    StopReason,
    UsageError,
    WebhookWithSecret,
    _journal,
    read_journal,
)
from nylas_async._batch import MAX_CONCURRENCY, _Hooks, _Pace
from nylas_async._journal import JournalRecord, now


def _error(cls: type[NylasError], status: int) -> NylasError:
    return cls(  # type: ignore[call-arg]
        "boom",
        status=status,
        method="POST",
        path="/v3/webhooks/rotate-secret/x",
        client_request_id="c",
    )


def _unknown(webhook_id: str) -> SecretStateUnknownError:
    return SecretStateUnknownError(
        "lost",
        webhook_id=webhook_id,
        method="POST",
        path="/x",
        client_request_id="c",
    )


class Stub:
    """
    Rotates in memory like Nylas would, after *delay* seconds, failing
    with the errors queued per id; records calls and peak concurrency.
    """

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.secrets: dict[str, str] = {}
        self.calls: list[str] = []
        self.errors: dict[str, list[NylasError]] = {}
        self.active = 0
        self.peak = 0
        self.rotations = 0
        self.gate: asyncio.Event | None = None

    async def rotate_secret(
        self, webhook_id: str, *, retry: RetryPolicy | None = None
    ) -> Response[WebhookWithSecret]:
        self.calls.append(webhook_id)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(self.delay)
            queued = self.errors.get(webhook_id)
            if queued:
                raise queued.pop(0)
            self.rotations += 1
            secret = f"secret-{webhook_id}-{self.rotations}"
            self.secrets[webhook_id] = secret
            return Response(
                data=WebhookWithSecret(id=webhook_id, webhook_secret=secret),
                request_id=f"req-{self.rotations}",
                client_request_id=f"client-{self.rotations}",
            )
        finally:
            self.active -= 1


async def _collect(batch: RotationBatch) -> list[RotationOutcome]:
    async with batch:
        return [outcome async for outcome in batch]


async def _collect_into(
    batch: RotationBatch, outcomes: list[RotationOutcome]
) -> None:
    """Like `_collect`, keeping what came before an error."""
    async with batch:
        async for outcome in batch:
            outcomes.append(outcome)


def _ids(count: int) -> list[str]:
    return [f"wh{number:05d}" for number in range(count)]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal.jsonl"


@pytest.fixture
def shared_journal(journal: Path) -> Path:
    """An empty journal that other users may read."""
    journal.write_text("")
    journal.chmod(0o644)
    return journal


class TestRotateSecrets:
    async def test_returns_batch(self, client: Client) -> None:
        """The client method builds a batch without starting it."""
        batch = client.webhooks.rotate_secrets(["a"], concurrency=2)

        assert isinstance(batch, RotationBatch)
        assert "not started" in repr(batch)
        await batch.aclose()

    async def test_closed_client(self) -> None:
        """A closed client refuses to start a batch."""
        client = Client(api_key="k", api_uri="http://127.0.0.1:9")
        await client.aclose()

        with pytest.raises(ClientClosedError):
            client.webhooks.rotate_secrets(["a"])

    @pytest.mark.parametrize(
        ("ids", "options", "message"),
        [
            pytest.param("wh1", {}, "not one id", id="one-string"),
            pytest.param(5, {}, "iterable", id="not-iterable"),
            pytest.param([], {"concurrency": 0}, "concurrency", id="workers"),
            pytest.param([], {"canary": -1}, "canary", id="canary"),
            pytest.param([], {"grace": -1.0}, "grace", id="grace"),
            pytest.param([], {"resume": True}, "journal", id="resume"),
            pytest.param([], {"grace": "5"}, "grace", id="grace-str"),
            pytest.param([], {"grace": float("inf")}, "grace", id="grace-inf"),
            pytest.param([], {"grace": float("nan")}, "grace", id="grace-nan"),
            pytest.param([], {"retry": "x"}, "RetryPolicy", id="retry"),
            pytest.param(
                [], {"retry_budget": "x"}, "RetryBudget", id="budget"
            ),
            pytest.param([], {"concurrency": -3}, "concurrency", id="neg"),
            pytest.param([], {"concurrency": 2.0}, "concurrency", id="float"),
            pytest.param([], {"concurrency": True}, "concurrency", id="bool"),
            pytest.param(
                [],
                {"concurrency": MAX_CONCURRENCY + 1},
                "from 1 to 1000",
                id="huge",
            ),
            pytest.param([], {"journal": 5}, "not int", id="journal-int"),
            pytest.param([], {"journal": ""}, "not empty", id="journal-empty"),
            pytest.param([], {"journal": "a\0b"}, "NUL", id="journal-nul"),
            pytest.param(
                [], {"journal": b"j.jsonl"}, "not bytes", id="journal-bytes"
            ),
            pytest.param([], {"on_rotated": "x"}, "on_rotated", id="sink"),
        ],
    )
    def test_misuse(
        self, ids: Any, options: dict[str, Any], message: str
    ) -> None:
        """Options that cannot work raise UsageError before any work."""
        with pytest.raises(UsageError, match=message):
            RotationBatch(Stub(), ids, **options)

    def test_most_workers(self) -> None:
        """The largest pool allowed is accepted."""
        RotationBatch(Stub(), [], concurrency=MAX_CONCURRENCY)

    @pytest.mark.parametrize(
        "journal",
        [
            pytest.param("missing/j.jsonl", id="missing-directory"),
            pytest.param(".", id="directory"),
        ],
    )
    async def test_unusable_journal_path(
        self, tmp_path: Path, journal: str
    ) -> None:
        """A journal path that cannot be opened is a JournalError first."""
        stub = Stub()
        batch = RotationBatch(stub, _ids(3), journal=tmp_path / journal)

        with pytest.raises(JournalError, match="cannot open the journal"):
            await _collect(batch)

        assert stub.calls == []

    async def test_unreadable_journal_on_resume(self, tmp_path: Path) -> None:
        """Resuming from a directory is a JournalError, not an OSError."""
        stub = Stub()
        batch = RotationBatch(stub, _ids(3), journal=tmp_path, resume=True)

        with pytest.raises(JournalError, match="cannot read the journal"):
            await _collect(batch)

        assert stub.calls == []


class TestRotationBatch:
    async def test_one_outcome_per_distinct_id(self) -> None:
        """Each distinct id gets one outcome; repeats are rotated once."""
        stub = Stub()
        ids = [*_ids(50), "wh00003", "wh00007"]

        outcomes = await _collect(RotationBatch(stub, ids, concurrency=4))

        assert sorted(o.webhook_id for o in outcomes) == _ids(50)
        assert sorted(stub.calls) == _ids(50)
        for outcome in outcomes:
            assert outcome.outcome == Outcome.ROTATED
            assert outcome.webhook_secret == stub.secrets[outcome.webhook_id]

    async def test_summary(self) -> None:
        """The summary counts outcomes, duplicates and nothing else."""
        stub = Stub()
        stub.errors["wh00001"] = [_error(NotFoundError, 404)]
        stub.errors["wh00002"] = [_unknown("wh00002")]
        batch = RotationBatch(stub, [*_ids(5), "wh00000"], concurrency=2)

        await _collect(batch)

        summary = batch.summary
        assert (summary.total, summary.rotated) == (5, 3)
        assert (summary.failed, summary.unknown) == (1, 1)
        assert (summary.skipped, summary.duplicates) == (0, 1)
        assert summary.stop_reason is None
        assert not summary.ok
        assert batch.finished

    async def test_malformed_ids_fail_without_request(self) -> None:
        """A malformed id fails at once, and no request is made for it."""
        stub = Stub()

        outcomes = await _collect(
            RotationBatch(stub, ["ok1", "bad/id", "", "ok2"])
        )

        failed = {o.webhook_id: o for o in outcomes if o.outcome == "failed"}
        assert set(failed) == {"bad/id", ""}
        assert all(
            not o.transient and o.attempts == 0 for o in failed.values()
        )
        assert sorted(stub.calls) == ["ok1", "ok2"]

    async def test_async_iterable(self) -> None:
        """Ids may come from an async iterable."""
        stub = Stub()

        async def ids() -> AsyncIterator[str]:
            for webhook_id in _ids(20):
                await asyncio.sleep(0)
                yield webhook_id

        outcomes = await _collect(RotationBatch(stub, ids(), concurrency=3))

        assert len(outcomes) == 20

    async def test_reads_lazily(self) -> None:
        """Ids are read as workers free up, not all at the start."""
        stub = Stub()
        stub.gate = asyncio.Event()
        read: list[str] = []

        def ids() -> Iterator[str]:
            for webhook_id in _ids(1000):
                read.append(webhook_id)
                yield webhook_id

        batch = RotationBatch(stub, ids(), concurrency=8)
        async with batch:
            while stub.active < 8:  # noqa: ASYNC110 -- stub state
                await asyncio.sleep(0)
            assert len(read) == 8
            stub.gate.set()
            count = sum([1 async for _ in batch])

        assert count == 1000

    async def test_started_once(self) -> None:
        """Callers starting a batch at the same time start one pool."""
        stub = Stub()
        stub.gate = asyncio.Event()
        batch = RotationBatch(stub, _ids(10), concurrency=3)

        await asyncio.gather(batch.__aenter__(), batch.__aenter__())
        workers = [t for t in asyncio.all_tasks() if "worker" in t.get_name()]
        stub.gate.set()
        await batch.aclose()

        assert len(workers) == 3

    async def test_concurrency_is_the_pool_size(self) -> None:
        """No more than *concurrency* rotations are ever in flight."""
        stub = Stub(delay=0.001)

        await _collect(RotationBatch(stub, _ids(200), concurrency=7))

        assert stub.peak == 7

    async def test_outcome_kinds(self) -> None:
        """Errors map to failed (transient or not) and unknown."""
        stub = Stub()
        stub.errors = {
            "nf": [_error(NotFoundError, 404)],
            "s5": [_error(ServerError, 503)],
            "rl": [_error(RateLimitedError, 429)],
            "lost": [_unknown("lost")],
        }

        outcomes = await _collect(RotationBatch(stub, list(stub.errors)))

        by_id = {o.webhook_id: o for o in outcomes}
        assert by_id["nf"].outcome == "failed"
        assert not by_id["nf"].transient
        assert by_id["s5"].outcome == "failed"
        assert by_id["s5"].transient
        assert by_id["rl"].outcome == "failed"
        assert by_id["rl"].transient
        assert by_id["lost"].outcome == "unknown"
        assert all(o.webhook_secret is None for o in outcomes)
        assert isinstance(by_id["nf"].error, NotFoundError)

    async def test_secret_not_in_repr(self) -> None:
        """An outcome's repr never shows the secret."""
        stub = Stub()

        [outcome] = await _collect(RotationBatch(stub, ["wh1"]))

        assert outcome.webhook_secret
        assert outcome.webhook_secret not in repr(outcome)

    async def test_authentication_failure_stops(self) -> None:
        """A refused key stops the batch instead of failing every id."""
        stub = Stub()
        stub.errors["wh00000"] = [_error(AuthenticationError, 401)]
        batch = RotationBatch(stub, _ids(1000), concurrency=1)

        await _collect(batch)

        assert batch.summary.stop_reason == StopReason.AUTHENTICATION
        assert len(stub.calls) == 1

    async def test_client_closed_midway_stops(self) -> None:
        """A client closed mid-batch stops it; the id stays retryable."""
        stub = Stub()
        closed = ClientClosedError("this client is closed")
        stub.errors["wh00000"] = [closed]
        batch = RotationBatch(stub, _ids(100), concurrency=1)

        [outcome] = await _collect(batch)

        assert batch.summary.stop_reason == StopReason.CLIENT_CLOSED
        assert outcome.outcome == Outcome.FAILED
        assert outcome.transient

    async def test_progress(self) -> None:
        """on_progress sees every outcome; progress is readable any time."""
        stub = Stub()
        seen: list[BatchProgress] = []
        batch = RotationBatch(
            stub, _ids(30), concurrency=3, on_progress=seen.append
        )

        assert batch.progress.done == 0
        await _collect(batch)

        assert [p.done for p in seen] == list(range(1, 31))
        assert batch.progress.rotated == 30
        assert batch.progress.in_flight == 0

    async def test_broken_progress_hook(self) -> None:
        """A failing on_progress is logged; the rotations go on."""
        stub = Stub()

        def broken(progress: BatchProgress) -> None:
            raise RuntimeError("display gone")

        batch = RotationBatch(stub, _ids(5), on_progress=broken)

        assert len(await _collect(batch)) == 5

    async def test_source_error_surfaces(self) -> None:
        """An error raised by the id source ends iteration with it."""
        stub = Stub()

        def ids() -> Iterator[str]:
            yield "wh1"
            raise OSError("disk gone")

        batch = RotationBatch(stub, ids(), concurrency=2)
        with pytest.raises(OSError, match="disk gone"):
            await _collect(batch)

        assert batch.summary.rotated == 1


class TestJournaling:
    async def test_every_secret_in_journal(self, journal: Path) -> None:
        """Each rotated id's secret is in the journal, mode 0600."""
        stub = Stub()

        await _collect(RotationBatch(stub, _ids(100), journal=journal))

        records = read_journal(journal)
        assert stat.S_IMODE(os.stat(journal).st_mode) == 0o600
        assert {k: r.webhook_secret for k, r in records.items()} == (
            stub.secrets
        )

    async def test_started_before_request(self, journal: Path) -> None:
        """A started record is on disk before the rotation is sent."""
        stub = Stub()
        outcomes_on_disk: list[str | None] = []
        original = stub.rotate_secret

        async def rotate(
            webhook_id: str, *, retry: RetryPolicy | None = None
        ) -> Response[WebhookWithSecret]:
            record = read_journal(journal).get(webhook_id)
            outcomes_on_disk.append(record.outcome if record else None)
            return await original(webhook_id, retry=retry)

        stub.rotate_secret = rotate  # type: ignore[method-assign]

        await _collect(RotationBatch(stub, _ids(20), journal=journal))

        assert outcomes_on_disk == ["started"] * 20

    async def test_journal_before_report(self, journal: Path) -> None:
        """Every outcome is in the journal by the time it is reported."""
        stub = Stub()
        stub.errors["wh00003"] = [_unknown("wh00003")]
        batch = RotationBatch(stub, _ids(20), journal=journal, concurrency=4)

        async with batch:
            async for outcome in batch:
                record = read_journal(journal)[outcome.webhook_id]
                assert record.outcome == outcome.outcome
                assert record.webhook_secret == outcome.webhook_secret

    async def test_on_rotated_after_journal(self, journal: Path) -> None:
        """on_rotated runs once the journal holds the secret."""
        stub = Stub()
        stored: dict[str, str | None] = {}

        async def store(outcome: RotationOutcome) -> None:
            record = read_journal(journal)[outcome.webhook_id]
            assert record.webhook_secret == outcome.webhook_secret
            stored[outcome.webhook_id] = outcome.webhook_secret

        await _collect(
            RotationBatch(stub, _ids(10), journal=journal, on_rotated=store)
        )

        assert stored == stub.secrets

    async def test_callback_failure(self, journal: Path) -> None:
        """A failing on_rotated is reported; the secret stays journaled."""
        stub = Stub()

        async def store(outcome: RotationOutcome) -> None:
            if outcome.webhook_id == "wh00001":
                raise ConnectionError("vault down")

        batch = RotationBatch(stub, _ids(3), journal=journal, on_rotated=store)
        outcomes = await _collect(batch)

        failed = [o for o in outcomes if o.callback_error is not None]
        assert [o.webhook_id for o in failed] == ["wh00001"]
        assert failed[0].outcome == Outcome.ROTATED
        assert batch.summary.callback_failures == 1
        record = read_journal(journal)["wh00001"]
        assert record.webhook_secret == stub.secrets["wh00001"]
        assert record.callback_error == "ConnectionError: vault down"

    async def test_refuses_open_journal(self, shared_journal: Path) -> None:
        """A journal readable by others is refused before any rotation."""
        journal = shared_journal
        stub = Stub()

        with pytest.raises(NylasError, match="open to other users"):
            await _collect(RotationBatch(stub, _ids(3), journal=journal))

        assert stub.calls == []


class TestResume:
    async def _journal(self, path: Path, *records: tuple[str, str]) -> None:
        from nylas_async._journal import JournalWriter, open_journal

        writer = JournalWriter(open_journal(path), str(path))
        for webhook_id, outcome in records:
            transient = {"failed": False, "failed-transient": True}
            record = JournalRecord(
                webhook_id=webhook_id,
                outcome=outcome.split("-")[0],
                time=now(),
                webhook_secret="old" if outcome == "rotated" else None,
                transient=transient.get(outcome),
            )
            await writer.submit(record)
        await writer.aclose()

    async def test_resume(self, journal: Path) -> None:
        """Resuming skips rotated and definite failures, redoes the rest."""
        await self._journal(
            journal,
            ("done", "rotated"),
            ("gone", "failed"),
            ("flaky", "failed-transient"),
            ("lost", "unknown"),
            ("cut", "started"),
            ("again", "rotated"),
            ("again", "started"),
        )
        stub = Stub()
        ids = ["done", "gone", "flaky", "lost", "cut", "again", "new"]

        batch = RotationBatch(stub, ids, journal=journal, resume=True)
        outcomes = {o.webhook_id: o for o in await _collect(batch)}

        assert sorted(stub.calls) == ["again", "cut", "flaky", "lost", "new"]
        assert outcomes["done"].outcome == Outcome.SKIPPED
        assert outcomes["gone"].outcome == Outcome.FAILED
        assert batch.summary.skipped == 1
        latest = read_journal(journal)
        assert latest["done"].webhook_secret == "old"
        assert latest["again"].webhook_secret == stub.secrets["again"]

    async def test_missing_journal(self, journal: Path) -> None:
        """Resuming from a journal that does not exist yet starts it."""
        stub = Stub()

        await _collect(
            RotationBatch(stub, _ids(3), journal=journal, resume=True)
        )

        assert len(read_journal(journal)) == 3


class TestCanary:
    async def test_canary_failure_stops(self) -> None:
        """A failed canary stops the batch before any other id."""
        stub = Stub()
        stub.errors["wh00001"] = [_error(NotFoundError, 404)]
        batch = RotationBatch(stub, _ids(100), concurrency=8, canary=3)

        await _collect(batch)

        assert sorted(stub.calls) == _ids(3)
        assert batch.summary.stop_reason == StopReason.CANARY_FAILED

    async def test_canary_goes_first(self) -> None:
        """The rest starts only once every canary rotation is done."""
        stub = Stub(delay=0.01)
        order: list[tuple[str, str]] = []
        original = stub.rotate_secret

        async def rotate(
            webhook_id: str, *, retry: RetryPolicy | None = None
        ) -> Response[WebhookWithSecret]:
            order.append(("start", webhook_id))
            try:
                return await original(webhook_id, retry=retry)
            finally:
                order.append(("end", webhook_id))

        stub.rotate_secret = rotate  # type: ignore[method-assign]
        batch = RotationBatch(stub, _ids(20), concurrency=8, canary=2)

        await _collect(batch)

        first_other = order.index(("start", "wh00002"))
        ends = {order.index(("end", c)) for c in ("wh00000", "wh00001")}
        assert max(ends) < first_other
        assert batch.summary.rotated == 20

    async def test_canary_skips_resumed(self, journal: Path) -> None:
        """Ids already rotated in the journal do not count as canaries."""
        stub = Stub()
        await _collect(RotationBatch(stub, ["a", "b"], journal=journal))
        stub.errors["c"] = [_error(NotFoundError, 404)]

        batch = RotationBatch(
            stub, ["a", "b", "c", "d"], journal=journal, resume=True, canary=1
        )
        await _collect(batch)

        assert stub.calls[2:] == ["c"]


class TestCancellation:
    async def test_aclose_records_in_flight(self, journal: Path) -> None:
        """Closing mid-batch records each id in flight as unknown."""
        stub = Stub(delay=30)
        batch = RotationBatch(
            stub, _ids(100), concurrency=4, journal=journal, grace=0.05
        )
        async with batch:
            while stub.active < 4:  # noqa: ASYNC110 -- stub state
                await asyncio.sleep(0.001)

        summary = batch.summary
        assert (summary.unknown, summary.total) == (4, 4)
        assert summary.stop_reason == StopReason.STOPPED
        latest = read_journal(journal)
        assert sorted(latest) == _ids(4)
        assert {r.outcome for r in latest.values()} == {"unknown"}
        assert _no_batch_tasks()

    async def test_grace_lets_replies_land(self, journal: Path) -> None:
        """Rotations that finish within the grace end rotated."""
        stub = Stub(delay=0.05)
        batch = RotationBatch(
            stub, _ids(100), concurrency=4, journal=journal, grace=5
        )
        async with batch:
            while stub.active < 4:  # noqa: ASYNC110 -- stub state
                await asyncio.sleep(0.001)
            batch.stop()
            outcomes = [o async for o in batch]

        assert [o.outcome for o in outcomes] == [Outcome.ROTATED] * 4
        assert batch.summary.total == 4

    async def test_cancelled_consumer(self, journal: Path) -> None:
        """Cancelling the task that iterates leaves nothing unrecorded."""
        stub = Stub(delay=30)
        batch = RotationBatch(
            stub, _ids(50), concurrency=3, journal=journal, grace=0.05
        )

        async def consume() -> None:
            async with batch:
                async for _ in batch:
                    pass

        task = asyncio.create_task(consume())
        while stub.active < 3:  # noqa: ASYNC110 -- stub state
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        assert batch.summary.unknown == 3
        assert len(read_journal(journal)) == 3
        assert _no_batch_tasks()

    async def test_cancel_during_callback(self, journal: Path) -> None:
        """A callback cut by cancellation is reported; the secret stays."""
        stub = Stub()
        started = asyncio.Event()

        async def store(outcome: RotationOutcome) -> None:
            started.set()
            await asyncio.sleep(30)

        batch = RotationBatch(
            stub, ["wh1"], journal=journal, on_rotated=store, grace=0
        )
        async with batch:
            await started.wait()
            batch.stop(grace=0)
            [outcome] = [o async for o in batch]

        assert outcome.outcome == Outcome.ROTATED
        assert isinstance(outcome.callback_error, asyncio.CancelledError)
        record = read_journal(journal)["wh1"]
        assert record.webhook_secret == stub.secrets["wh1"]

    async def test_aclose_twice_and_unstarted(self) -> None:
        """aclose is idempotent and harmless on a batch never started."""
        batch = RotationBatch(Stub(), _ids(3))
        await batch.aclose()
        await batch.aclose()

        assert [o async for o in batch] == []

    async def test_second_stop_shortens_grace(self) -> None:
        """A second stop with a shorter grace cuts in-flight calls now."""
        stub = Stub(delay=30)
        batch = RotationBatch(stub, _ids(10), concurrency=2, grace=60)
        async with batch:
            while stub.active < 2:  # noqa: ASYNC110 -- stub state
                await asyncio.sleep(0.001)
            batch.stop()
            batch.stop(grace=0)
            started = time.monotonic()
            outcomes = [o async for o in batch]

        assert time.monotonic() - started < 5
        assert [o.outcome for o in outcomes] == [Outcome.UNKNOWN] * 2


def _no_batch_tasks() -> bool:
    names = [t.get_name() for t in asyncio.all_tasks()]
    return not [n for n in names if n.startswith("nylas_async")]


class TestRetryBudget:
    @pytest.mark.parametrize(
        "fields",
        [
            pytest.param({"ratio": -0.1}, id="negative"),
            pytest.param({"ratio": "x"}, id="text"),
            pytest.param({"reserve": float("nan")}, id="nan"),
            pytest.param({"reserve": float("inf")}, id="inf"),
            pytest.param({"reserve": True}, id="bool"),
        ],
    )
    def test_misuse(self, fields: dict[str, Any]) -> None:
        """Values a budget cannot hold raise UsageError."""
        with pytest.raises(UsageError, match="RetryBudget"):
            RetryBudget(**fields)

    def test_spends_and_earns(self) -> None:
        """Retries spend the reserve; successes earn a share back."""
        hooks = _Hooks(_Pace(None), RetryBudget(ratio=0.5, reserve=2))
        error = _error(ServerError, 503)

        assert [hooks.may_retry(error) for _ in range(3)] == [
            True,
            True,
            False,
        ]
        hooks.succeeded()
        hooks.succeeded()
        assert hooks.may_retry(error)
        assert (hooks.retries, hooks.denied) == (3, 1)

    def test_rate_limits_are_free(self) -> None:
        """A retry after a 429 costs nothing from the budget."""
        hooks = _Hooks(_Pace(None), RetryBudget(reserve=0))

        assert hooks.may_retry(_error(RateLimitedError, 429))
        assert not hooks.may_retry(_error(ServerError, 500))

    def test_only_silent_429s_cut_the_pace(self) -> None:
        """A 429 with Retry-After pauses instead; one without cuts pace."""
        hooks = _Hooks(_Pace(40.0), RetryBudget())
        told = _error(RateLimitedError, 429)
        told.retry_after = 1.0  # type: ignore[attr-defined]

        hooks.may_retry(told)
        assert hooks.pace.rate is None
        hooks.may_retry(_error(RateLimitedError, 429))
        assert hooks.pace.rate == 20.0

    def test_reserve_caps_savings(self) -> None:
        """Successes never save more than the reserve."""
        hooks = _Hooks(_Pace(None), RetryBudget(ratio=1, reserve=1))
        for _ in range(10):
            hooks.succeeded()

        assert hooks.tokens == 1


class TestPace:
    def test_halves_and_recovers(self) -> None:
        """A 429 halves the pace; quiet time brings it back to the base."""
        clock = [100.0]
        pace = _Pace(40.0, recover=2.0, clock=lambda: clock[0])

        pace.slow_down()
        assert pace.rate == 20.0
        clock[0] += 0.3
        pace.slow_down()
        assert pace.rate == 20.0
        clock[0] += 0.3
        pace.slow_down()
        assert pace.rate == 10.0

        rates = []
        for _ in range(8):
            clock[0] += 2.0
            asyncio.run(pace.wait())
            rates.append(pace.rate)
        assert rates[:3] == [14.0, 18.0, 22.0]
        assert rates[-1] is None

    def test_floor(self) -> None:
        """The pace never drops below a sixteenth of the base."""
        clock = [0.0]
        pace = _Pace(32.0, clock=lambda: clock[0])
        for _ in range(10):
            clock[0] += 1.0
            pace.slow_down()

        assert pace.rate == 2.0

    def test_no_base_no_pace(self) -> None:
        """Without a client rate there is nothing to adapt."""
        pace = _Pace(None)
        pace.slow_down()

        assert pace.rate is None

    async def test_spaces_attempts(self) -> None:
        """Below the base, attempts are spaced by the reduced rate."""
        pace = _Pace(100.0)
        pace.slow_down()
        started = time.monotonic()

        for _ in range(6):
            await pace.wait()

        assert time.monotonic() - started >= 5 / 50 - 0.01


class TestMemory:
    async def test_streams_without_growth(self) -> None:
        """
        100,000 ids stream through with memory bounded by the pool: past
        the set of ids seen, the peak stays far below what keeping the
        outcomes would take (about 20 MiB more here).
        """
        count = 100_000
        reply = Response(
            data=WebhookWithSecret(id="wh", webhook_secret="s" * 20),
            request_id="r",
            client_request_id="c",
        )

        class Quick:
            """Answers at once: the cost measured is the batch's own."""

            async def rotate_secret(
                self, webhook_id: str, *, retry: RetryPolicy | None = None
            ) -> Response[WebhookWithSecret]:
                return reply

        ids = (f"wh{number:07d}" for number in range(count))
        gc.collect()
        tracemalloc.start()
        try:
            batch = RotationBatch(Quick(), ids, concurrency=16)
            done = 0
            async with batch:
                async for _ in batch:
                    done += 1
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        seen_bytes = sys.getsizeof(batch._run.seen)
        assert done == count
        assert peak - seen_bytes < 4 * 2**20, (
            f"peak {peak / 2**20:.1f} MiB, ids seen {seen_bytes / 2**20:.1f}"
        )


class _Failing:
    """Makes every journal write from the *after*-th on fail: ENOSPC."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.writes = 0
        self.real = _journal._append

    def __call__(self, fd: int, data: bytes) -> tuple[int, OSError | None]:
        self.writes += 1
        if self.writes < self.after:
            return self.real(fd, data)

        return 0, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class TestJournalFailure:
    async def test_secret_never_reported_unjournaled(
        self, journal: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """
        When the journal cannot take a new secret, that rotation ends
        unknown with a JournalError, the secret goes nowhere, the batch
        stops at once, and iteration then raises the JournalError.
        """
        stub = Stub(delay=0.01)
        stored: list[str] = []

        async def store(outcome: RotationOutcome) -> None:
            stored.append(outcome.webhook_id)

        monkeypatch.setattr(_journal, "_append", _Failing(after=5))
        batch = RotationBatch(
            stub, _ids(50), concurrency=4, journal=journal, on_rotated=store
        )
        outcomes: list[RotationOutcome] = []
        with pytest.raises(JournalError, match="No space left on device"):
            await _collect_into(batch, outcomes)

        rotated = {o.webhook_id for o in outcomes if o.outcome == "rotated"}
        latest = read_journal(journal)
        on_disk = {w for w, r in latest.items() if r.outcome == "rotated"}
        assert rotated == on_disk == set(stored)
        unsaved = [o for o in outcomes if isinstance(o.error, JournalError)]
        assert unsaved
        for outcome in unsaved:
            assert outcome.webhook_secret is None
            assert outcome.outcome in ("unknown", "failed")
            if outcome.webhook_id in stub.secrets:
                assert outcome.outcome == "unknown"
                assert latest[outcome.webhook_id].outcome == "started"
        assert batch.summary.stop_reason == StopReason.JOURNAL
        assert len(stub.calls) <= 8
        assert _no_batch_tasks()

    def test_disk_full(self, journal: Path) -> None:
        """
        A real full disk (a file size limit, in a process of its own)
        while a rotation is in flight: its secret is reported nowhere,
        it is left started in the journal for a resumed batch, and the
        journal has no torn line.
        """
        done = subprocess.run(
            [sys.executable, "-c", _DISK_FULL, str(journal)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)

        assert result["outcomes"] == [
            ["wh0", "rotated", True, None],
            ["wh1", "rotated", True, None],
            ["wh2", "unknown", False, "JournalError"],
        ]
        assert "File too large" in result["raised"]
        assert result["stored"] == ["wh0", "wh1"]
        assert result["calls"] == 3
        latest = read_journal(journal)
        assert {w: r.outcome for w, r in latest.items()} == {
            "wh0": "rotated",
            "wh1": "rotated",
            "wh2": "started",
        }
        assert journal.read_bytes().endswith(b"\n")


class TestUnencodable:
    async def test_surrogate_secret(self, journal: Path) -> None:
        """
        A new secret holding a lone surrogate, which no file can hold,
        ends unknown and journaled as such; the batch goes on.
        """
        stub = Stub()
        original = stub.rotate_secret

        async def rotate(
            webhook_id: str, *, retry: RetryPolicy | None = None
        ) -> Response[WebhookWithSecret]:
            response = await original(webhook_id, retry=retry)
            if webhook_id != "wh00001":
                return response
            data = WebhookWithSecret(id=webhook_id, webhook_secret="x\ud800")
            return Response(data=data, request_id="r", client_request_id="c")

        stub.rotate_secret = rotate  # type: ignore[method-assign]
        batch = RotationBatch(stub, _ids(5), concurrency=1, journal=journal)
        outcomes = {o.webhook_id: o for o in await _collect(batch)}

        bad = outcomes.pop("wh00001")
        assert bad.outcome == Outcome.UNKNOWN
        assert bad.webhook_secret is None
        assert isinstance(bad.error, JournalError)
        assert {o.outcome for o in outcomes.values()} == {Outcome.ROTATED}
        assert read_journal(journal)["wh00001"].outcome == "unknown"
        assert batch.summary.stop_reason is None

    async def test_surrogate_id(
        self, journal: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A malformed id no file can hold fails, unjournaled, alone."""
        stub = Stub()

        outcomes = await _collect(
            RotationBatch(stub, ["a\udcff", "wh1"], journal=journal)
        )

        assert sorted(o.outcome for o in outcomes) == ["failed", "rotated"]
        assert list(read_journal(journal)) == ["wh1"]
        assert "not journaled" in caplog.text


class TestUnread:
    async def test_closed_with_unread_secrets(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """
        Leaving the batch early with rotated outcomes unread warns how
        many there are, that without a journal their secrets are lost,
        and which ids; never a secret.
        """
        stub = Stub(delay=0.01)
        batch = RotationBatch(stub, _ids(50), concurrency=8)
        async with batch:
            async for _ in batch:
                break

        unread = batch.summary.rotated - 1
        assert unread > 0
        [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
        text = warning.getMessage()
        assert f"before {unread} rotated outcomes were read" in text
        assert "lost" in text
        assert not any(secret in text for secret in stub.secrets.values())

    async def test_closed_with_journal(
        self, journal: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With a journal, the warning says the secrets are there."""
        stub = Stub(delay=0.01)
        batch = RotationBatch(stub, _ids(50), concurrency=8, journal=journal)
        async with batch:
            async for _ in batch:
                break

        assert f"in the journal {journal}" in caplog.text
        latest = read_journal(journal)
        assert {r.outcome for r in latest.values()} == {"rotated"}

    async def test_dropped_batch_stops(
        self, journal: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """
        A batch dropped mid-way without aclose stops its workers once
        freed, warns, and leaves every id it took settled in the journal.
        """
        stub = Stub(delay=0.01)
        batch = RotationBatch(stub, _ids(1000), concurrency=8, journal=journal)
        async for _ in batch:
            break
        del batch
        gc.collect()

        async with asyncio.timeout(10):
            while not _no_batch_tasks():  # noqa: ASYNC110 -- task list
                await asyncio.sleep(0.01)

        assert "dropped while it ran" in caplog.text
        latest = read_journal(journal)
        assert len(stub.calls) < 1000
        assert len(latest) == len(stub.calls)
        assert {r.outcome for r in latest.values()} <= {"rotated", "unknown"}


_DISK_FULL = """
import asyncio, json, os, resource, signal, sys
from nylas_async import (
    JournalError, Response, RotationBatch, WebhookWithSecret,
)

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
path = sys.argv[1]
calls = []
stored = []


class Stub:
    async def rotate_secret(self, webhook_id, *, retry=None):
        calls.append(webhook_id)
        if webhook_id == "wh2":
            # The disk fills up while this rotation is in flight.
            limit = os.path.getsize(path) + 20
            hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        data = WebhookWithSecret(id=webhook_id, webhook_secret="s" * 20)
        return Response(data=data, request_id="r", client_request_id="c")


async def store(outcome):
    stored.append(outcome.webhook_id)


async def main():
    ids = [f"wh{n}" for n in range(10)]
    batch = RotationBatch(
        Stub(), ids, concurrency=1, journal=path, on_rotated=store
    )
    outcomes = []
    raised = None
    try:
        async with batch:
            async for outcome in batch:
                outcomes.append(outcome)
    except JournalError as exc:
        raised = str(exc)
    print(json.dumps({
        "outcomes": [
            [
                o.webhook_id,
                o.outcome,
                o.webhook_secret is not None,
                type(o.error).__name__ if o.error else None,
            ]
            for o in outcomes
        ],
        "raised": raised,
        "stored": stored,
        "calls": len(calls),
    }))


asyncio.run(main())
"""
