"""
``nylas-async rotate``: rotate many webhook secrets, journaled.

A thin layer over `Webhooks.rotate_secrets`: it gathers the ids, runs
the batch with a progress bar on stderr, writes one JSON line per id,
and turns the summary into an exit code.  New secrets go to the
journal or to a private file, never to a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import stat
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any, Final

import attrs
import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from .._batch import (
    BatchSummary,
    Outcome,
    RotationBatch,
    RotationOutcome,
    _settled_ids,
    _some,
)
from .._client import Client
from .._config import DEFAULT_RATE_LIMIT
from .._errors import NylasError, UsageError
from .._journal import JournalError, describe_os_error
from .._webhooks import check_webhook_id
from ._common import api_options, open_private, stderr_console

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_FAILED: Final = 3
EXIT_UNKNOWN: Final = 4
EXIT_UNSAVED: Final = 5
EXIT_SIGNAL: Final = {signal.SIGINT: 130, signal.SIGTERM: 143}

#: How many failed or unknown ids the closing report names.
_LISTED: Final = 20

_EPILOG: Final = """\
\b
Exit status:
  0    every id was rotated (or already was, in a resumed journal)
  1    an error stopped the command: a journal open to others or
       unwritable, --out or stdout unwritable, a line on stdin that
       is not UTF-8, a refused key for --all
  2    bad usage, including stdout on a terminal with no --journal
       or --out
  3    some ids failed: their secrets are unchanged
  4    the secret of some ids is unknown: run again with --resume
  5    some ids were rotated but their new secrets could not be saved
       (the journal or --out could not be written): they are named;
       rotate them again (with --journal, --resume does it)
  130  interrupted by Ctrl-C, 143 by SIGTERM: ids in flight are
       recorded as rotated or unknown; run again with --resume
"""


@click.command(epilog=_EPILOG)
@click.argument("webhook_ids", nargs=-1, metavar="[ID]...")
@click.option(
    "--ids-file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Read ids from this file, one per line ('-' for stdin); "
    "blank lines and lines starting with '#' are skipped.",
)
@click.option(
    "--all",
    "all_webhooks",
    is_flag=True,
    help="Rotate every destination of the application.",
)
@click.option(
    "--journal",
    type=click.Path(dir_okay=False),
    help="Append each outcome, with the new secret, to this JSON-lines "
    "file (created 0600) before reporting it.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Skip ids the journal shows rotated; rotate again those that "
    "failed for a transient reason, are unknown or were in flight.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=16,
    show_default=True,
    help="Rotations in flight at once.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=DEFAULT_RATE_LIMIT,
    show_default=True,
    help="Most requests per second; 0 turns pacing off.",
)
@click.option(
    "--canary",
    type=click.IntRange(min=0),
    default=0,
    help="Rotate this many ids first and stop unless all succeed.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what would be done, one JSON line per id; rotate nothing.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Write the JSON lines, secrets included, to this file "
    "(created 0600) instead of stdout.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds rotations in flight get to finish after Ctrl-C.",
)
@api_options
def rotate(
    webhook_ids: tuple[str, ...],
    ids_file: str | None,
    all_webhooks: bool,
    journal: str | None,
    resume: bool,
    concurrency: int,
    rate: float,
    canary: int,
    dry_run: bool,
    out: str | None,
    grace: float,
    api_key: str | None,
    api_uri: str | None,
) -> None:
    """
    Rotate the signing secrets of webhook destinations.

    Give ids as arguments, in a file (--ids-file) or take them all
    (--all).  Each id gets one JSON line (webhook_id, outcome, the
    request ids, and webhook_secret when rotated) on stdout or in
    --out.  With --journal the secrets go to the journal and stdout
    lines carry none.  New secrets are never printed on a terminal.
    """
    if not (webhook_ids or ids_file or all_webhooks):
        raise click.UsageError("give webhook ids, --ids-file or --all")
    if all_webhooks and (webhook_ids or ids_file):
        raise click.UsageError("--all takes no other ids")
    if resume and journal is None:
        raise click.UsageError("--resume needs the --journal to resume")
    if out is not None and journal is not None and _same_file(out, journal):
        raise click.UsageError("--out and --journal must be different files")
    if not (math.isfinite(rate) and math.isfinite(grace)):
        raise click.UsageError("--rate and --grace must be finite numbers")
    if ids_file == "-" and sys.stdin is None:
        raise click.UsageError("--ids-file -: stdin is closed")
    if out is None and sys.stdout is None:
        raise click.UsageError(
            "stdout is closed, so the JSON lines have nowhere to go: pass "
            "--out FILE"
        )

    secrets_to_stdout = out is None and journal is None
    if not dry_run and secrets_to_stdout and _stdout_is_terminal():
        raise click.UsageError(
            "refusing to print new secrets on a terminal, where they "
            "would scroll away and be lost: pass --journal PATH (the "
            "secrets go there), --out FILE, or redirect stdout"
        )
    if journal is not None:
        _check_private(journal)

    settings = _Settings(
        ids=webhook_ids,
        ids_file=ids_file,
        all_webhooks=all_webhooks,
        journal=journal,
        resume=resume,
        concurrency=concurrency,
        rate=rate or None,
        canary=canary,
        grace=grace,
        api_key=api_key,
        api_uri=api_uri,
        with_secrets=out is not None or journal is None,
        fsync=out is not None and journal is None,
    )
    code = _run(settings, out, dry_run=dry_run)

    click.get_current_context().exit(code)


@attrs.frozen(kw_only=True)
class _Settings:
    """The command's options, checked."""

    ids: tuple[str, ...]
    ids_file: str | None
    all_webhooks: bool
    journal: str | None
    resume: bool
    concurrency: int
    rate: float | None
    canary: int
    grace: float
    api_key: str | None = attrs.field(repr=False)
    api_uri: str | None
    with_secrets: bool
    fsync: bool


