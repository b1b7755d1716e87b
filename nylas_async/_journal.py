"""
The rotation journal: a JSON-lines file that holds every new secret.

A batch rotation appends one record per event, and each record is on
disk (written and fsynced) before the batch acts on it: a ``started``
record before a rotation is sent, and the outcome record (with the new
secret when there is one) before the outcome is reported or handed to
a callback.  A process killed at any moment therefore leaves, for each
webhook, either its new secret or a record that says its secret may
have changed.

A later record for a webhook supersedes every earlier one.  A line
that does not parse (the torn end of a killed process) is skipped.

A write that fails (a full disk, a file size limit) fails the records
it held, except those whose whole line reached the disk; a torn line it
left is cut off if it can be, and the writer refuses every later record,
so that nothing is ever appended to a torn line.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import stat
from collections.abc import Iterator, Mapping
from typing import IO, Any, Final

import attrs

from ._errors import NylasError

log: Final = logging.getLogger("nylas_async.journal")

#: The mode a new journal gets; an existing one may be narrower.
JOURNAL_MODE: Final = 0o600

STARTED: Final = "started"
ROTATED: Final = "rotated"
FAILED: Final = "failed"
UNKNOWN: Final = "unknown"
_OUTCOMES: Final = frozenset({STARTED, ROTATED, FAILED, UNKNOWN})


class JournalError(NylasError, ValueError):
    """
    A journal cannot be used: it is readable by others, is not a
    journal, or could not be opened or written.
    """


class UnencodableRecordError(JournalError):
    """
    A record whose webhook id or secret is not text that UTF-8 can hold
    (a lone surrogate): it cannot be written, but the journal is fine.
    """


@attrs.frozen(kw_only=True)
class JournalRecord:
    """
    One line of a rotation journal.

    *outcome* is ``"rotated"``, ``"failed"``, ``"unknown"`` or
    ``"started"``.  A ``started`` record that no other record for the
    webhook follows means the process stopped while the rotation was in
    flight: the secret may have changed, as for ``unknown``.

    *webhook_secret* is set only for ``rotated`` and is left out of
    ``repr()``.  *transient* tells, for ``failed``, whether running
    again may succeed (a resumed batch retries those).  *error* and
    *callback_error* are descriptions, never secrets.  *time* is when
    the record was written, in UTC.
    """

    webhook_id: str
    outcome: str
    time: dt.datetime
    webhook_secret: str | None = attrs.field(default=None, repr=False)
    request_id: str | None = None
    client_request_id: str | None = None
    attempts: int = 0
    error: str | None = None
    transient: bool | None = None
    callback_error: str | None = None

    @property
    def settled(self) -> bool:
        """
        Whether a resumed batch leaves this webhook alone: it was
        rotated, or it failed in a way that running again cannot fix.
        """
        return self.outcome == ROTATED or (
            self.outcome == FAILED and self.transient is False
        )

    def to_line(self) -> bytes:
        """
        Return the record as one JSON line, newline included.

        Descriptions (*error*, *callback_error*, the request ids) that
        hold a lone surrogate are written with it escaped.

        Raises:
            UnencodableRecordError: the webhook id or the secret holds
                a lone surrogate; its message never holds the secret.
        """
        data: dict[str, Any] = {
            "webhook_id": self.webhook_id,
            "outcome": self.outcome,
            "time": self.time.isoformat(timespec="milliseconds"),
        }
        optional = {
            "webhook_secret": self.webhook_secret,
            "request_id": _escaped(self.request_id),
            "client_request_id": _escaped(self.client_request_id),
            "error": _escaped(self.error),
            "transient": self.transient,
            "callback_error": _escaped(self.callback_error),
        }
        data.update((k, v) for k, v in optional.items() if v is not None)
        if self.attempts:
            data["attempts"] = self.attempts
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        try:
            return (text + "\n").encode()
        except UnicodeEncodeError:
            # The error holds the whole line, secret included: drop it.
            pass

        raise UnencodableRecordError(
            f"the {self.outcome} record of webhook {self.webhook_id!r} "
            "cannot be written: its id or new secret is not valid text "
            "(a lone surrogate)"
        )

    @classmethod
    def from_json(cls, data: Any) -> JournalRecord | None:
        """Return the record *data* holds, or ``None`` if it holds none."""
        if not isinstance(data, Mapping):
            return None
        webhook_id = data.get("webhook_id")
        outcome = data.get("outcome")
        if not isinstance(webhook_id, str) or outcome not in _OUTCOMES:
            return None
        try:
            time = dt.datetime.fromisoformat(data["time"])
        except (KeyError, TypeError, ValueError):
            return None
        attempts = data.get("attempts", 0)
        transient = data.get("transient")

        return cls(
            webhook_id=webhook_id,
            outcome=outcome,
            time=time,
            webhook_secret=_str(data.get("webhook_secret")),
            request_id=_str(data.get("request_id")),
            client_request_id=_str(data.get("client_request_id")),
            attempts=attempts if type(attempts) is int else 0,
            error=_str(data.get("error")),
            transient=transient if isinstance(transient, bool) else None,
            callback_error=_str(data.get("callback_error")),
        )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _escaped(text: str | None) -> str | None:
    """*text* with any lone surrogate escaped, as UTF-8 cannot hold it."""
    if text is None or text.isascii():
        return text

    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def now() -> dt.datetime:
    """The time to stamp on a record: aware UTC."""
    return dt.datetime.now(dt.UTC)


def read_journal(path: str | os.PathLike[str]) -> dict[str, JournalRecord]:
    """
    Return the latest record of each webhook in the journal at *path*.

    Load new secrets from it with, for example::

        secrets = {
            webhook_id: record.webhook_secret
            for webhook_id, record in read_journal(path).items()
            if record.outcome == "rotated"
        }

    Lines that do not parse are skipped: a process killed while writing
    leaves a torn last line, and a resumed batch seals it with a line
    break before appending.  The result holds the secrets: keep it out
    of logs.

    Raises:
        JournalError: the file holds lines but no journal record.
        OSError: the file cannot be read.
    """
    latest: dict[str, JournalRecord] = {}
    with open(path, "rb") as file:
        for record in iter_records(file, os.fspath(path)):
            latest[record.webhook_id] = record

    return latest


def iter_records(file: IO[bytes], name: str) -> Iterator[JournalRecord]:
    """
    Yield the records of the open journal *file* in order, one line at
    a time, skipping lines that do not parse (see `read_journal`),
    nested too deeply to parse included.
    """
    good = bad = 0
    for number, line in enumerate(file, start=1):
        if not line.strip():
            continue
        try:
            record = JournalRecord.from_json(json.loads(line))
        except (ValueError, RecursionError):
            record = None
        if record is None:
            # A torn last line is what a kill leaves, even in a journal
            # that had no other line yet: only whole lines count.
            if line.endswith(b"\n"):
                bad += 1
                log.warning(
                    "skipping line %d of %s: not a record", number, name
                )
            continue
        good += 1
        yield record

    if bad and not good:
        raise JournalError(f"{name} is not a rotation journal")


def open_journal(path: str | os.PathLike[str]) -> int:
    """
    Open the journal at *path* for appending and return the descriptor.

    A new file is created with mode 0600 and its directory entry made
    durable; an existing one keeps its mode, and a torn last line is
    sealed with a line break so that the next record starts cleanly.

    Raises:
        JournalError: the file is readable or writable by others (it
            holds secrets), is not a regular file, or cannot be opened
            (a missing directory, no permission).
    """
    name = os.fspath(path)
    try:
        fd, created = _open(name)
    except OSError as exc:
        raise JournalError(
            f"cannot open the journal {name}: {describe_os_error(exc)}"
        ) from exc

    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise JournalError(f"{name} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise JournalError(
                f"{name} is open to other users (mode {mode:o}); it "
                "holds secrets, so chmod 600 it or choose another path"
            )
        if created:
            _sync_directory(name)
        elif info.st_size and os.pread(fd, 1, info.st_size - 1) != b"\n":
            os.write(fd, b"\n")
    except OSError as exc:
        os.close(fd)
        raise JournalError(
            f"cannot prepare the journal {name}: {describe_os_error(exc)}"
        ) from exc
    except BaseException:
        os.close(fd)
        raise

    return fd


def _open(name: str) -> tuple[int, bool]:
    """Open or create *name* for appending; say whether it is new."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
    try:
        fd = os.open(name, flags | os.O_CREAT | os.O_EXCL, JOURNAL_MODE)
    except FileExistsError:
        return os.open(name, flags), False

    return fd, True


