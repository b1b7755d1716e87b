"""Options and helpers shared by the commands."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Final, TypeVar

import click
from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

#: -q -q, -q, default, -v: the default shows warnings only.
LOG_LEVELS: Final = (
    logging.ERROR,
    logging.WARNING,
    logging.INFO,
    logging.DEBUG,
)


def api_options(f: F) -> F:
    """Add ``--api-key`` and ``--api-uri``, read from the environment."""
    f = click.option(
        "--api-uri",
        envvar="NYLAS_API_URI",
        default=None,
        help="API base address [env NYLAS_API_URI; default US region].",
    )(f)
    f = click.option(
        "--api-key",
        envvar="NYLAS_API_KEY",
        default=None,
        show_envvar=True,
        help="Nylas API key; prefer the environment variable, as "
        "command lines are visible to other users.",
    )(f)

    return f


def stderr_console() -> Console:
    """The console the commands talk to people on: stderr, as plain text."""
    # Ids and error texts come from users and servers: no emoji codes.
    return Console(stderr=True, highlight=False, emoji=False)


def open_private(path: str) -> Any:
    """
    Open *path* for appending, created with mode 0600.

    An existing file keeps its mode, unless it is readable by others,
    which is refused: it would hold secrets.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    mode = os.fstat(fd).st_mode & 0o777
    if mode & 0o077:
        os.close(fd)
        raise click.ClickException(
            f"{path} is readable by others (mode {mode:o}); it would "
            "hold secrets, so chmod 600 it or choose another path"
        )

    return os.fdopen(fd, "a", encoding="utf-8")