class _BadIdsFile(click.ClickException):
    """An ids file that cannot be read as text, with the line."""


def _run(settings: _Settings, out: str | None, *, dry_run: bool) -> int:
    """Run the command on its own event loop; return the exit code."""
    sink = None
    try:
        if out is not None:
            sink = open_private(out)
        lines = _Lines(sink or sys.stdout, out or "stdout")
        if dry_run:
            return asyncio.run(_dry_run(settings, lines))
        return asyncio.run(_rotate(settings, lines))
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    except NylasError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        where = exc.filename or out or "stdout"
        raise click.ClickException(
            f"{where}: {describe_os_error(exc)}"
        ) from None
    finally:
        if sink is not None:
            # Every line went straight to the file: closing has nothing
            # left to write, and its error would only hide the real one.
            with contextlib.suppress(OSError):
                sink.close()


class _Lines:
    """
    Writes the JSON lines to stdout or the --out file, and keeps the
    ids of those it could not write once writing failed.

    A line goes straight to the file descriptor, whole or not at all
    (a torn line is cut back off a file), so nothing waits in a buffer
    to fail later.  A stream without a descriptor, such as the terminal
    the progress bar redirects, is written and flushed instead.
    """

    def __init__(self, stream: IO[str], name: str) -> None:
        self.stream = stream
        self.name = name
        self.error: OSError | None = None
        self.unwritten: list[RotationOutcome] = []
        try:
            self._fd: int | None = stream.fileno()
        except (OSError, ValueError):
            self._fd = None

    def write(
        self,
        line: dict[str, Any],
        *,
        fsync: bool = False,
        stream: IO[str] | None = None,
    ) -> bool:
        """Write *line*; return whether it was written."""
        if self.error is not None:
            return False

        text = json.dumps(line, separators=(",", ":")) + "\n"
        try:
            if stream is None and self._fd is not None:
                _write_whole(self._fd, text.encode(), fsync=fsync)
            else:
                target = stream or self.stream
                target.write(text)
                target.flush()
                if fsync:
                    os.fsync(target.fileno())
        except OSError as exc:
            self.error = exc
            if isinstance(exc, BrokenPipeError):
                _quiet_stdout()
            return False

        return True

    def failure(self) -> str:
        """What went wrong, once writing failed."""
        reason = describe_os_error(self.error) if self.error else "?"

        return f"could not write to {self.name}: {reason}"

    def explain(self, console: Console, settings: _Settings) -> list[str]:
        """Say what was not written; return the ids whose secret is lost."""
        if self.error is None:
            return []

        console.print(
            f"{self.failure()}; the batch was stopped.", markup=False
        )
        ids = [o.webhook_id for o in self.unwritten]
        shown = _some(ids, _LISTED)
        if settings.journal is not None:
            console.print(
                f"The lines of {len(ids)} ids were not written ({shown}); "
                "every outcome, with its new secret, is in the journal "
                f"{settings.journal}.",
                markup=False,
            )
            return []

        console.print(
            f"The lines of {len(ids)} ids were not written: {shown}.",
            markup=False,
        )

        return [
            o.webhook_id
            for o in self.unwritten
            if o.outcome == Outcome.ROTATED
        ]


