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
import hashlib
import logging
import math
import os
import time
import weakref
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

from ._config import RetryPolicy
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
    UnencodableRecordError,
    describe_os_error,
    iter_records,
    now,
    open_journal,
)
from ._webhooks import check_webhook_id

if TYPE_CHECKING:
    from ._models import Response, WebhookWithSecret

log: Final = logging.getLogger("nylas_async.batch")

DEFAULT_CONCURRENCY: Final = 16
DEFAULT_GRACE: Final = 5.0
#: The most workers a batch runs.  At Nylas's 50 requests a second more
#: only wait in line, each holding a task and, in flight, a connection.
MAX_CONCURRENCY: Final = 1000

Ids: TypeAlias = "Iterable[str] | AsyncIterable[str]"


class Outcome(enum.StrEnum):
    """How the rotation of one webhook ended."""

    #: The new secret is in hand (and in the journal, if there is one).
    ROTATED = "rotated"
    #: The server did not rotate: the secret is unchanged.
    FAILED = "failed"
    #: The secret may have changed without the new one reaching us, or
    #: it changed and the new one could not be journaled: rotate the
    #: webhook again.
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
            secret.  A `JournalError` on an unknown outcome means the
            webhook was rotated but its new secret could not be
            journaled, so it is lost; the journal's last record for it
            is ``started``, and a resumed batch rotates it again.
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


def _budget_number(
    _: object, attribute: attrs.Attribute[float], value: float
) -> None:
    if not (_is_number(value) and 0 <= value < math.inf):
        raise UsageError(
            f"RetryBudget {attribute.name} must be a finite number, zero "
            "or more"
        )


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

    ratio: float = attrs.field(default=0.2, validator=_budget_number)
    reserve: float = attrs.field(default=20.0, validator=_budget_number)


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

    def __init__(self, pace: _Pace, budget: RetryBudget) -> None:
        self.pace = pace
        self.budget = budget
        self.tokens = budget.reserve
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
        elif self.tokens < 1:
            self.denied += 1
            return False
        else:
            self.tokens -= 1
        self.retries += 1

        return True

    def succeeded(self) -> None:
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

    Use it as an async context manager, or iterate it to the end.
    Cancelling the task that iterates, `stop`, and `aclose` all stop
    taking new ids, give requests in flight *grace* seconds, then cancel
    them: each of those ends rotated if its reply came, otherwise
    unknown, and is journaled and counted, never dropped.  Outcomes
    that `aclose` leaves unread are counted and journaled too, and a
    warning names how many rotated ones were never read.  A batch
    dropped while it runs, without `aclose`, stops the same way once
    Python frees it (at once in CPython, unless something else still
    refers to it), with a warning.

    If the journal cannot be written (a full disk), the batch stops at
    once: a rotation whose new secret could not be journaled ends
    unknown with a `JournalError` as its *error*, never rotated, and
    once the outcomes in flight are read, iteration raises that
    `JournalError`.  *concurrency* is at most `MAX_CONCURRENCY`.

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
        if not _count_in(concurrency, 1, MAX_CONCURRENCY):
            raise UsageError(
                "concurrency must be a whole number from 1 to "
                f"{MAX_CONCURRENCY}"
            )
        if not _count_in(canary, 0, None):
            raise UsageError("canary must be zero or a positive integer")
        if not (_is_number(grace) and 0 <= grace < math.inf):
            raise UsageError("grace must be zero or more seconds")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise UsageError("retry must be a RetryPolicy or None")
        if retry_budget is not None and not isinstance(
            retry_budget, RetryBudget
        ):
            raise UsageError("retry_budget must be a RetryBudget or None")
        if on_rotated is not None and not callable(on_rotated):
            raise UsageError("on_rotated must be an async callable or None")
        if on_progress is not None and not callable(on_progress):
            raise UsageError("on_progress must be callable or None")
        name = _journal_name(journal)
        if resume and name is None:
            raise UsageError("resume needs a journal to resume from")

        self._run = _Run(
            rotator,
            ids,
            rate_limit=rate_limit,
            concurrency=concurrency,
            journal=name,
            resume=resume,
            on_rotated=on_rotated,
            on_progress=on_progress,
            canary=canary,
            retry_budget=retry_budget or RetryBudget(),
            retry=retry,
            grace=float(grace),
        )
        # The workers refer to the run, never to this object, so that
        # Python frees it once its user lets go of it.
        finalizer = weakref.finalize(self, self._run.abandoned)
        finalizer.atexit = False

    @property
    def summary(self) -> BatchSummary:
        """The counts so far; final once iteration has ended."""
        return self._run.summary()

    @property
    def progress(self) -> BatchProgress:
        """Where the batch stands now; cheap enough to read often."""
        return self._run.progress()

    @property
    def finished(self) -> bool:
        """Whether every worker is done and the journal closed."""
        return self._run.finished

    def stop(self, *, grace: float | None = None) -> None:
        """
        Stop taking new ids, and cancel requests still in flight after
        *grace* seconds (the batch's own grace by default; 0 cancels
        them now).

        Iteration goes on with the outcomes of the ids in flight, then
        ends.  Calling it again may shorten the grace, never lengthen it.
        """
        if grace is not None and not (_is_number(grace) and grace >= 0):
            raise UsageError("grace must be zero or more seconds")
        self._run.stop(grace=grace)

    async def aclose(self) -> None:
        """
        Stop the batch (see `stop`) and wait until nothing runs.

        Outcomes not yet iterated are counted in `summary` and, with a
        journal, recorded in it; a warning says how many of them were
        rotated, and without a journal or ``on_rotated`` their new
        secrets are lost.  Calling it again does nothing.
        """
        await self._run.aclose()

    async def __aenter__(self) -> RotationBatch:
        await self._run.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._run.aclose()

    def __aiter__(self) -> RotationBatch:
        return self

    async def __anext__(self) -> RotationOutcome:
        return await self._run.next()

    def __repr__(self) -> str:
        p = self.progress

        return (
            f"<RotationBatch {self._run.state}: {p.done} done, "
            f"{p.rotated} rotated, {p.failed} failed, {p.unknown} unknown>"
        )


