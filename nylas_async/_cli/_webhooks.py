"""
``nylas-async webhooks``: manage webhook destinations from the shell.

One subcommand per endpoint, each a thin layer over `client.webhooks`:
a table on stdout by default, JSON with ``--json``.  A new secret is
shown only when asked for (``--show-secret``) or written to a private
file (``--secret-out``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import IO, Any, Final, TypeVar

import click
from rich.console import Console
from rich.table import Table

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

_EPILOG: Final = """\
Exit status: 0 done; 1 Nylas refused the request or could not be
reached; 2 bad usage; 3 no such destination; 4 create lost its reply,
so a destination may exist whose secret nobody holds (list them before
creating again).
"""

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


def _console() -> Console:
    return Console(highlight=False)


def _echo_json(value: Any, *, indent: int | None = None) -> None:
    click.echo(json.dumps(value, indent=indent, ensure_ascii=False))


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
        table.add_row(name, _shown(getattr(webhook, name)))
    _console().print(table)


def _print_destinations(webhooks: Sequence[Webhook], *, as_json: bool) -> None:
    if as_json:
        _echo_json([_destination_json(w) for w in webhooks])
        return

    table = Table(title=f"{len(webhooks)} webhook destinations")
    table.add_column("id", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("webhook_url", overflow="fold")
    table.add_column("trigger_types", overflow="fold")
    table.add_column("description", overflow="fold")
    for webhook in webhooks:
        table.add_row(
            webhook.id,
            _shown(webhook.status),
            _shown(webhook.webhook_url),
            _shown(webhook.trigger_types),
            _shown(webhook.description),
        )
    _console().print(table)


@click.group(epilog=_EPILOG)
def webhooks() -> None:
    """List, inspect, create, change and delete webhook destinations."""


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
@click.option("--url", "webhook_url", required=True, help="Webhook URL.")
@click.option(
    "--trigger",
    "trigger_types",
    multiple=True,
    required=True,
    help="A trigger type such as message.created (repeatable).",
)
@click.option("--description", help="A description for people.")
@click.option(
    "--notify",
    "emails",
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
                f"{exc.strerror}: {secret_out}"
            ) from None
    try:
        response = _call(
            api_key, api_uri, lambda c: c.webhooks.create(request)
        )
        created = response.data
        if sink is not None:
            _save_secret(sink, created)
    finally:
        if sink is not None:
            sink.close()

    _print_created(created, show_secret=show_secret, as_json=as_json)
    if not (show_secret or secret_out):
        click.echo(
            "The new signing secret was not shown (--show-secret or "
            "--secret-out keep it); rotate to get a known one.",
            err=True,
        )


def _save_secret(sink: IO[str], created: WebhookWithSecret) -> None:
    line = {"webhook_id": created.id, "webhook_secret": created.webhook_secret}
    sink.write(json.dumps(line) + "\n")
    sink.flush()


def _print_created(
    created: WebhookWithSecret, *, show_secret: bool, as_json: bool
) -> None:
    if as_json:
        data = _destination_json(created)
        if show_secret:
            data["webhook_secret"] = created.webhook_secret
        _echo_json(data)
        return

    _print_destination(created, as_json=False)
    if show_secret:
        click.echo(f"webhook_secret: {created.webhook_secret}")


@webhooks.command("update", epilog=_EPILOG)
@click.argument("webhook_id", metavar="ID")
@click.option("--url", "webhook_url", help="New webhook URL.")
@click.option(
    "--trigger",
    "trigger_types",
    multiple=True,
    help="Replace the trigger types (repeatable).",
)
@click.option("--description", help="New description.")
@click.option(
    "--notify",
    "emails",
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
        click.echo(f"Deleted {webhook_id} (its reply was lost; it is gone).")
    else:
        click.echo(f"Deleted {webhook_id}.")


@webhooks.command("mock-payload")
@click.argument("trigger_type")
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
@click.argument("trigger_type")
@click.argument("webhook_url", metavar="URL")
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
        click.echo(f"Nylas answered: {response.data}")
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
        click.echo(address)
    click.echo(f"updated {_shown(found.updated_at)}", err=True)