def _write_whole(fd: int, data: bytes, *, fsync: bool) -> None:
    """
    Append *data* to *fd*; on failure cut a torn part back off, if *fd*
    is a file no one else appended to meanwhile, then raise.
    """
    start: int | None = None
    with contextlib.suppress(OSError):
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            start = info.st_size
    written = 0
    try:
        while written < len(data):
            written += os.write(fd, data[written:])
        if fsync:
            os.fsync(fd)
    except OSError:
        if start is not None and 0 < written < len(data):
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_size == start + written:
                    os.ftruncate(fd, start)
        raise


def _quiet_stdout() -> None:
    """
    Point stdout at /dev/null once its reader has gone, so that the
    interpreter's last flush does not fail again on the way out.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass


def _stdout_is_terminal() -> bool:
    return sys.stdout is not None and sys.stdout.isatty()


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _check_private(path: str) -> None:
    """Refuse an existing journal open to others before any request."""
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return
    except OSError as exc:
        raise click.ClickException(
            f"{path}: {describe_os_error(exc)}"
        ) from None
    if mode & 0o077:
        raise click.ClickException(
            f"{path} is open to other users (mode {mode:o}); it holds "
            "secrets, so chmod 600 it or choose another path"
        )


def _client(settings: _Settings) -> Client:
    return Client(
        api_key=settings.api_key,
        api_uri=settings.api_uri,
        rate_limit=settings.rate,
    )


def _read_ids(settings: _Settings) -> Iterator[str]:
    """
    Yield the ids of the arguments, then of the file, lazily.

    Raises `_BadIdsFile` at a line that is not UTF-8 text.
    """
    yield from settings.ids
    if settings.ids_file is None:
        return

    if settings.ids_file == "-":
        stdin = sys.stdin
        yield from _lines(getattr(stdin, "buffer", stdin), "stdin")
        return
    with open(settings.ids_file, "rb") as file:
        yield from _lines(file, settings.ids_file)


def _lines(file: Iterable[bytes | str], name: str) -> Iterator[str]:
    for number, raw in enumerate(file, start=1):
        line = raw if isinstance(raw, str) else _decode(raw, number, name)
        text = line.strip().lstrip("\ufeff")
        if text and not text.startswith("#"):
            yield text


def _decode(raw: bytes, number: int, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        message = f"line {number} of {name} is not UTF-8 text"
        raise _BadIdsFile(message) from None


def _count(settings: _Settings) -> int | None:
    """
    The number of distinct ids, when it can be known up front; reading
    them all also finds a bad line before any request.
    """
    path = settings.ids_file
    if path is not None and (path == "-" or not os.path.isfile(path)):
        # Reading a pipe twice would consume the ids before the batch.
        return None
    try:
        return len(set(_read_ids(settings)))
    except _BadIdsFile as exc:
        raise click.UsageError(exc.message) from None
    except OSError as exc:
        raise click.ClickException(
            f"{settings.ids_file}: {describe_os_error(exc)}"
        ) from None


async def _all_ids(client: Client) -> list[str]:
    response = await client.webhooks.list()
    return [webhook.id for webhook in response.data]


async def _dry_run(settings: _Settings, lines: _Lines) -> int:
    if settings.all_webhooks:
        async with _client(settings) as client:
            ids: list[str] | Iterator[str] = await _all_ids(client)
    else:
        _count(settings)
        ids = _read_ids(settings)
    settled: dict[str, str] = {}
    if settings.resume and settings.journal is not None:
        settled = _settled_ids(settings.journal)

    actions: dict[str, int] = {"rotate": 0, "skip": 0, "fail": 0}
    seen: set[str] = set()
    for webhook_id in ids:
        if webhook_id in seen:
            continue
        seen.add(webhook_id)
        line: dict[str, Any] = {"webhook_id": webhook_id}
        try:
            check_webhook_id(webhook_id)
        except NylasError as exc:
            line |= {"action": "fail", "error": str(exc)}
        else:
            previous = settled.get(webhook_id)
            action = {None: "rotate", "rotated": "skip"}.get(previous, "fail")
            line["action"] = action
            if previous is not None:
                line["journal"] = previous
        actions[line["action"]] += 1
        if not lines.write(line):
            raise click.ClickException(
                f"{lines.failure()}; nothing was rotated"
            )

    stderr_console().print(
        f"Dry run: {actions['rotate']} to rotate, {actions['skip']} "
        f"already rotated, {actions['fail']} would fail; nothing was "
        "rotated."
    )

    return EXIT_OK


async def _rotate(settings: _Settings, lines: _Lines) -> int:
    console = stderr_console()
    report = _Report()
    stopped_by: click.ClickException | None = None
    async with _client(settings) as client:
        total: int | None
        if settings.all_webhooks:
            every = await _all_ids(client)
            ids: list[str] | Iterator[str] = every
            total = len(every)
        else:
            total = _count(settings)
            ids = _read_ids(settings)

        batch = client.webhooks.rotate_secrets(
            ids,
            concurrency=settings.concurrency,
            journal=settings.journal,
            resume=settings.resume,
            canary=settings.canary,
            grace=settings.grace,
        )
        running = False
        with _signals(batch, console, settings.grace) as caught:
            try:
                async with batch:
                    running = True
                    await _follow(
                        batch, console, total, report, lines, settings
                    )
            except (JournalError, _BadIdsFile) as exc:
                if not running:
                    raise
                stopped_by = _as_click(exc)

    summary = batch.summary
    console.print(_table(summary))
    report.explain(console, summary, settings)
    lost = report.unsaved + lines.explain(console, settings)
    if stopped_by is not None:
        console.print(f"Error: {stopped_by.format_message()}", markup=False)
    if lost:
        _explain_lost(console, lost, settings)
        return EXIT_UNSAVED

    if caught:
        return EXIT_SIGNAL[caught[-1]]
    if stopped_by is not None or lines.error is not None:
        return EXIT_ERROR
    if summary.unknown:
        return EXIT_UNKNOWN
    if not summary.ok:
        return EXIT_FAILED

    return EXIT_OK


def _as_click(exc: Exception) -> click.ClickException:
    if isinstance(exc, click.ClickException):
        return exc

    return click.ClickException(str(exc))


def _explain_lost(
    console: Console, lost: list[str], settings: _Settings
) -> None:
    """Name the ids rotated whose new secret was kept nowhere."""
    again = (
        f"nylas-async rotate --journal {settings.journal} --resume with "
        "the same ids (their last record is 'started')"
        if settings.journal
        else "nylas-async rotate with those ids"
    )
    console.print(
        Text.assemble(
            (
                f"{len(lost)} webhooks were rotated but their new secrets "
                "could not be saved, so they are lost",
                "bold",
            ),
            f": {_some(lost, _LISTED)}.  Rotate them again: {again}",
        )
    )


async def _follow(
    batch: RotationBatch,
    console: Console,
    total: int | None,
    report: _Report,
    lines: _Lines,
    settings: _Settings,
) -> None:
    """
    Write a line per outcome while the progress bar follows; once a
    line cannot be written, stop the batch and keep the ids it reports.
    """
    # When stdout is the terminal the bar is on, rich carries the lines
    # above the bar; they must then go through the sys.stdout it swaps in.
    on_screen = lines.stream is sys.stdout and _stdout_is_terminal()
    progress = _progress(console, redirect_stdout=on_screen)
    with progress, _logs_above(progress):
        task = progress.add_task(
            "rotating", total=total, retries=0, failed=0, unknown=0
        )
        stream = sys.stdout if on_screen else None
        async for outcome in batch:
            report.add(outcome)
            line = _line(outcome, settings)
            # Without a journal, the --out file is the secret's only home.
            fsync = settings.fsync and "webhook_secret" in line
            if not lines.write(line, fsync=fsync, stream=stream):
                if not lines.unwritten:
                    # Without a journal, what is rotated from now on has
                    # nowhere to go: stop at once.
                    grace = None if settings.journal else 0
                    batch.stop(grace=grace)
                lines.unwritten.append(outcome)
            now = batch.progress
            progress.update(
                task,
                advance=1,
                retries=now.retries,
                failed=now.failed,
                unknown=now.unknown,
            )


def _line(outcome: RotationOutcome, settings: _Settings) -> dict[str, Any]:
    line: dict[str, Any] = {
        "webhook_id": outcome.webhook_id,
        "outcome": str(outcome.outcome),
    }
    if settings.with_secrets and outcome.webhook_secret is not None:
        line["webhook_secret"] = outcome.webhook_secret
    optional = {
        "request_id": outcome.request_id,
        "client_request_id": outcome.client_request_id,
        "attempts": outcome.attempts or None,
        "error": str(outcome.error) if outcome.error else None,
    }
    line.update((k, v) for k, v in optional.items() if v is not None)

    return line


@contextlib.contextmanager
def _signals(
    batch: RotationBatch, console: Console, grace: float
) -> Iterator[list[signal.Signals]]:
    """
    Turn the first Ctrl-C or SIGTERM into a graceful stop of *batch*
    and a second into an immediate one; yield the signals caught.
    """
    loop = asyncio.get_running_loop()
    caught: list[signal.Signals] = []

    def handle(signum: signal.Signals) -> None:
        caught.append(signum)
        if len(caught) == 1:
            console.print(
                f"{signum.name}: taking no more ids; the "
                f"{batch.progress.in_flight} rotations in flight get "
                f"{grace:g} s to finish ({signum.name} again to stop now)"
            )
            batch.stop()
        else:
            batch.stop(grace=0)

    installed = []
    for signum in EXIT_SIGNAL:
        try:
            loop.add_signal_handler(signum, handle, signum)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(signum)
    try:
        yield caught
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


class _RateColumn(ProgressColumn):
    """Ids done per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = f"{speed:.1f}/s" if speed else "-/s"

        return Text(shown, style="progress.data.speed")


