"""``nylas-async fake-server``: the fake Nylas on a loopback port."""

from __future__ import annotations

import math
from typing import Any

import click

from .._journal import describe_os_error
from ..testing._fake import is_token


class _FiniteRange(click.FloatRange):
    """A `click.FloatRange` that also refuses ``nan`` and infinities,
    which no range check catches and no setting means."""

    def convert(
        self,
        value: Any,
        param: click.Parameter | None,
        ctx: click.Context | None,
    ) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)

        return number


def _api_key(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not is_token(value):
        raise click.BadParameter(
            "must be printable ASCII without spaces, as a client sends it"
        )

    return value


def _say(line: str) -> None:
    """Print *line* on standard output; a failure there is not one to
    listen, so it gets its own message."""
    try:
        click.echo(line)
    except OSError as exc:
        raise click.ClickException(
            f"cannot write to standard output: {describe_os_error(exc)}"
        ) from None


def _host(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter(
            "must not be empty, which would listen on every interface"
        )

    return value


@click.command("fake-server")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    callback=_host,
    help="Address to bind; keep it on loopback.",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True
)
@click.option(
    "--api-key",
    envvar="NYLAS_API_KEY",
    required=True,
    callback=_api_key,
    help="The only key the fake accepts [env NYLAS_API_KEY].",
)
@click.option(
    "--seed-webhooks",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Destinations to create at start.",
)
@click.option(
    "--fault-rate",
    type=_FiniteRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests that get a random fault.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--latency",
    type=_FiniteRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds added to every reply.",
)
@click.option(
    "--rate-limit",
    type=_FiniteRange(min=0, min_open=True),
    default=None,
    help="Requests per second admitted; 429 above.  Off by default.",
)
@click.option(
    "--verify-challenge/--no-verify-challenge",
    default=False,
    show_default=True,
    help="On create, send Nylas's challenge GET to loopback webhook URLs "
    "and refuse the destination unless it is answered.",
)
def fake_server(
    host: str,
    port: int,
    api_key: str,
    seed_webhooks: int,
    fault_rate: float,
    seed: int,
    latency: float,
    rate_limit: float | None,
    verify_challenge: bool,
) -> None:
    """
    Serve a fake Nylas webhooks API until Ctrl-C.

    It keeps destinations in memory, checks the Bearer key, answers
    like Nylas (errors included) and can inject faults.  Point a client
    at the printed URL with the same key.
    """
    from ..testing._server import serve_forever

    try:
        serve_forever(
            host=host,
            port=port,
            api_key=api_key,
            seed_webhooks=seed_webhooks,
            fault_rate=fault_rate,
            seed=seed,
            latency=latency,
            rate_limit=rate_limit,
            verify_challenge=verify_challenge,
            print_fn=_say,
        )
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {describe_os_error(exc)}"
        ) from None
