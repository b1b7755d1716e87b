"""
The client: configuration, lifecycle and the resources it offers.
"""

from __future__ import annotations

import math
import os
from importlib.metadata import version
from types import TracebackType
from typing import Final

import aiohttp
import yarl

from ._config import (
    DEFAULT_RATE_LIMIT,
    REGIONS,
    US_API_URI,
    RetryPolicy,
    Timeouts,
)
from ._errors import UsageError
from ._webhooks import Webhooks


class _Default:
    """The type of `DEFAULT`, telling "not given" from ``None``."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()


def _resolve_key(api_key: str | None) -> str:
    key = api_key if api_key is not None else os.environ.get("NYLAS_API_KEY")
    if not key:
        raise UsageError(
            "no Nylas API key: set NYLAS_API_KEY, or pass api_key= "
            "(--api-key on the command line)"
        )
    if not isinstance(key, str) or not _is_token(key):
        raise UsageError(
            "the API key must be printable ASCII without spaces or "
            "control characters"
        )

    return key


def _is_token(key: str) -> bool:
    return (
        key.isascii()
        and key.isprintable()
        and not any(c.isspace() for c in key)
    )


def _resolve_uri(api_uri: str | None, region: str | None) -> str:
    if api_uri is not None and region is not None:
        raise UsageError("pass api_uri= or region=, not both")
    if region is not None:
        if not isinstance(region, str) or region not in REGIONS:
            known = ", ".join(sorted(REGIONS))
            raise UsageError(f"unknown region {region!r}; known: {known}")
        return REGIONS[region]
    if api_uri is None:
        api_uri = os.environ.get("NYLAS_API_URI") or US_API_URI
    if not isinstance(api_uri, str):
        raise UsageError("the API URI must be a string")
    try:
        parsed = yarl.URL(api_uri)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"cannot parse the API URI {api_uri!r}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(
            f"the API URI must be an http(s) address, not {api_uri!r}"
        )
    if (
        parsed.user
        or parsed.password
        or parsed.query_string
        or parsed.fragment
    ):
        raise UsageError(
            "the API URI must hold no user, password, query or fragment"
        )

    return api_uri.rstrip("/")


class Client:
    """
    An asyncio client for the Nylas v3 webhooks API.

    Use it as an async context manager, or call `aclose` when done.
    One client is meant to be shared by every task of a process: it
    holds one connection pool and one pace for all of them.

    Args:
        api_key: the application's API key; defaults to the
            ``NYLAS_API_KEY`` environment variable.  It is sent only
            in the ``Authorization`` header and never shown.
        api_uri: the API's base address; defaults to ``NYLAS_API_URI``,
            then to the US region.
        region: ``"us"`` or ``"eu"``, instead of *api_uri*.
        timeouts: connect and per-attempt timeouts (`Timeouts`).
        retry: when and how to retry (`RetryPolicy`); every method
            also takes a policy of its own.
        rate_limit: the most requests per second this client sends,
            48 by default, a little under Nylas's 50 per application;
            ``None`` turns pacing off.
        connection_limit: the most connections open at once (100).
        session: an `aiohttp.ClientSession` to send through.  It stays
            the caller's: the client never closes it.

    Raises:
        UsageError: no API key, or an option that cannot work.
    """

    def __init__(
        self,
        api_key: str | None = None,
        api_uri: str | None = None,
        *,
        region: str | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: float | _Default | None = DEFAULT,
        connection_limit: int = 100,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        from ._http import Transport

        key = _resolve_key(api_key)
        self.api_uri = _resolve_uri(api_uri, region)
        if isinstance(rate_limit, _Default):
            rate_limit = DEFAULT_RATE_LIMIT
        elif rate_limit is not None and not (
            isinstance(rate_limit, int | float) and 0 < rate_limit < math.inf
        ):
            raise UsageError("rate_limit must be a positive number or None")
        if not isinstance(connection_limit, int) or connection_limit < 1:
            raise UsageError("connection_limit must be a positive integer")
        if timeouts is not None and not isinstance(timeouts, Timeouts):
            raise UsageError("timeouts must be a Timeouts")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise UsageError("retry must be a RetryPolicy")
        if session is not None and not isinstance(
            session, aiohttp.ClientSession
        ):
            raise UsageError("session must be an aiohttp.ClientSession")

        self._transport = Transport(
            api_key=key,
            api_uri=self.api_uri,
            timeouts=timeouts or Timeouts(),
            retry=retry or RetryPolicy(),
            rate_limit=rate_limit,
            connection_limit=connection_limit,
            session=session,
            user_agent=f"nylas-async/{version('nylas-async')}",
        )
        self.webhooks: Final = Webhooks(self._transport)

    @property
    def retry(self) -> RetryPolicy:
        """The client's retry policy."""
        return self._transport.retry

    @property
    def timeouts(self) -> Timeouts:
        """The client's timeouts."""
        return self._transport.timeouts

    @property
    def rate_limit(self) -> float | None:
        """Requests per second this client sends at most, or ``None``."""
        return self._transport.rate_limit

    @property
    def closed(self) -> bool:
        """Whether `aclose` was called."""
        return self._transport.closed

    async def aclose(self) -> None:
        """
        Close the client and the session it made.

        A session passed in by the caller stays open.  Calling this
        again does nothing; any other use afterwards raises
        `ClientClosedError`.
        """
        await self._transport.aclose()

    async def __aenter__(self) -> Client:
        self._transport.check_open()

        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Client {self.api_uri} {state}>"