def _progress(console: Console, *, redirect_stdout: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TextColumn(
            "retries {task.fields[retries]}  failed {task.fields[failed]}"
            "  unknown {task.fields[unknown]}"
        ),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
        redirect_stdout=redirect_stdout,
    )


@contextlib.contextmanager
def _logs_above(progress: Progress) -> Iterator[None]:
    """
    While the bar is live, send log lines through rich so they print
    above it instead of tearing it: the handlers the group set up hold
    the original stderr, which rich cannot see.
    """
    if progress.disable:
        yield
        return

    moved = []
    for handler in logging.getLogger().handlers:
        if (
            type(handler) is logging.StreamHandler
            and handler.stream is sys.__stderr__
            and sys.stderr is not sys.__stderr__
        ):
            moved.append((handler, handler.stream))
            handler.setStream(sys.stderr)
    try:
        yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)


def _table(summary: BatchSummary) -> Table:
    table = Table(title="Rotation summary", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("ids", summary.total),
        ("rotated", summary.rotated),
        ("already rotated (journal)", summary.skipped),
        ("failed", summary.failed),
        ("unknown", summary.unknown),
        ("duplicates ignored", summary.duplicates),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    for reason, count in sorted(summary.retries_by_reason.items()):
        table.add_row(Text(f"retries: {reason}"), str(count))
    table.add_row("elapsed", f"{summary.elapsed:.1f} s")
    if summary.stop_reason is not None:
        table.add_row("stopped", Text(str(summary.stop_reason)))

    return table


class _Report:
    """
    The first failed and unknown ids, to name them at the end, and
    every id rotated whose new secret the journal could not take.
    """

    def __init__(self) -> None:
        self.failed: list[RotationOutcome] = []
        self.unknown: list[str] = []
        self.unsaved: list[str] = []

    def add(self, outcome: RotationOutcome) -> None:
        if outcome.outcome == Outcome.FAILED:
            if len(self.failed) < _LISTED:
                self.failed.append(outcome)
        elif outcome.outcome == Outcome.UNKNOWN:
            if isinstance(outcome.error, JournalError):
                self.unsaved.append(outcome.webhook_id)
            elif len(self.unknown) < _LISTED:
                self.unknown.append(outcome.webhook_id)

    def explain(
        self, console: Console, summary: BatchSummary, settings: _Settings
    ) -> None:
        for outcome in self.failed:
            console.print(
                f"failed: {outcome.webhook_id}: {outcome.error}",
                markup=False,
            )
        if summary.failed > len(self.failed):
            console.print(f"… and {summary.failed - len(self.failed)} more")
        unknown = summary.unknown - len(self.unsaved)
        if unknown:
            shown = ", ".join(self.unknown)
            more = unknown - len(self.unknown)
            if more:
                shown += f" and {more} more"
            again = (
                f"nylas-async rotate --journal {settings.journal} --resume "
                "with the same ids"
                if settings.journal
                else "nylas-async rotate with those ids"
            )
            console.print(
                f"[bold]The secrets of {unknown} webhooks may have "
                f"changed without reaching us[/bold] ({escape(shown)}); "
                f"rotate them again: {escape(again)}"
            )