class _Run:
    """
    The workings of a `RotationBatch`: its workers, journal and counts.

    Kept apart from the batch its user holds, which the workers never
    refer to, so that a batch dropped without `aclose` can be noticed
    and stopped (see `abandoned`).
    """

    def __init__(
        self,
        rotator: Rotator,
        ids: Ids,
        *,
        rate_limit: float | None,
        concurrency: int,
        journal: str | None,
        resume: bool,
        on_rotated: SecretSink | None,
        on_progress: ProgressHook | None,
        canary: int,
        retry_budget: RetryBudget,
        retry: RetryPolicy | None,
        grace: float,
    ) -> None:
        self._rotator = rotator
        self._ids = ids
        self._concurrency = concurrency
        self._journal_path = journal
        self._resume = resume
        self._on_rotated = on_rotated
        self._on_progress = on_progress
        self._retry = retry
        self._grace = grace
        self._hooks = _Hooks(_Pace(rate_limit), retry_budget)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._started: float | None = None
        self._finished_at: float | None = None
        self._source: Iterator[str] | AsyncIterator[str] | None = None
        self._take_lock = asyncio.Lock()
        # Holding a digest of every id seen keeps duplicates out at a
        # cost of about 40 bytes per id, far less than the outcomes
        # themselves, which are never kept.
        self.seen = _Digests()
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
        self.finished = False
        self._hard_stop: asyncio.TimerHandle | None = None
        self._stop_reason: StopReason | None = None
        self._fatal: BaseException | None = None

        self._counts: Counter[Outcome] = Counter()
        self._callback_failures = 0
        self._duplicates = 0
        self._retry_reasons: Counter[str] = Counter()

    # What the batch asks of it.

    def summary(self) -> BatchSummary:
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

    def progress(self) -> BatchProgress:
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
    def state(self) -> str:
        if self.finished:
            return "finished"
        if self._supervisor is None:
            return "not started"

        return "running"

    def stop(self, *, grace: float | None = None) -> None:
        grace = self._grace if grace is None else grace
        if not self._stopping:
            self._stopping = True
            if self._stop_reason is None:
                self._stop_reason = StopReason.STOPPED
            self._canary_done.set()
        if self._supervisor is None or self.finished:
            return

        loop = asyncio.get_running_loop()
        when = loop.time() + grace
        if self._hard_stop is not None:
            if self._hard_stop.when() <= when:
                return
            self._hard_stop.cancel()
        self._hard_stop = loop.call_at(when, self._cancel_workers)

    async def aclose(self) -> None:
        starting = self._starting
        if starting is not None and not starting.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(starting)
        if self._supervisor is None:
            self.finished = True
            return

        self._closing = True
        self._room.set()
        if not self.finished:
            self.stop()
        await asyncio.shield(self._supervisor)

    async def next(self) -> RotationOutcome:
        await self.start()
        while True:
            if self._outcomes and not self._closing:
                outcome = self._outcomes.popleft()
                self._room.set()
                return outcome
            if self.finished or self._closing:
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

    def abandoned(self) -> None:
        """
        Called when the batch is freed: if it still runs, stop it on its
        loop.  This may run on any thread, or after the loop is closed.
        """
        loop = self._loop
        if loop is None or self.finished or self._closing:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._abandon)

    def _abandon(self) -> None:
        if self.finished or self._closing:
            return

        log.warning(
            "a RotationBatch was dropped while it ran, without aclose() "
            "or async with: stopping it; rotations in flight get %g s",
            self._grace,
        )
        self._closing = True
        self._room.set()
        self.stop()

    # Starting and finishing.

    def _elapsed(self) -> float:
        if self._started is None:
            return 0.0
        end = self._finished_at or time.monotonic()

        return end - self._started

    async def start(self) -> None:
        """Start the workers once, however many callers ask at once."""
        if self._starting is None:
            if self.finished:
                return
            self._starting = asyncio.ensure_future(self._open())
        await asyncio.shield(self._starting)

    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        name = self._journal_path
        if name is not None:
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
            self.finished = True
            self._ready.set()
            if self._closing:
                self._warn_unread()

    def _warn_unread(self) -> None:
        """Say how many rotated outcomes were closed away unread."""
        unread = [o for o in self._outcomes if o.outcome == Outcome.ROTATED]
        if not unread:
            return

        if self._writer is not None:
            log.warning(
                "the batch was closed before %d rotated outcomes were "
                "read; their new secrets are in the journal %s",
                len(unread),
                self._writer.name,
            )
            return
        lost = [
            o.webhook_id
            for o in unread
            if self._on_rotated is None or o.callback_error is not None
        ]
        log.warning(
            "the batch was closed before %d rotated outcomes were read; "
            "%d of them went to no journal and no on_rotated, so their "
            "new secrets are lost: rotate these webhooks again: %s",
            len(unread),
            len(lost),
            _some(lost),
        )

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
            if not self.seen.add(text):
                self._duplicates += 1
                return None
            self._count_canary()
            return _Malformed(text, exc)

        if not self.seen.add(webhook_id):
            self._duplicates += 1
            return None
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
            outcome, cancelled = await self._journal(outcome)

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
                    # The secret is on disk already; this adds a note.
                    _, late = await self._journal(outcome)
                    cancelled = late or cancelled

        self._report(outcome, canary=canary)
        if cancelled:
            raise asyncio.CancelledError

    async def _journal(
        self, outcome: RotationOutcome
    ) -> tuple[RotationOutcome, bool]:
        """
        Write the record of *outcome*, even through cancellation; return
        the outcome to report and whether a cancellation arrived.

        A new secret that cannot be written makes the outcome unknown:
        no one may hear of a secret the journal does not hold.
        """
        try:
            cancelled = await _write_through(self._writer, _record(outcome))
        except UnencodableRecordError as exc:
            if outcome.outcome != Outcome.ROTATED:
                log.warning("%s; it is reported, not journaled", exc)
                return outcome, False
            return await self._journal(_unsaved(outcome, exc))
        except JournalError as exc:
            self._fail_journal(exc)
            if outcome.outcome == Outcome.ROTATED:
                outcome = _unsaved(outcome, exc)
            return outcome, False

        return outcome, cancelled

    async def _write(self, record: JournalRecord) -> None:
        if await _write_through(self._writer, record):
            raise asyncio.CancelledError

    def _fail_journal(self, exc: JournalError) -> None:
        """Stop at once: nothing rotated from now on could be kept."""
        if self._fatal is None:
            log.error("stopping the batch: %s", exc)
            self._fatal = exc
        self._stop_reason = StopReason.JOURNAL
        self.stop(grace=0)

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
                self._on_progress(self.progress())
            except Exception:
                log.exception("on_progress failed; the batch goes on")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count_in(value: object, low: int, high: int | None) -> bool:
    """Whether *value* is an int from *low* to *high* (no bound: None)."""
    if type(value) is not int or value < low:
        return False

    return high is None or value <= high


