"""
``nylas-async webhooks``: manage webhook destinations from the shell.

One subcommand per endpoint, each a thin layer over `client.webhooks`:
a table on stdout by default, JSON with ``--json``.  A new secret is
shown only when asked for (``--show-secret``) or written to a private
file (``--secret-out``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import io
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import IO, Any, Final, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._client import Client
from .._errors import (
    NotFoundError,
    NylasError,
    SecretStateUnknownError,
    UsageError,
)
from .._models import (
    CreateWebhookRequest,
    UpdateWebhookRequest,
    Webhook,
    WebhookWithSecret,
    unstructure,
)
from ._common import api_options, open_private

T = TypeVar("T")

EXIT_ERROR: Final = 1
EXIT_NOT_FOUND: Final = 3
EXIT_UNKNOWN: Final = 4
EXIT_UNSAVED: Final = 5

_EPILOG: Final = """\
Exit status: 0 done; 1 Nylas refused the request or could not be
reached, or a new secret could not be saved or printed everywhere
asked; 2 bad usage; 3 no such destination; 4 create lost its reply or
was interrupted, so a destination may exist whose secret nobody holds
(list them before creating again); 5 the destination was created but
its secret could be neither saved nor printed (rotate it).
"""

# C0 and C1 controls, the marks that reorder text on screen, and lone
# surrogates (undecodable bytes): shown escaped, so that no description
# or URL can drive the terminal, hide what it says or fail to print.
_UNPRINTABLE: Final = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
    r"\ud800-\udfff]"
)

_MIN_WIDTH: Final = 80

_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")

_FIELDS: Final = (
    "id",
    "description",
    "status",
    "webhook_url",
    "trigger_types",
    "notification_email_addresses",
    "compressed_delivery",
    "created_at",
    "updated_at",
    "status_updated_at",
)


class _NotFound(click.ClickException):
    """No such destination: one line on stderr, exit status 3."""

    exit_code = EXIT_NOT_FOUND


class _StateUnknown(click.ClickException):
    """A create lost its reply: one line on stderr, exit status 4."""

    exit_code = EXIT_UNKNOWN


class _SecretLost(click.ClickException):
    """A created destination's secret was neither saved nor shown: one
    line on stderr, exit status 5, as for rotate."""

    exit_code = EXIT_UNSAVED


class _Text(click.ParamType[str]):
    """
    Text from the command line, refused if it holds bytes the locale
    cannot decode: Python keeps them as lone surrogates, which would
    reach Nylas as replacement characters.
    """

    name = "text"

    def convert(
        self,
        value: Any,
        param: click.Parameter | None,
        ctx: click.Context | None,
    ) -> str:
        text = str(value)
        if _SURROGATE.search(text) is not None:
            encoding = sys.getfilesystemencoding()
            self.fail(f"holds bytes that are not valid {encoding}", param, ctx)

        return text


_TEXT: Final = _Text()


def _json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON, not a table."
    )(f)


def _call(
    api_key: str | None,
    api_uri: str | None,
    action: Callable[[Client], Awaitable[T]],
) -> T:
    """
    Run *action* with a client made from the options, and turn library
    errors into one line on stderr and an exit status.
    """

    async def run() -> T:
        async with Client(api_key=api_key, api_uri=api_uri) as client:
            return await action(client)

    try:
        return asyncio.run(run())
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    except NotFoundError as exc:
        raise _NotFound(str(exc)) from None
    except SecretStateUnknownError as exc:
        raise _StateUnknown(str(exc)) from None
    except NylasError as exc:
        raise click.ClickException(str(exc)) from None


def _render(table: Table) -> str:
    """
    *table* as text for standard output, at its width (80 columns at
    least, as narrower tables drop values, and a narrower terminal only
    wraps the lines) and with colour only on a terminal.

    Strings are taken as plain text, without markup, emoji codes or
    highlighting, since every value shown comes from a user or Nylas.
    The table is rendered into a buffer because rich writes to the
    terminal itself, outside `_out`, even while capturing.
    """
    terminal = Console()
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=max(terminal.width, _MIN_WIDTH),
        force_terminal=terminal.is_terminal,
        color_system=terminal.color_system,  # type: ignore[arg-type]
        highlight=False,
        markup=False,
        emoji=False,
    )
    console.print(table)

    return buffer.getvalue()


def _echo_json(value: Any, *, indent: int | None = None) -> None:
    """Print *value* as JSON, non-ASCII text as it is unless standard
    output cannot encode it."""
    _out(_json_text(value, indent=indent))


def _json_text(value: Any, *, indent: int | None = None) -> str:
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    if _writable(text) != text:
        text = json.dumps(value, indent=indent)

    return text


def _print_table(table: Table) -> None:
    _out(_render(table), nl=False)


def _out(text: str, *, nl: bool = True) -> None:
    """
    Print *text* on standard output.  If that fails, end the command
    with exit status 1: quietly for a closed pipe, as click does, and
    with one line on stderr otherwise (a full disk, an I/O error).
    """
    error = _write(text, nl=nl)
    if error is None:
        return
    if error.errno == errno.EPIPE:
        raise click.exceptions.Exit(EXIT_ERROR)

    raise click.ClickException(
        f"cannot write to standard output: {_os(error)}"
    )


def _write(text: str, *, nl: bool = True) -> OSError | None:
    """
    Print *text* on standard output and return the error if that fails.

    After a failure, standard output is pointed at the null device, so
    that the flush at exit does not fail again with a traceback.
    """
    try:
        click.echo(_writable(text), nl=nl)
    except OSError as exc:
        _discard_stdout()
        return exc

    return None


def _writable(text: str) -> str:
    """*text* with what standard output cannot encode (lone surrogates,
    or non-ASCII on an ASCII stream) as backslash escapes."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"

    return text.encode(encoding, "backslashreplace").decode(encoding)


