"""
The ``nylas-async`` command: a thin click layer over the library.

User errors become one clear line on stderr and a non-zero exit code,
never a traceback.  ``-v`` and ``-q`` set the log level; only the
command line configures logging, the library never does.
"""

from __future__ import annotations

import logging

import click

from ._common import LOG_LEVELS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nylas-async")
@click.option(
    "-v", "--verbose", count=True, help="More log output (repeatable)."
)
@click.option("-q", "--quiet", count=True, help="Less log output.")
def main(verbose: int, quiet: int) -> None:
    """Rotate and manage Nylas webhook secrets from the shell."""
    level = LOG_LEVELS[max(0, min(len(LOG_LEVELS) - 1, 1 + verbose - quiet))]
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s"
    )


def _register() -> None:
    from ._demo import demo
    from ._fake import fake_server
    from ._rotate import rotate
    from ._verify import verify
    from ._webhooks import webhooks

    for command in (demo, fake_server, rotate, verify, webhooks):
        main.add_command(command)


_register()
