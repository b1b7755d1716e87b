"""Run the command line as ``python -m nylas_async``."""

from ._cli import main

main()
