"""
Batch rotation: many webhooks, a fixed pool of workers, one journal.

`RotationBatch` reads ids lazily, rotates each distinct one once with
a fixed number of workers, and yields a `RotationOutcome` per id as it
finishes.  The workers share the client's pace, an adaptive pace that
backs off on 429 and recovers, and a retry budget that keeps a storm of
failures from multiplying the load.  With a journal, every new secret
is on disk before anyone hears of it (see `nylas_async._journal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import time
from collections import Counter, deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias

import attrs

from ._errors import (
    AuthenticationError,
    CallError,
    ClientClosedError,
    NylasApiError,
    NylasError,
    RateLimitedError,
    SecretStateUnknownError,
    ServerError,
    TransportError,
    UsageError,
)
from ._http import RETRY_STATUSES, _failure, attempt_hooks
from ._journal import (
    FAILED,
    ROTATED,
    STARTED,
    UNKNOWN,
    JournalError,
    JournalRecord,
    JournalWriter,
    iter_records,
    now,
    open_journal,
)
from ._webhooks import check_webhook_id

if TYPE_CHECKING:
    from ._config import RetryPolicy
    from ._models import Response, WebhookWithSecret

log: Final = logging.getLogger("nylas_async.batch")

DEFAULT_CONCURRENCY: Final = 16
DEFAULT_GRACE: Final = 5.0

Ids: TypeAlias = "Iterable[str] | AsyncIterable[str]"


class Outcome(enum.StrEnum):
    """How the rotation of one webhook ended."""

    #: The new secret is in hand (and in the journal, if there is one).
    ROTATED = "rotated"
    #: The server did not rotate: the secret is unchanged.
    FAILED = "failed"
    #: The secret may have changed without the new one reaching us:
    #: rotate the webhook again.
    UNKNOWN = "unknown"
    #: A resumed journal already holds this webhook's new secret.
    SKIPPED = "skipped"


class StopReason(enum.StrEnum):
    """Why a batch stopped before reading all of its ids."""

    #: `RotationBatch.stop` or `RotationBatch.aclose` was called.
    STOPPED = "stopped"
    #: A canary rotation did not succeed.
    CANARY_FAILED = "canary failed"
    #: Nylas refused the API key: every other id would fail too.
    AUTHENTICATION = "authentication failed"
    #: The client was closed while the batch ran.
    CLIENT_CLOSED = "client closed"
    #: The journal could not be written.
    JOURNAL = "journal failed"


@attrs.frozen(kw_only=True)
class RotationOutcome:
    """
    What became of one webhook in a batch.

    Attributes:
        webhook_id: the id as read from the input.
        outcome: rotated, failed, unknown or skipped (see `Outcome`).
        webhook_secret: the new secret, only when rotated; left out of
            ``repr()``.
        request_id: Nylas's request id of the last reply, if any.
        client_request_id: the ``X-Request-ID`` this client sent.
        attempts: HTTP attempts made (0 when no request was sent).
        retry_reasons: why each retry was made, in order, such as
            ``"status 503"`` or ``"connection dropped"``.
        elapsed: seconds from taking the id to this outcome.
        error: why it failed or is unknown; its text never holds a
            secret.
        transient: for a failure, whether running again may succeed
            (a resumed batch retries those); false for not found, a
            refused key, a malformed id.
        callback_error: what ``on_rotated`` raised, if it failed; the
            secret is in the journal all the same.
    """

    webhook_id: str
    outcome: Outcome
    webhook_secret: str | None = attrs.field(default=None, repr=False)
    request_id: str | None = None
    client_request_id: str | None = None
    attempts: int = 0
    retry_reasons: tuple[str, ...] = ()
    elapsed: float = 0.0
    error: NylasError | None = None
    transient: bool = False
    callback_error: BaseException | None = None


@attrs.frozen(kw_only=True)
class BatchSummary:
    """
    The counts of a batch; final once iteration has ended.

    *total* counts distinct ids, duplicates aside; *retries_by_reason*
    counts the retries of every call by reason (``"status 503"``: 4);
    *stop_reason* says why the batch ended early, or is ``None``.
    """

    total: int = 0
    rotated: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    callback_failures: int = 0
    duplicates: int = 0
    retries_by_reason: Mapping[str, int] = attrs.field(factory=dict)
    elapsed: float = 0.0
    stop_reason: StopReason | None = None

    @property
    def ok(self) -> bool:
        """Whether every id was rotated, now or in a resumed journal."""
        return (
            self.failed == 0 and self.unknown == 0 and self.stop_reason is None
        )


@attrs.frozen(kw_only=True)
class BatchProgress:
    """
    A snapshot of a running batch, for progress displays.

    *done* counts outcomes (rotated, failed, unknown and skipped);
    *in_flight* the ids taken and not yet done; *retries* every retry
    made so far; *pace* the requests per second the batch holds itself
    to after a 429, or ``None`` when only the client's rate applies.
    """

    done: int
    rotated: int
    failed: int
    unknown: int
    skipped: int
    in_flight: int
    retries: int
    elapsed: float
    pace: float | None


class SecretSink(Protocol):
    """
    Stores a new secret somewhere durable: a vault, a database.

    Called with each rotated outcome after the journal holds it and
    before the outcome is reported.  What it raises is reported as the
    outcome's *callback_error*; the rotation stands.
    """

    def __call__(self, outcome: RotationOutcome) -> Awaitable[None]: ...


ProgressHook: TypeAlias = Callable[[BatchProgress], None]


class Rotator(Protocol):
    """What a batch rotates through: `Webhooks` or a stand-in."""

    async def rotate_secret(
        self, webhook_id: str, *, retry: RetryPolicy | None = None
    ) -> Response[WebhookWithSecret]: ...


@attrs.frozen(kw_only=True)
class RetryBudget:
    """
    How many retries the workers of a batch may make between them.

    A storm of 5xx replies or dropped connections would otherwise have
    every worker retry every call, multiplying the load on a server in
    trouble.  The budget starts with *reserve* retries, each retry
    spends one, and each rotation that succeeds earns *ratio* more, up
    to *reserve* saved.  When it is empty a failed attempt is not
    retried: the id ends failed, or unknown if the failure was
    ambiguous, and a resumed batch takes it up again.

    Retries after a 429 cost nothing: the whole client pauses for them.

    Args:
        ratio: retries earned per success (default 0.2: once the
            reserve is spent, at most one retry per five successes).
        reserve: retries at the start and the most ever saved
            (default 20).
    """

    ratio: float = attrs.field(default=0.2, validator=attrs.validators.ge(0.0))
    reserve: float = attrs.field(
        default=20.0, validator=attrs.validators.ge(0.0)
    )


class _Pace:
    """
    The batch's own pace, below the client's *base* rate after a 429
    that did not say how long to wait.

    Such a 429 halves the rate (the workers hit by one burst within
    *cooldown* seconds count once), down to a sixteenth of *base*; every
    *recover*
    seconds without a 429 adds a tenth of *base* back, and at *base*
    the pace steps aside for the client's limiter.  Rates are requests
    per second.
    """

    def __init__(
        self,
        base: float | None,
        *,
        recover: float = 1.0,
        cooldown: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base = base
        self._cooldown = cooldown
        self.rate: float | None = None
        self._recover = recover
        self._clock = clock
        self._changed = 0.0
        self._cut = -1.0
        self._next_slot = 0.0

    def slow_down(self) -> None:
        if self.base is None:
            return
        stamp = self._clock()
        if self._cut >= 0 and stamp - self._cut < self._cooldown:
            return

        current = self.rate if self.rate is not None else self.base
        self.rate = max(self.base / 16, current / 2)
        self._changed = self._cut = stamp
        log.info("a 429 arrived; pacing the batch at %.1f/s", self.rate)

    async def wait(self) -> None:
        if self.rate is None or self.base is None:
            return

        stamp = self._clock()
        if stamp - self._changed >= self._recover:
            self.rate += self.base / 10
            self._changed = stamp
            if self.rate >= self.base:
                self.rate = None
                return

        slot = max(stamp, self._next_slot)
        self._next_slot = slot + 1 / self.rate
        if slot > stamp:
            await asyncio.sleep(slot - stamp)


class _Hooks:
    """The batch's `AttemptHooks`: its pace and retry budget."""

    def __init__(self, pace: _Pace, budget: RetryBudget | None) -> None:
        self.pace = pace
        self.budget = budget
        self.tokens = budget.reserve if budget is not None else 0.0
        self.retries = 0
        self.denied = 0

    async def before_attempt(self) -> None:
        await self.pace.wait()

    def may_retry(self, error: BaseException) -> bool:
        if isinstance(error, RateLimitedError):
            # With Retry-After, the transport already holds every worker
            # as long as Nylas asked; cutting the pace too would keep
            # the batch slow long after.
            if error.retry_after is None:
                self.pace.slow_down()
        elif self.budget is not None:
            if self.tokens < 1:
                self.denied += 1
                return False
            self.tokens -= 1
        self.retries += 1

        return True

    def succeeded(self) -> None:
        if self.budget is not None:
            earned = self.tokens + self.budget.ratio
            self.tokens = min(self.budget.reserve, earned)