def describe_os_error(exc: OSError) -> str:
    """
    The reason in *exc* as a person reads it, such as ``No space left
    on device (errno 28)``; its own ``str()`` may say ``None``.
    """
    if exc.strerror is None:
        return str(exc) or type(exc).__name__
    if exc.errno is None:
        return exc.strerror

    return f"{exc.strerror} (errno {exc.errno})"


def _sync_directory(name: str) -> None:
    """Make the new file's directory entry survive a crash."""
    directory = os.path.dirname(os.path.abspath(name))
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class JournalWriter:
    """
    Appends records to an open journal, durably and in order.

    Records submitted while a write is in progress are written
    together, with one fsync, on a worker thread: the event loop never
    waits for the disk, and many workers share each fsync.  The future
    of each record completes once the record is on disk.

    A write that fails breaks the writer: the records of that write
    whose whole line is not on disk fail with `JournalError`, and so
    does every record after them.  A torn line the failure left is cut
    off if no one else appended meanwhile; either way nothing is ever
    written after it.
    """

    def __init__(self, fd: int, name: str) -> None:
        self._fd = fd
        self.name = name
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._failure: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def failure(self) -> str | None:
        """Why the writer broke, or ``None`` while it works."""
        return self._failure

    def submit(self, record: JournalRecord) -> asyncio.Future[None]:
        """
        Queue *record* and return a future done when it is on disk.

        The future fails with `JournalError` if the write fails.

        Raises:
            UnencodableRecordError: the record cannot be encoded (see
                `JournalRecord.to_line`); the writer is unharmed.
            JournalError: the writer is closed or broke earlier.
        """
        if self._failure is not None:
            raise JournalError(self._failure)
        if self._closing:
            raise JournalError(f"the journal {self.name} is closed")
        line = record.to_line()
        future = asyncio.get_running_loop().create_future()
        self._pending.append((line, future))
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(
                self._run(), name="nylas_async journal writer"
            )
            self._task.add_done_callback(self._ended)

        return future

    async def aclose(self) -> None:
        """Write what is queued, then close the file; idempotent."""
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        task = self._task
        if task is None or task.done():
            _close(self._fd)
            return

        # A write on its thread must not lose its file, even if this
        # wait is cancelled.
        task.add_done_callback(lambda _: _close(self._fd))
        await asyncio.wait([task])

    async def _run(self) -> None:
        while True:
            batch, self._pending = self._pending, []
            if batch:
                await self._flush(batch)
                continue
            if self._closing:
                return
            self._wake.clear()
            await self._wake.wait()

    def _ended(self, task: asyncio.Task[None]) -> None:
        """
        Fail what is still queued once the writer task ends, however it
        ends: cancelled before its first step, it never ran its body.
        """
        if self._failure is None and (task.cancelled() or task.exception()):
            self._failure = f"the journal writer of {self.name} stopped"
        batch, self._pending = self._pending, []
        _fail(batch, self._failure or f"the journal {self.name} is closed")

    async def _flush(
        self, batch: list[tuple[bytes, asyncio.Future[None]]]
    ) -> None:
        """Write *batch* in one go and settle the future of each line."""
        if self._failure is not None:
            _fail(batch, self._failure)
            return

        data = b"".join(line for line, _ in batch)
        write = asyncio.ensure_future(
            asyncio.to_thread(_append, self._fd, data)
        )
        cancelled = await finish(write)
        error: BaseException | None
        try:
            kept, error = write.result()
        except Exception as exc:
            kept, error = 0, exc
        if error is not None:
            self._failure = (
                f"cannot write the journal {self.name}: {_reason(error)}"
            )

        end = 0
        for line, future in batch:
            end += len(line)
            if future.done():
                continue
            if end <= kept:
                future.set_result(None)
            else:
                future.set_exception(JournalError(self._failure))
        if cancelled:
            raise asyncio.CancelledError