def _journal_name(journal: object) -> str | None:
    """The journal path as a str, or ``UsageError`` if it cannot be one."""
    if journal is None:
        return None
    if not isinstance(journal, str | os.PathLike):
        kind = type(journal).__name__
        raise UsageError(f"journal must be a file path, not {kind}")
    name = os.fspath(journal)
    if not isinstance(name, str):
        raise UsageError("journal must be a str path, not bytes")
    if not name:
        raise UsageError("journal must be a file path, not empty")
    if "\0" in name:
        raise UsageError("journal path holds a NUL character")

    return name


def _some(ids: list[str], shown: int = 10) -> str:
    """Up to *shown* of *ids*, and how many more."""
    text = ", ".join(ids[:shown])
    if len(ids) > shown:
        text += f" and {len(ids) - shown} more"

    return text


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


_EMPTY: Final = bytes(16)


class _Digests:
    """
    The set of texts a batch has seen, kept as 16-byte BLAKE2b digests
    in one open-addressed table rather than as a Python object each:
    about 40 bytes a text instead of 120.

    Two distinct texts share a digest with a chance of about 1e-29 at
    100,000 texts (and a text whose digest is all zeros, the mark of a
    free slot, is as unlikely), so it is exact in practice.
    """

    __slots__ = ("_mask", "_table", "_used")

    def __init__(self) -> None:
        self._mask = 1023
        self._table = bytearray(16 * (self._mask + 1))
        self._used = 0

    def __sizeof__(self) -> int:
        return object.__sizeof__(self) + self._table.__sizeof__()

    def add(self, text: str) -> bool:
        """Add *text*; return whether it was not there yet."""
        data = text.encode("utf-8", "surrogatepass")
        digest = hashlib.blake2b(data, digest_size=16).digest()
        if not self._place(digest):
            return False
        self._used += 1
        if self._used * 3 > self._mask * 2:
            self._grow()

        return True

    def _place(self, digest: bytes) -> bool:
        """Store *digest* unless it is there; return whether it was not."""
        table, mask = self._table, self._mask
        slot = hash(digest) & mask
        while True:
            start = slot * 16
            held = table[start : start + 16]
            if held == digest:
                return False
            if held == _EMPTY:
                table[start : start + 16] = digest
                return True
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        old = self._table
        mask = self._mask = self._mask * 2 + 1
        table = self._table = bytearray(16 * (mask + 1))
        for start in range(0, len(old), 16):
            digest = bytes(old[start : start + 16])
            if digest == _EMPTY:
                continue
            slot = hash(digest) & mask
            while table[slot * 16 : slot * 16 + 16] != _EMPTY:
                slot = (slot + 1) & mask
            table[slot * 16 : slot * 16 + 16] = digest


def _settled_ids(name: str) -> dict[str, str]:
    """
    Read the journal *name* for resuming: the ids a resumed batch
    leaves alone, with their outcome.  Secrets are not kept.

    Raises `JournalError` if the file is there but cannot be read.
    """
    settled: dict[str, str] = {}
    try:
        file = open(name, "rb")  # noqa: SIM115 -- closed below
    except FileNotFoundError:
        return settled
    except OSError as exc:
        raise JournalError(
            f"cannot read the journal {name}: {describe_os_error(exc)}"
        ) from exc
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


def _unsaved(outcome: RotationOutcome, cause: JournalError) -> RotationOutcome:
    """The unknown outcome of a rotation whose secret the journal lacks."""
    error = JournalError(
        f"webhook {outcome.webhook_id} was rotated, but its new secret "
        f"could not be journaled ({cause}), so it is lost: rotate the "
        "webhook again"
    )
    error.__cause__ = cause

    return attrs.evolve(
        outcome,
        outcome=Outcome.UNKNOWN,
        webhook_secret=None,
        error=error,
        transient=False,
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