class _Malformed:
    """An input that cannot be a webhook id, and why."""

    __slots__ = ("error", "text")

    def __init__(self, text: str, error: NylasError) -> None:
        self.text = text
        self.error = error


_Item: TypeAlias = "str | _Malformed"


class RotationBatch:
    """
    A running batch rotation, from `Webhooks.rotate_secrets`.

    Iterate it for a `RotationOutcome` per distinct id, in the order
    they finish; `summary` holds the counts, final once iteration has
    ended.  Nothing starts until the first ``async for`` step or
    ``async with``.

    Use it as an async context manager, or iterate it to the end;
    leaving early without `aclose` leaves its workers running.
    Cancelling the task that iterates, `stop`, and `aclose` all stop
    taking new ids, give requests in flight *grace* seconds, then cancel
    them: each of those ends rotated if its reply came, otherwise
    unknown, and is journaled and counted, never dropped.

    For progress, read `progress` at any time, or pass *on_progress*,
    called with a `BatchProgress` after each outcome.
    """

    def __init__(
        self,
        rotator: Rotator,
        ids: Ids,
        *,
        rate_limit: float | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        journal: str | os.PathLike[str] | None = None,
        resume: bool = False,
        on_rotated: SecretSink | None = None,
        on_progress: ProgressHook | None = None,
        canary: int = 0,
        retry_budget: RetryBudget | None = None,
        retry: RetryPolicy | None = None,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        if isinstance(ids, str | bytes):
            raise UsageError("ids must be a collection of ids, not one id")
        if not isinstance(ids, Iterable | AsyncIterable):
            raise UsageError("ids must be an iterable or async iterable")
        if type(concurrency) is not int or concurrency < 1:
            raise UsageError("concurrency must be a positive integer")
        if type(canary) is not int or canary < 0:
            raise UsageError("canary must be zero or a positive integer")
        if not grace >= 0:
            raise UsageError("grace must be zero or more seconds")
        if resume and journal is None:
            raise UsageError("resume needs a journal to resume from")

        self._rotator = rotator
        self._ids = ids
        self._concurrency = concurrency
        self._journal_path = journal
        self._resume = resume
        self._on_rotated = on_rotated
        self._on_progress = on_progress
        self._retry = retry
        self._grace = grace
        self._budget = retry_budget or RetryBudget()
        self._hooks = _Hooks(_Pace(rate_limit), self._budget)

        self._started: float | None = None
        self._finished_at: float | None = None
        self._source: Iterator[str] | AsyncIterator[str] | None = None
        self._take_lock = asyncio.Lock()
        # Holding every id seen keeps duplicates out at a cost of about
        # 100 bytes per id: 10 MB for 100,000, far less than the
        # outcomes themselves, which are never kept.
        self._seen: set[str] = set()
        self._settled: dict[str, str] = {}
        self._writer: JournalWriter | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._supervisor: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[None] | None = None
        self._busy: set[asyncio.Task[None]] = set()

        self._canary_left = canary
        self._canary_pending = 0
        self._canary_done = asyncio.Event()
        if canary == 0:
            self._canary_done.set()

        self._outcomes: deque[RotationOutcome] = deque()
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._stopping = False
        self._closing = False
        self._finished = False
        self._hard_stop: asyncio.TimerHandle | None = None
        self._stop_reason: StopReason | None = None
        self._fatal: BaseException | None = None

        self._counts: Counter[Outcome] = Counter()
        self._callback_failures = 0
        self._duplicates = 0
        self._retry_reasons: Counter[str] = Counter()

    # The public surface.

    @property
    def summary(self) -> BatchSummary:
        """The counts so far; final once iteration has ended."""
        counts = self._counts

        return BatchSummary(
            total=sum(counts.values()),
            rotated=counts[Outcome.ROTATED],
            failed=counts[Outcome.FAILED],
            unknown=counts[Outcome.UNKNOWN],
            skipped=counts[Outcome.SKIPPED],
            callback_failures=self._callback_failures,
            duplicates=self._duplicates,
            retries_by_reason=MappingProxyType(dict(self._retry_reasons)),
            elapsed=self._elapsed(),
            stop_reason=self._stop_reason,
        )

    @property
    def progress(self) -> BatchProgress:
        """Where the batch stands now; cheap enough to read often."""
        counts = self._counts

        return BatchProgress(
            done=sum(counts.values()),
            rotated=counts[Outcome.ROTATED],
            failed=counts[Outcome.FAILED],
            unknown=counts[Outcome.UNKNOWN],
            skipped=counts[Outcome.SKIPPED],
            in_flight=len(self._busy),
            retries=self._hooks.retries,
            elapsed=self._elapsed(),
            pace=self._hooks.pace.rate,
        )

    @property
    def finished(self) -> bool:
        """Whether every worker is done and the journal closed."""
        return self._finished

    def stop(self, *, grace: float | None = None) -> None:
        """
        Stop taking new ids, and cancel requests still in flight after
        *grace* seconds (the batch's own grace by default; 0 cancels
        them now).

        Iteration goes on with the outcomes of the ids in flight, then
        ends.  Calling it again may shorten the grace, never lengthen it.
        """
        grace = self._grace if grace is None else grace
        if not self._stopping:
            self._stopping = True
            if self._stop_reason is None:
                self._stop_reason = StopReason.STOPPED
            self._canary_done.set()
        if self._supervisor is None or self._finished:
            return

        loop = asyncio.get_running_loop()
        when = loop.time() + grace
        if self._hard_stop is not None:
            if self._hard_stop.when() <= when:
                return
            self._hard_stop.cancel()
        self._hard_stop = loop.call_at(when, self._cancel_workers)

    async def aclose(self) -> None:
        """
        Stop the batch (see `stop`) and wait until nothing runs.

        Outcomes not yet iterated are counted in `summary` and, with a
        journal, recorded in it.  Calling it again does nothing.
        """
        starting = self._starting
        if starting is not None and not starting.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(starting)
        if self._supervisor is None:
            self._finished = True
            return

        self._closing = True
        self._room.set()
        if not self._finished:
            self.stop()
        await asyncio.shield(self._supervisor)

    async def __aenter__(self) -> RotationBatch:
        await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> RotationBatch:
        return self

    async def __anext__(self) -> RotationOutcome:
        await self._start()
        while True:
            if self._outcomes and not self._closing:
                outcome = self._outcomes.popleft()
                self._room.set()
                return outcome
            if self._finished or self._closing:
                if self._fatal is not None:
                    error, self._fatal = self._fatal, None
                    raise error
                raise StopAsyncIteration
            self._ready.clear()
            try:
                await self._ready.wait()
            except asyncio.CancelledError:
                self.stop()
                raise

    def __repr__(self) -> str:
        p = self.progress
        state = "finished" if self._finished else "running"
        if self._supervisor is None and not self._finished:
            state = "not started"

        return (
            f"<RotationBatch {state}: {p.done} done, {p.rotated} rotated, "
            f"{p.failed} failed, {p.unknown} unknown>"
        )

    # Starting and finishing.

    def _elapsed(self) -> float:
        if self._started is None:
            return 0.0
        end = self._finished_at or time.monotonic()

        return end - self._started

    async def _start(self) -> None:
        """Start the workers once, however many callers ask at once."""
        if self._starting is None:
            if self._finished:
                return
            self._starting = asyncio.ensure_future(self._open())
        await asyncio.shield(self._starting)

    async def _open(self) -> None:
        if self._journal_path is not None:
            name = os.fspath(self._journal_path)
            if self._resume:
                self._settled = await asyncio.to_thread(_settled_ids, name)
            fd = await asyncio.to_thread(open_journal, name)
            self._writer = JournalWriter(fd, name)

        self._started = time.monotonic()
        self._source = _iterate(self._ids)
        for number in range(self._concurrency):
            task = asyncio.create_task(
                self._work(), name=f"nylas_async rotation worker {number}"
            )
            self._workers.append(task)
        self._supervisor = asyncio.create_task(
            self._supervise(), name="nylas_async rotation batch"
        )

    async def _supervise(self) -> None:
        try:
            results = await asyncio.gather(
                *self._workers, return_exceptions=True
            )
            for result in results:
                unexpected = isinstance(result, BaseException) and not (
                    isinstance(result, asyncio.CancelledError)
                )
                if unexpected and self._fatal is None:
                    self._fatal = result
            if self._hard_stop is not None:
                self._hard_stop.cancel()
            await _close_source(self._source)
        finally:
            if self._writer is not None:
                await self._writer.aclose()
            self._finished_at = time.monotonic()
            self._finished = True
            self._ready.set()

    def _cancel_workers(self) -> None:
        for task in self._workers:
            task.cancel()

    # The workers.

    async def _work(self) -> None:
        attempt_hooks.set(self._hooks)
        task = asyncio.current_task()
        assert task is not None
        while True:
            item = await self._take()
            if item is None:
                return
            self._busy.add(task)
            try:
                await self._handle(item)
            finally:
                self._busy.discard(task)
            await self._backpressure()

    async def _take(self) -> _Item | None:
        """
        Return the next distinct id to handle, or ``None`` when there
        are no more or the batch is stopping.
        """
        async with self._take_lock:
            while not self._stopping:
                if self._canary_left == 0:
                    await self._canary_done.wait()
                    if self._stopping:
                        break
                try:
                    raw = await _next(self._source)
                except StopAsyncIteration:
                    return None
                item = self._accept(raw)
                if item is not None:
                    return item

        return None

    def _accept(self, raw: object) -> _Item | None:
        """Return *raw* as an item to handle, or ``None`` for a repeat."""
        try:
            webhook_id = check_webhook_id(raw)
        except NylasError as exc:
            text = raw if isinstance(raw, str) else repr(raw)
            if text in self._seen:
                self._duplicates += 1
                return None
            self._seen.add(text)
            self._count_canary()
            return _Malformed(text, exc)

        if webhook_id in self._seen:
            self._duplicates += 1
            return None
        self._seen.add(webhook_id)
        if webhook_id not in self._settled:
            self._count_canary()

        return webhook_id

    def _count_canary(self) -> None:
        if self._canary_left > 0:
            self._canary_left -= 1
            self._canary_pending += 1
            if self._canary_left == 0:
                self._canary_done.clear()

    async def _backpressure(self) -> None:
        while len(self._outcomes) >= self._concurrency and not self._closing:
            self._room.clear()
            await self._room.wait()

    async def _handle(self, item: _Item) -> None:
        if isinstance(item, _Malformed):
            outcome = RotationOutcome(
                webhook_id=item.text,
                outcome=Outcome.FAILED,
                error=item.error,
            )
            await self._settle(outcome, canary=True)
            return

        previous = self._settled.get(item)
        if previous is not None:
            # The journal already says all there is: no new record.
            self._report(_resumed(item, previous), canary=False)
            return

        try:
            outcome = await self._rotate(item)
        except asyncio.CancelledError:
            # The reply did not come, so the secret may have changed.
            outcome = _interrupted(item)
            await self._settle(outcome, canary=True)
            raise
        await self._settle(outcome, canary=True)

    async def _rotate(self, webhook_id: str) -> RotationOutcome:
        started = time.monotonic()
        if self._writer is not None:
            record = JournalRecord(
                webhook_id=webhook_id, outcome=STARTED, time=now()
            )
            try:
                await self._write(record)
            except JournalError as exc:
                self._fail_journal(exc)
                return RotationOutcome(
                    webhook_id=webhook_id,
                    outcome=Outcome.FAILED,
                    error=exc,
                    transient=True,
                )

        try:
            response = await self._rotator.rotate_secret(
                webhook_id, retry=self._retry
            )
        except SecretStateUnknownError as exc:
            return _from_error(webhook_id, Outcome.UNKNOWN, exc, started)
        except NylasError as exc:
            if _ambiguous(exc):
                return _from_error(webhook_id, Outcome.UNKNOWN, exc, started)
            reason = _fatal_reason(exc)
            if reason is not None and not self._stopping:
                log.error("stopping the batch: %s", exc)
                self._stop_reason = reason
                self.stop()
            return _from_error(webhook_id, Outcome.FAILED, exc, started)

        self._hooks.succeeded()
        return RotationOutcome(
            webhook_id=webhook_id,
            outcome=Outcome.ROTATED,
            webhook_secret=response.data.webhook_secret,
            request_id=response.request_id,
            client_request_id=response.client_request_id,
            attempts=len(response.attempts),
            retry_reasons=_reasons(response.attempts),
            elapsed=time.monotonic() - started,
        )

    async def _settle(self, outcome: RotationOutcome, *, canary: bool) -> None:
        """
        Journal *outcome*, hand a new secret to ``on_rotated``, then
        report it.  A cancellation meanwhile is held back until the
        outcome is reported, then raised.
        """
        cancelled = False
        if self._writer is not None:
            cancelled = await self._journal(outcome)

        if outcome.outcome == Outcome.ROTATED and self._on_rotated:
            callback_error: BaseException | None = None
            if cancelled:
                callback_error = asyncio.CancelledError(
                    "the batch was cancelled before the callback ran"
                )
            else:
                try:
                    await self._on_rotated(outcome)
                except asyncio.CancelledError as exc:
                    cancelled = True
                    callback_error = exc
                except Exception as exc:
                    callback_error = exc
            if callback_error is not None:
                outcome = attrs.evolve(outcome, callback_error=callback_error)
                self._callback_failures += 1
                if self._writer is not None:
                    cancelled = await self._journal(outcome) or cancelled

        self._report(outcome, canary=canary)
        if cancelled:
            raise asyncio.CancelledError

    async def _journal(self, outcome: RotationOutcome) -> bool:
        """
        Write the record of *outcome*, even through cancellation;
        return whether a cancellation arrived meanwhile.
        """
        record = _record(outcome)
        try:
            return await _write_through(self._writer, record)
        except JournalError as exc:
            self._fail_journal(exc)
            return False

    async def _write(self, record: JournalRecord) -> None:
        if await _write_through(self._writer, record):
            raise asyncio.CancelledError

    def _fail_journal(self, exc: JournalError) -> None:
        log.error("stopping the batch: %s", exc)
        if self._fatal is None:
            self._fatal = exc
        self._stop_reason = StopReason.JOURNAL
        self.stop(grace=self._grace)

    def _report(self, outcome: RotationOutcome, *, canary: bool) -> None:
        self._counts[outcome.outcome] += 1
        self._retry_reasons.update(outcome.retry_reasons)
        if canary and self._canary_pending > 0:
            self._canary_pending -= 1
            if outcome.outcome != Outcome.ROTATED and not self._stopping:
                log.error(
                    "stopping the batch: the canary rotation of %s ended %s",
                    outcome.webhook_id,
                    outcome.outcome,
                )
                self._stop_reason = StopReason.CANARY_FAILED
                self.stop()
            if self._canary_pending == 0 and self._canary_left == 0:
                self._canary_done.set()

        self._outcomes.append(outcome)
        self._ready.set()
        if self._on_progress is not None:
            try:
                self._on_progress(self.progress)
            except Exception:
                log.exception("on_progress failed; the batch goes on")


def _iterate(ids: Ids) -> Iterator[str] | AsyncIterator[str]:
    if isinstance(ids, AsyncIterable):
        return aiter(ids)

    return iter(ids)


async def _next(source: Iterator[str] | AsyncIterator[str] | None) -> Any:
    """The next item of either kind of iterator; `StopAsyncIteration`
    at the end."""
    if isinstance(source, AsyncIterator):
        return await anext(source)
    assert source is not None
    try:
        return next(source)
    except StopIteration:
        raise StopAsyncIteration from None


async def _close_source(
    source: Iterator[str] | AsyncIterator[str] | None,
) -> None:
    """Close a generator the batch stopped reading early."""
    try:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
            return
        close = getattr(source, "close", None)
        if close is not None:
            close()
    except Exception:
        log.exception("closing the id source failed")


async def _write_through(
    writer: JournalWriter | None, record: JournalRecord
) -> bool:
    """
    Wait until *record* is on disk, even if cancelled meanwhile: the
    fsync takes milliseconds, and a record half-waited-for is a secret
    that may be lost.  Return whether a cancellation arrived.
    """
    assert writer is not None
    future = writer.submit(record)
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done() and future.cancelled():
                break
            cancelled = True
    if future.cancelled():
        raise JournalError(f"the write to {writer.name} was cancelled")
    future.result()

    return cancelled


def _settled_ids(name: str) -> dict[str, str]:
    """
    Read the journal *name* for resuming: the ids a resumed batch
    leaves alone, with their outcome.  Secrets are not kept.
    """
    settled: dict[str, str] = {}
    try:
        file = open(name, "rb")  # noqa: SIM115 -- closed below
    except FileNotFoundError:
        return settled
    with file:
        for record in iter_records(file, name):
            if record.settled:
                settled[record.webhook_id] = record.outcome
            else:
                settled.pop(record.webhook_id, None)

    return settled


def _resumed(webhook_id: str, previous: str) -> RotationOutcome:
    if previous == ROTATED:
        return RotationOutcome(webhook_id=webhook_id, outcome=Outcome.SKIPPED)

    error = NylasError(
        f"webhook {webhook_id} failed for good in an earlier run of this "
        "journal; it was not tried again"
    )
    return RotationOutcome(
        webhook_id=webhook_id, outcome=Outcome.FAILED, error=error
    )


def _interrupted(webhook_id: str) -> RotationOutcome:
    error = SecretStateUnknownError(
        f"the rotation of webhook {webhook_id} was cancelled before its "
        "reply came; its secret may have changed, so rotate it again",
        webhook_id=webhook_id,
        method="POST",
        path=f"/v3/webhooks/rotate-secret/{webhook_id}",
        client_request_id="",
    )

    return RotationOutcome(
        webhook_id=webhook_id, outcome=Outcome.UNKNOWN, error=error
    )


def _from_error(
    webhook_id: str, outcome: Outcome, exc: NylasError, started: float
) -> RotationOutcome:
    attempts: tuple[Any, ...] = ()
    client_request_id = request_id = None
    if isinstance(exc, CallError):
        attempts = exc.attempts
        client_request_id = exc.client_request_id or None
        request_id = exc.nylas_request_id

    return RotationOutcome(
        webhook_id=webhook_id,
        outcome=outcome,
        request_id=request_id,
        client_request_id=client_request_id,
        attempts=len(attempts),
        retry_reasons=_reasons(attempts),
        elapsed=time.monotonic() - started,
        error=exc,
        transient=outcome == Outcome.FAILED and _transient(exc),
    )


def _ambiguous(exc: NylasError) -> bool:
    """
    Whether *exc* leaves open that the rotation happened.

    `rotate_secret` says so with `SecretStateUnknownError`, except when
    a policy of one attempt skips its retry logic: then the bare
    failure arrives, and the transport's mark on it decides.
    """
    failure = _failure(exc)

    return failure is not None and failure.ambiguous


def _reasons(attempts: Iterable[Any]) -> tuple[str, ...]:
    return tuple(a.reason for a in attempts if a.reason)


def _fatal_reason(exc: NylasError) -> StopReason | None:
    """Why *exc* means that every other id would fail too, if it does."""
    if isinstance(exc, AuthenticationError):
        return StopReason.AUTHENTICATION
    if isinstance(exc, ClientClosedError):
        return StopReason.CLIENT_CLOSED

    return None


def _transient(exc: NylasError) -> bool:
    """Whether a failed rotation may succeed if tried again later."""
    transient = TransportError | ServerError | JournalError | ClientClosedError
    if isinstance(exc, transient):
        return True

    return isinstance(exc, NylasApiError) and exc.status in RETRY_STATUSES


def _record(outcome: RotationOutcome) -> JournalRecord:
    kind = {
        Outcome.ROTATED: ROTATED,
        Outcome.FAILED: FAILED,
        Outcome.UNKNOWN: UNKNOWN,
    }[outcome.outcome]
    callback_error = None
    if outcome.callback_error is not None:
        callback_error = _describe(outcome.callback_error)

    return JournalRecord(
        webhook_id=outcome.webhook_id,
        outcome=kind,
        time=now(),
        webhook_secret=outcome.webhook_secret,
        request_id=outcome.request_id,
        client_request_id=outcome.client_request_id,
        attempts=outcome.attempts,
        error=str(outcome.error) if outcome.error is not None else None,
        transient=outcome.transient if kind == FAILED else None,
        callback_error=callback_error,
    )


def _describe(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__

    return f"{name}: {text}" if text else name
