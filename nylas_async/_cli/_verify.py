"""``nylas-async verify``: check a captured delivery's signature."""

from __future__ import annotations

import sys
from typing import BinaryIO, Final

import click

from .._errors import UsageError
from .._journal import describe_os_error
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
@click.argument(
    "file", type=click.Path(dir_okay=False, allow_dash=True), default="-"
)
@click.pass_context
def verify(
    ctx: click.Context,
    secrets: tuple[str, ...],
    signature: str,
    file: str,
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

    body = _read(file)
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


def _read(path: str) -> bytes:
    """Up to one byte more than `_MAX_INPUT` of *path*, or of stdin."""
    try:
        if path == "-":
            return _read_stdin()
        with open(path, "rb") as file:
            return file.read(_MAX_INPUT + 1)
    except OSError as exc:
        where = "stdin" if path == "-" else path
        raise click.UsageError(
            f"cannot read {where}: {describe_os_error(exc)}"
        ) from None


def _read_stdin() -> bytes:
    stdin: BinaryIO | None = getattr(sys.stdin, "buffer", None)
    if stdin is None:
        raise click.UsageError("stdin is closed: give the delivery as FILE")

    return stdin.read(_MAX_INPUT + 1)
