"""Serving a `FakeNylas` over loopback TCP."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Callable
from types import TracebackType
from typing import Final, Self

from aiohttp import web

from ._fake import SEED_TRIGGER_TYPES, FakeNylas
from ._faults import RandomFaults

# Sleeps in the fake end at shutdown, so this only bounds a stuck handler.
_SHUTDOWN_TIMEOUT: Final = 5.0


class FakeServer:
    """
    An async context manager that serves a `FakeNylas` over TCP.

    On entry it listens on *host* (loopback by default) and *port* (a
    free one for 0, the default); `url` then gives the base URL to point a
    client at. On exit it stops listening, drops replies still held by
    delays and shuts down without leaving tasks or connections behind.
    A handler whose client went away is cancelled.
    """

    __slots__ = ("_fake", "_host", "_port", "_runner", "_url")

    def __init__(
        self, fake: FakeNylas, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._fake = fake
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def fake(self) -> FakeNylas:
        """The fake this server serves."""
        return self._fake

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:50123``, while running.

        Raises:
            RuntimeError: The server is not running.
        """
        if self._url is None:
            raise RuntimeError("the fake server is not running")

        return self._url

    async def __aenter__(self) -> Self:
        if self._runner is not None:
            raise RuntimeError("the fake server is already running")

        runner = web.AppRunner(
            self._fake.app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise

        host, port = runner.addresses[0][:2]
        if ":" in host:
            host = f"[{host}]"
        self._runner = runner
        self._url = f"http://{host}:{port}"

        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        runner, self._runner, self._url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()


def serve_forever(
    *,
    host: str,
    port: int,
    api_key: str,
    seed_webhooks: int,
    fault_rate: float,
    seed: int,
    latency: float,
    rate_limit: float | None,
    print_fn: Callable[[str], object],
    verify_challenge: bool = False,
) -> None:
    """
    Serve a fake Nylas until SIGINT or SIGTERM, then return.

    It seeds *seed_webhooks* destinations (chosen from *seed*), prints the
    URL, the seeded ids and the settings through *print_fn*, but never
    the key or a secret. With a *fault_rate* above 0, that share of
    requests gets the default mix of `RandomFaults`, seeded with *seed*.
    With *verify_challenge*, creates challenge their loopback webhook
    URL as `FakeNylas` describes.

    Raises:
        ValueError: An argument is out of range.
        OSError: The address cannot be bound.
    """
    if seed_webhooks < 0:
        raise ValueError(f"seed_webhooks must be >= 0, got {seed_webhooks}")

    random_faults = (
        RandomFaults(fault_rate, seed=seed) if fault_rate > 0 else None
    )
    fake = FakeNylas(
        api_key,
        random_faults=random_faults,
        latency=latency,
        rate_limit=rate_limit,
        verify_challenge=verify_challenge,
    )
    _seed(fake, seed_webhooks, random.Random(seed))

    settings = [f"Seeded webhooks: {', '.join(fake.webhook_ids) or '-'}"]
    if fault_rate > 0:
        settings.append(f"Random faults: rate {fault_rate:g}, seed {seed}")
    if latency > 0:
        settings.append(f"Latency: {latency:g} s")
    if rate_limit is not None:
        settings.append(f"Rate limit: {rate_limit:g} requests/s")
    if verify_challenge:
        settings.append("Challenge: on create, 127.0.0.1 URLs only")

    asyncio.run(_serve(fake, host, port, settings, print_fn))


def _seed(fake: FakeNylas, count: int, rng: random.Random) -> None:
    for number in range(1, count + 1):
        trigger_types = rng.sample(SEED_TRIGGER_TYPES, k=rng.randint(1, 3))
        fake.add_webhook(
            webhook_url=f"https://example.com/webhooks/{number}",
            trigger_types=trigger_types,
            description=f"Seeded destination {number}",
        )


async def _serve(
    fake: FakeNylas,
    host: str,
    port: int,
    settings: list[str],
    print_fn: Callable[[str], object],
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    try:
        async with FakeServer(fake, host=host, port=port) as server:
            print_fn(f"Fake Nylas webhooks API listening on {server.url}")
            print_fn("API key: as given")
            for line in settings:
                print_fn(line)
            print_fn("Press Ctrl-C to stop.")
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)

    print_fn("Fake Nylas stopped.")
