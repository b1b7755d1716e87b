"""Shared fixtures: a client in test mode and the aioresponses shim."""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import aioresponses.core
import pytest

from nylas_async import Client, RetryPolicy

API_KEY = "nyk_test_key_not_real"
API_URI = "https://api.nylas.invalid"


class _CompatResponse(aiohttp.ClientResponse):
    """
    A response aioresponses can build under aiohttp 3.14 and later.

    XXX: aiohttp 3.14 made ``stream_writer`` a required argument of
    ``ClientResponse`` and aioresponses 0.7.9 does not pass it (its
    issue 289); tests/test_conftest.py shows the shim is still needed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "stream_writer", types.SimpleNamespace(output_size=0)
        )
        super().__init__(*args, **kwargs)


aioresponses.core.ClientResponse = _CompatResponse  # type: ignore[misc]


@pytest.fixture
def mocked() -> Iterator[aioresponses.aioresponses]:
    """aioresponses that lets nothing through to the network."""
    with aioresponses.aioresponses() as m:
        yield m


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    """A client on a fake address whose retries do not sleep."""
    async with Client(
        api_key=API_KEY,
        api_uri=API_URI,
        retry=RetryPolicy(testing=True),
        rate_limit=None,
    ) as c:
        yield c


async def until(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    """Wait until *predicate* holds, polling; fail after *limit* s."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110 -- state owned by a fake
            await asyncio.sleep(0.005)
