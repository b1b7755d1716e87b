"""``nylas-async verify``: check a captured delivery's signature."""

from __future__ import annotations

from typing import BinaryIO, Final

import click

from .._errors import UsageError
from .._signature import looks_gzipped, verify_request

#: Far above any real delivery; stops a runaway stdin from filling
#: memory.
_MAX_INPUT: Final = 16 * 1024 * 1024


@click.command()
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    envvar="NYLAS_WEBHOOK_SECRET",
    show_envvar=True,
    metavar="SECRET",
    help="The destination's secret; repeat it to accept several, such "
    "as the new and the previous one.  Prefer the environment "
    "variable (several separated by spaces), as command lines are "
    "visible to other users.",
)
@click.option(
    "--signature",
    required=True,
    help="The x-nylas-signature header value of the delivery.",
)
@click.argument("file", type=click.File("rb"), default="-")
@click.pass_context
def verify(
    ctx: click.Context,
    secrets: tuple[str, ...],
    signature: str,
    file: BinaryIO,
) -> None:
    """
    Check that FILE (stdin if absent or -) is signed with a secret.

    FILE must hold the delivery's body exactly as received.  A gzip
    body is checked as sent and, failing that, once inflated.  Prints
    "valid" and exits 0 when the signature matches; prints "invalid"
    and exits 1 otherwise; exits 2 on a usage error.
    """
    if not secrets:
        raise click.UsageError(
            "no secret: pass --secret or set NYLAS_WEBHOOK_SECRET"
        )

    body = file.read(_MAX_INPUT + 1)
    if len(body) > _MAX_INPUT:
        raise click.UsageError(
            f"the input is over {_MAX_INPUT} bytes; no delivery is that big"
        )

    headers = [("x-nylas-signature", signature)]
    if looks_gzipped(body):
        headers.append(("content-encoding", "gzip"))
    try:
        valid = verify_request(body=body, headers=headers, secrets=secrets)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None

    click.echo("valid" if valid else "invalid")
    ctx.exit(0 if valid else 1)