async def finish(future: asyncio.Future[Any]) -> bool:
    """
    Wait until *future* is done, even if cancelled meanwhile, without
    raising what it raises; return whether a cancellation arrived.
    """
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError:
            cancelled = True

    return cancelled


def _fail(batch: list[tuple[bytes, asyncio.Future[None]]], why: str) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(JournalError(why))


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError):
        return describe_os_error(error)

    return f"{type(error).__name__}: {error}"


def _close(fd: int) -> None:
    # Every record was fsynced or failed already: a failing close loses
    # nothing more.
    with contextlib.suppress(OSError):
        os.close(fd)


def _append(fd: int, data: bytes) -> tuple[int, OSError | None]:
    """
    Write all of *data* at the end of *fd*, then fsync it.

    Return how many bytes of *data* are on disk as whole lines (all of
    them, unless something failed) and what failed, if anything.
    """
    start = -1
    written = 0
    try:
        start = os.fstat(fd).st_size
        view = memoryview(data)
        while written < len(data):
            written += os.write(fd, view[written:])
        os.fsync(fd)
    except OSError as exc:
        return _salvage(fd, data, start, written), exc

    return len(data), None


def _salvage(fd: int, data: bytes, start: int, written: int) -> int:
    """
    After *written* bytes of *data* went to *fd* at offset *start* and
    the rest failed: cut off the torn line, fsync the whole lines, and
    return their length (0 if they cannot be made durable).
    """
    if written == len(data):
        # The fsync failed.  What reached the disk is then unknown, and
        # a second fsync may succeed without writing anything.
        return 0

    kept = data.rfind(b"\n", 0, written) + 1
    if written > kept and start >= 0:
        with contextlib.suppress(OSError):
            # Unless someone else appended meanwhile.
            if os.fstat(fd).st_size == start + written:
                os.ftruncate(fd, start + kept)
    if not kept:
        return 0
    try:
        os.fsync(fd)
    except OSError:
        return 0

    return kept
