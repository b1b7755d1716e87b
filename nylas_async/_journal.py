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
"""

from __future__ import annotations

import asyncio
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
    journal, or could not be written.
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
        """Return the record as one JSON line, newline included."""
        data: dict[str, Any] = {
            "webhook_id": self.webhook_id,
            "outcome": self.outcome,
            "time": self.time.isoformat(timespec="milliseconds"),
        }
        optional = {
            "webhook_secret": self.webhook_secret,
            "request_id": self.request_id,
            "client_request_id": self.client_request_id,
            "error": self.error,
            "transient": self.transient,
            "callback_error": self.callback_error,
        }
        data.update((k, v) for k, v in optional.items() if v is not None)
        if self.attempts:
            data["attempts"] = self.attempts
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))

        return (text + "\n").encode()

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
    a time, skipping lines that do not parse (see `read_journal`).
    """
    good = bad = 0
    for number, line in enumerate(file, start=1):
        if not line.strip():
            continue
        try:
            record = JournalRecord.from_json(json.loads(line))
        except ValueError:
            record = None
        if record is None:
            bad += 1
            if line.endswith(b"\n"):
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
            holds secrets), or is not a regular file.
        OSError: it cannot be opened.
    """
    name = os.fspath(path)
    flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
    try:
        fd = os.open(name, flags | os.O_CREAT | os.O_EXCL, JOURNAL_MODE)
        created = True
    except FileExistsError:
        fd = os.open(name, flags)
        created = False

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
    except BaseException:
        os.close(fd)
        raise

    return fd


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
    """

    def __init__(self, fd: int, name: str) -> None:
        self._fd = fd
        self.name = name
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def submit(self, record: JournalRecord) -> asyncio.Future[None]:
        """
        Queue *record* and return a future done when it is on disk.

        The future fails with `JournalError` if the write fails.
        """
        if self._closing:
            raise JournalError(f"the journal {self.name} is closed")
        future = asyncio.get_running_loop().create_future()
        self._pending.append((record.to_line(), future))
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(
                self._run(), name="nylas_async journal writer"
            )

        return future

    async def aclose(self) -> None:
        """Write what is queued, then close the file; idempotent."""
        if self._fd < 0:
            return
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        os.close(self._fd)
        self._fd = -1

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                if self._closing:
                    return
                continue
            data = b"".join(line for line, _ in batch)
            try:
                await asyncio.to_thread(_append, self._fd, data)
            except OSError as exc:
                error = JournalError(
                    f"cannot write the journal {self.name}: {exc}"
                )
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)


def _append(fd: int, data: bytes) -> None:
    """Write all of *data* at the end of *fd*, then fsync it."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.fsync(fd)
