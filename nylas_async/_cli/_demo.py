"""
``nylas-async demo``: a whole batch rotation against the embedded fake.

It starts the fake Nylas on a free loopback port with random faults
switched on, creates destinations through the API, rotates all of their
secrets concurrently, and checks every secret received against the one
the fake holds.  Nothing leaves 127.0.0.1 and no secret is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from typing import Final

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from .._batch import Outcome
from .._client import Client
from .._config import RetryPolicy, Timeouts
from .._errors import NylasError
from .._models import CreateWebhookRequest
from ._common import stderr_console

#: Every default fault, plus replies slower than the demo's timeout and
#: garbled bodies, so each retry path shows up in the summary.
DEMO_WEIGHTS: Final = {
    "rate_limited": 1.0,
    "rate_limited_retry_after": 1.0,
    "rate_limited_http_date": 0.5,
    "server_error_500": 1.0,
    "server_error_503": 1.0,
    "server_error_502_html": 1.0,
    "server_error_500_after_commit": 1.0,
    "drop_before_commit": 1.0,
    "drop_after_commit": 1.0,
    "slow": 0.3,
    "bad_body_truncated": 0.5,
}


_CREATE_ROUNDS: Final = 5
_ROTATE_ROUNDS: Final = 5


@click.command()
@click.option(
    "--count",
    type=click.IntRange(1, 20_000),
    default=300,
    show_default=True,
    help="Destinations to create and rotate.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=32,
    show_default=True,
    help="Rotations in flight at once.",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 0.5),
    default=0.15,
    show_default=True,
    help="Share of requests the fake answers with a fault.",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed of the fault draws; random unless given.",
)
@click.pass_context
def demo(
    ctx: click.Context,
    count: int,
    concurrency: int,
    fault_rate: float,
    seed: int | None,
) -> None:
    """
    Rotate many secrets against a misbehaving local fake, and check them.

    Exits 0 only if every destination was rotated and every secret
    received equals the fake's current one.  Retries are counted in the
    summary; -v shows each one as it is scheduled.
    """
    if seed is None:
        seed = secrets.randbelow(1_000_000)
    console = stderr_console()
    retry_log = logging.getLogger("nylas_async.retry")
    level = retry_log.level
    if ctx.find_root().params.get("verbose", 0) == 0:
        retry_log.setLevel(logging.ERROR)
    try:
        ok = asyncio.run(_run(console, count, concurrency, fault_rate, seed))
    except NylasError as exc:
        raise click.ClickException(f"the demo failed: {exc}") from None
    finally:
        retry_log.setLevel(level)
    if not ok:
        raise SystemExit(1)


async def _run(
    console: Console,
    count: int,
    concurrency: int,
    fault_rate: float,
    seed: int,
) -> bool:
    from ..testing import FakeNylas, FakeServer, RandomFaults

    api_key = "demo-" + secrets.token_urlsafe(12)
    faults = RandomFaults(
        fault_rate, seed=seed, weights=DEMO_WEIGHTS, slow_seconds=2.0
    )
    fake = FakeNylas(api_key, random_faults=faults)
    retry = RetryPolicy(attempts=10, initial=0.05, maximum=1.0, deadline=60)
    timeouts = Timeouts(connect=2.0, attempt=1.0)

    async with (
        FakeServer(fake) as server,
        Client(
            api_key=api_key,
            api_uri=server.url,
            retry=retry,
            timeouts=timeouts,
            rate_limit=None,
        ) as client,
    ):
        console.print(
            f"Fake Nylas on {server.url}: faults on {fault_rate:.0%} of "
            f"requests (seed {seed})."
        )
        ids = await _create(console, client, count, concurrency)
        console.print(f"Listed {len(ids)} destinations.")

        started = time.monotonic()
        received, unknown, failed, retries, again = await _rotate(
            console, client, ids, concurrency
        )
        elapsed = time.monotonic() - started

    mismatched = [
        wid for wid, value in received.items() if fake.secret_of(wid) != value
    ]
    _summarise(
        console,
        total=len(ids),
        rotated=len(received),
        mismatched=len(mismatched),
        unknown=len(unknown),
        again=again,
        failed=failed,
        retries=retries,
        elapsed=elapsed,
    )

    return (
        len(ids) >= count
        and len(received) == len(ids)
        and not mismatched
        and not unknown
        and not failed
    )


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


async def _create(
    console: Console, client: Client, count: int, concurrency: int
) -> list[str]:
    """
    Create destinations until *count* exist; return their ids.

    A create whose reply was lost may or may not have made one, and
    repeating it blindly could make a duplicate.  So, as the client
    advises, the demo lists the destinations and creates only the
    shortfall, a bounded number of rounds.
    """
    gate = asyncio.Semaphore(concurrency)
    ids: list[str] = []

    async def one(number: int) -> None:
        request = CreateWebhookRequest(
            trigger_types=["message.created"],
            webhook_url=f"https://example.com/hooks/{number}",
            description=f"demo destination {number}",
        )
        async with gate:
            with contextlib.suppress(NylasError):
                await client.webhooks.create(request)
            progress.advance(task)

    with _progress(console) as progress:
        task = progress.add_task("Creating", total=count, note="")
        for _ in range(_CREATE_ROUNDS):
            missing = count - len(ids)
            if missing <= 0:
                break
            progress.update(task, completed=len(ids))
            async with asyncio.TaskGroup() as group:
                for number in range(len(ids), len(ids) + missing):
                    group.create_task(one(number))
            listed = await client.webhooks.list()
            ids = [w.id for w in listed.data]
        progress.update(task, completed=min(len(ids), count))

    return ids


async def _rotate(
    console: Console,
    client: Client,
    ids: list[str],
    concurrency: int,
) -> tuple[dict[str, str], list[str], int, Counter[str], int]:
    """
    Rotate *ids*; rotate again, a bounded number of rounds, those whose
    state came out unknown, as the lost-reply rule asks.

    Returns the secrets received, the ids still unknown, the count of
    failures, the retries by reason, and how many ids needed another
    round.
    """
    received: dict[str, str] = {}
    retries: Counter[str] = Counter()
    failed = again = 0
    todo = ids

    with _progress(console) as progress:
        for round_ in range(_ROTATE_ROUNDS):
            if not todo:
                break
            label = "Rotating" if round_ == 0 else "Rotating again"
            task = progress.add_task(label, total=len(todo), note="")
            unknown: list[str] = []
            batch = client.webhooks.rotate_secrets(
                todo, concurrency=concurrency
            )
            async with batch:
                async for outcome in batch:
                    retries.update(outcome.retry_reasons)
                    if outcome.webhook_secret is not None:
                        received[outcome.webhook_id] = outcome.webhook_secret
                    elif outcome.outcome == Outcome.UNKNOWN:
                        unknown.append(outcome.webhook_id)
                    else:
                        failed += 1
                    note = (
                        f"retries {sum(retries.values())}  "
                        f"unknown {len(unknown)}  failed {failed}"
                    )
                    progress.update(task, advance=1, note=note)
            if round_ > 0:
                again += len(todo)
            todo = unknown

    return received, todo, failed, retries, again


def _summarise(
    console: Console,
    *,
    total: int,
    rotated: int,
    mismatched: int,
    unknown: int,
    again: int,
    failed: int,
    retries: Counter[str],
    elapsed: float,
) -> None:
    table = Table(title="Rotation summary", show_header=False)
    table.add_row("destinations", str(total))
    table.add_row("rotated", str(rotated))
    table.add_row("secrets matching the fake", str(rotated - mismatched))
    table.add_row("secrets NOT matching", str(mismatched))
    table.add_row("rotated again after an unknown state", str(again))
    table.add_row("still unknown (rotate again)", str(unknown))
    table.add_row("failed", str(failed))
    table.add_row("time", f"{elapsed:.2f} s")
    if elapsed > 0:
        rate = f"{rotated / elapsed:.0f}"
        table.add_row("rotations per second (pacing off)", rate)
    for reason, n in retries.most_common():
        table.add_row(f"retries after {reason}", str(n))
    console.print(table)

    everything = rotated == total and not (mismatched or unknown or failed)
    if everything:
        console.print(
            f"[bold green]All {total} secrets rotated and matching.[/]"
        )
    else:
        console.print("[bold red]Not every secret was rotated and matched.[/]")