def _discard_stdout() -> None:
    # A stream without a file descriptor (a test runner's) has nothing
    # left to flush at exit.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, tuple):
        return ", ".join(value) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"

    return str(value)


def _cell(value: Any) -> Text:
    """*value* as table text: plain, never read as rich markup, with
    control characters shown as escapes."""
    return Text(_printable(_shown(value)))


def _printable(text: str) -> str:
    """*text* from a user or Nylas, with the characters that could drive
    a terminal shown as escapes such as ``\\x1b``."""
    return _UNPRINTABLE.sub(_escaped, text)


def _escaped(found: re.Match[str]) -> str:
    return found.group().encode("unicode_escape").decode("ascii")


def _destination_json(webhook: Webhook) -> dict[str, Any]:
    """A destination as Nylas shows it, never with its secret."""
    data: dict[str, Any] = unstructure(webhook)
    data.pop("webhook_secret", None)

    return data


def _print_destination(webhook: Webhook, *, as_json: bool) -> None:
    if as_json:
        _echo_json(_destination_json(webhook))
        return

    table = Table(show_header=False, box=None)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name in _FIELDS:
        table.add_row(name, _cell(getattr(webhook, name)))
    _print_table(table)


def _print_destinations(webhooks: Sequence[Webhook], *, as_json: bool) -> None:
    if as_json:
        _echo_json([_destination_json(w) for w in webhooks])
        return

    table = Table(title=f"{len(webhooks)} webhook destinations")
    table.add_column("id", no_wrap=True, overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("webhook_url", overflow="fold")
    table.add_column("trigger_types", overflow="fold")
    table.add_column("description", overflow="fold")
    for webhook in webhooks:
        table.add_row(
            _cell(webhook.id),
            _cell(webhook.status),
            _cell(webhook.webhook_url),
            _cell(webhook.trigger_types),
            _cell(webhook.description),
        )
    _print_table(table)


@click.group(epilog=_EPILOG)
def webhooks() -> None:
    """List, inspect, create, change and delete webhook destinations."""
    if sys.stdout is None:
        raise click.UsageError(
            "standard output is closed, so nothing could be shown; "
            "redirect it to /dev/null to discard what is printed"
        )


@webhooks.command("list")
@_json_option
@api_options
def list_command(
    as_json: bool, api_key: str | None, api_uri: str | None
) -> None:
    """List every destination of the application, without secrets."""
    response = _call(api_key, api_uri, lambda c: c.webhooks.list())

    _print_destinations(response.data, as_json=as_json)


@webhooks.command("get")
@click.argument("webhook_id", metavar="ID")
@_json_option
@api_options
def get_command(
    webhook_id: str, as_json: bool, api_key: str | None, api_uri: str | None
) -> None:
    """Show one destination, without its secret."""
    response = _call(api_key, api_uri, lambda c: c.webhooks.find(webhook_id))

    _print_destination(response.data, as_json=as_json)


@webhooks.command("create", epilog=_EPILOG)
@click.option(
    "--url", "webhook_url", required=True, type=_TEXT, help="Webhook URL."
)
@click.option(
    "--trigger",
    "trigger_types",
    type=_TEXT,
    multiple=True,
    required=True,
    help="A trigger type such as message.created (repeatable).",
)
@click.option("--description", type=_TEXT, help="A description for people.")
@click.option(
    "--notify",
    "emails",
    type=_TEXT,
    multiple=True,
    help="An address Nylas tells when the URL fails (repeatable).",
)
@click.option(
    "--compressed/--no-compressed",
    default=None,
    help="Deliver notifications gzip-compressed.",
)
@click.option(
    "--show-secret",
    is_flag=True,
    help="Print the new signing secret (it is shown nowhere else).",
)
@click.option(
    "--secret-out",
    type=click.Path(dir_okay=False),
    help="Append the id and new secret as a JSON line to this file "
    "(created 0600).",
)
@_json_option
@api_options
def create_command(
    webhook_url: str,
    trigger_types: tuple[str, ...],
    description: str | None,
    emails: tuple[str, ...],
    compressed: bool | None,
    show_secret: bool,
    secret_out: str | None,
    as_json: bool,
    api_key: str | None,
    api_uri: str | None,
) -> None:
    """
    Create a destination.

    Nylas first checks the URL with a challenge request, so it must be
    reachable and answer it.  The new signing secret is printed only
    with --show-secret, or saved with --secret-out; without either it
    is lost, and only a rotation gives a known one again.
    """
    try:
        request = CreateWebhookRequest(
            trigger_types=trigger_types,
            webhook_url=webhook_url,
            description=description,
            notification_email_addresses=emails or None,
            compressed_delivery=compressed,
        )
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None

    sink: IO[str] | None = None
    if secret_out is not None:
        try:
            sink = open_private(secret_out)
        except OSError as exc:
            raise click.ClickException(
                f"cannot open {secret_out}: {_os(exc)}"
            ) from None
    try:
        response = _call(
            api_key, api_uri, lambda c: c.webhooks.create(request)
        )
        created = response.data
        unsaved = None if sink is None else _save_secret(sink, created)
    except KeyboardInterrupt:
        raise _StateUnknown(
            "interrupted while creating: a destination may exist whose "
            "secret nobody holds; list the destinations before creating "
            "again"
        ) from None
    finally:
        if sink is not None:
            _close(sink)

    _keep_secret(
        created,
        secret_out=secret_out,
        unsaved=unsaved,
        show_secret=show_secret,
        as_json=as_json,
    )
    if not (show_secret and as_json):
        _print_destination(created, as_json=as_json)
    if not (show_secret or secret_out):
        click.echo(
            "The new signing secret was not shown (--show-secret or "
            "--secret-out keep it); rotate to get a known one.",
            err=True,
        )


def _save_secret(sink: IO[str], created: WebhookWithSecret) -> OSError | None:
    """
    Append the id and secret of *created* to *sink* as one JSON line,
    written whole, flushed and fsynced; return the error if that fails.

    The line goes straight to the file descriptor, so that closing
    *sink* has nothing left to flush.  A line cut short (a full disk) is
    cut back off, unless someone else appended meanwhile, so that the
    next line appended is not glued to it.
    """
    record = {
        "webhook_id": created.id,
        "webhook_secret": created.webhook_secret,
    }
    line = (json.dumps(record) + "\n").encode("utf-8")
    fd = sink.fileno()
    written = 0
    try:
        start = os.fstat(fd).st_size
        while written < len(line):
            written += os.write(fd, line[written:])
        os.fsync(fd)
    except OSError as exc:
        if written:
            _cut_back(fd, start, written)
        return exc

    return None


def _cut_back(fd: int, start: int, written: int) -> None:
    """Truncate *fd* to *start* if it grew by exactly *written* bytes."""
    with contextlib.suppress(OSError):
        if os.fstat(fd).st_size == start + written:
            os.ftruncate(fd, start)


def _close(sink: IO[str]) -> None:
    # Nothing is ever buffered in *sink* (the secret goes straight to its
    # descriptor and is fsynced), so an error on close loses nothing.
    with contextlib.suppress(OSError):
        sink.close()


def _keep_secret(
    created: WebhookWithSecret,
    *,
    secret_out: str | None,
    unsaved: OSError | None,
    show_secret: bool,
    as_json: bool,
) -> None:
    """
    Print the new secret if asked, before anything else is shown, and
    fail unless it reached every place asked for: with exit status 5
    when it reached none, so that nobody holds it, and 1 otherwise.
    """
    problems: list[str] = []
    if unsaved is not None:
        problems.append(
            f"writing its secret to {secret_out} failed: {_os(unsaved)}"
        )
    printed = False
    if show_secret:
        unprinted = _print_secret(created, as_json=as_json)
        printed = unprinted is None
        if unprinted is not None:
            problems.append(f"printing its secret failed: {_os(unprinted)}")
    if not problems:
        return

    wid = created.id
    remedy = f"nylas-async rotate {wid} --journal FILE"
    failed = "; ".join(problems)
    if printed or (secret_out is not None and unsaved is None):
        kept = "on standard output" if printed else f"in {secret_out}"
        raise click.ClickException(
            f"created {wid}, but {failed}. Its secret is {kept}: keep it "
            f"from there, or rotate it for a new one: {remedy}"
        )

    raise _SecretLost(
        f"created {wid}, but {failed}. Its secret is lost: rotate it "
        f"for a known one: {remedy}"
    )


def _print_secret(
    created: WebhookWithSecret, *, as_json: bool
) -> OSError | None:
    """Print the new secret, in the whole destination with *as_json*;
    return the error if that fails."""
    if not as_json:
        return _write(f"webhook_secret: {created.webhook_secret}")

    data = _destination_json(created)
    data["webhook_secret"] = created.webhook_secret

    return _write(_json_text(data))


def _os(error: OSError) -> str:
    """An OS error as its message and symbolic name, such as ``No space
    left on device (ENOSPC)``."""
    name = errno.errorcode.get(error.errno or 0)
    message = error.strerror or str(error)

    return f"{message} ({name})" if name else message


@webhooks.command("update", epilog=_EPILOG)
@click.argument("webhook_id", metavar="ID")
@click.option("--url", "webhook_url", type=_TEXT, help="New webhook URL.")
@click.option(
    "--trigger",
    "trigger_types",
    type=_TEXT,
    multiple=True,
    help="Replace the trigger types (repeatable).",
)
@click.option("--description", type=_TEXT, help="New description.")
@click.option(
    "--notify",
    "emails",
    type=_TEXT,
    multiple=True,
    help="Replace the addresses told of failures (repeatable).",
)
@click.option(
    "--compressed/--no-compressed",
    default=None,
    help="Deliver notifications gzip-compressed or not.",
)
@click.option(
    "--status",
    type=click.Choice(["active", "pause"]),
    help="Pause or resume deliveries.",
)
@_json_option
@api_options
def update_command(
    webhook_id: str,
    webhook_url: str | None,
    trigger_types: tuple[str, ...],
    description: str | None,
    emails: tuple[str, ...],
    compressed: bool | None,
    status: str | None,
    as_json: bool,
    api_key: str | None,
    api_uri: str | None,
) -> None:
    """Change a destination; only the options given are changed."""
    given = {
        "webhook_url": webhook_url,
        "trigger_types": trigger_types or None,
        "description": description,
        "notification_email_addresses": emails or None,
        "compressed_delivery": compressed,
        "status": status,
    }
    try:
        request = UpdateWebhookRequest(
            **{k: v for k, v in given.items() if v is not None}
        )
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None

    response = _call(
        api_key, api_uri, lambda c: c.webhooks.update(webhook_id, request)
    )

    _print_destination(response.data, as_json=as_json)


@webhooks.command("delete", epilog=_EPILOG)
@click.argument("webhook_id", metavar="ID")
@_json_option
@api_options
def delete_command(
    webhook_id: str, as_json: bool, api_key: str | None, api_uri: str | None
) -> None:
    """Delete a destination."""
    response = _call(
        api_key, api_uri, lambda c: c.webhooks.destroy(webhook_id)
    )

    if as_json:
        _echo_json(unstructure(response.data) | {"webhook_id": webhook_id})
    elif response.data.already_gone:
        _out(f"Deleted {webhook_id} (its reply was lost; it is gone).")
    else:
        _out(f"Deleted {webhook_id}.")


@webhooks.command("mock-payload")
@click.argument("trigger_type", type=_TEXT)
@_json_option
@api_options
def mock_payload_command(
    trigger_type: str, as_json: bool, api_key: str | None, api_uri: str | None
) -> None:
    """
    Print Nylas's example notification for TRIGGER_TYPE.

    The notification is a JSON document, so it is printed as indented
    JSON; --json prints it on one line.
    """
    response = _call(
        api_key, api_uri, lambda c: c.webhooks.mock_payload(trigger_type)
    )

    _echo_json(response.data, indent=None if as_json else 2)


@webhooks.command("send-test-event")
@click.argument("trigger_type", type=_TEXT)
@click.argument("webhook_url", metavar="URL", type=_TEXT)
@_json_option
@api_options
def send_test_event_command(
    trigger_type: str,
    webhook_url: str,
    as_json: bool,
    api_key: str | None,
    api_uri: str | None,
) -> None:
    """
    Have Nylas send a test notification of TRIGGER_TYPE to URL.

    It is signed with the secret mock-webhook-secret.  Exits 1 unless
    Nylas answers success.
    """
    response = _call(
        api_key,
        api_uri,
        lambda c: c.webhooks.send_test_event(trigger_type, webhook_url),
    )

    if as_json:
        _echo_json(
            {"result": response.data, "request_id": response.request_id}
        )
    else:
        _out(f"Nylas answered: {_printable(response.data)}")
    if response.data != "success":
        click.get_current_context().exit(EXIT_ERROR)


@webhooks.command("ip-addresses")
@_json_option
@api_options
def ip_addresses_command(
    as_json: bool, api_key: str | None, api_uri: str | None
) -> None:
    """List the addresses Nylas sends notifications from."""
    response = _call(api_key, api_uri, lambda c: c.webhooks.ip_addresses())

    found = response.data
    if as_json:
        _echo_json(unstructure(found))
        return

    for address in found.ip_addresses:
        _out(_printable(address))
    click.echo(f"updated {_shown(found.updated_at)}", err=True)
