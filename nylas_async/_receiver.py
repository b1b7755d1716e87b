"""
A ready receiver of Nylas notifications for aiohttp.web.

It answers the challenge Nylas sends when a destination is created,
checks the signature of every delivery, decodes it, drops repeats, and
hands each new notification to the caller's coroutine in a background
task, so that Nylas gets its answer within its 10 s however long the
work takes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable
from typing import Final, Protocol

from aiohttp import web

from ._errors import InvalidNotificationError, UsageError
from ._notifications import Notification, parse_notification
from ._signature import (
    MAX_BODY_SIZE,
    Secrets,
    check_size,
    is_gzip,
    looks_gzipped,
    matches_delivery,
    parse_signature,
    secret_keys,
    signature_from_headers,
)

_log = logging.getLogger("nylas_async.receiver")

#: Challenge values are short tokens; a longer query is not Nylas.
_MAX_CHALLENGE_LENGTH: Final = 2048


class NotificationCallback(Protocol):
    """The coroutine function a `WebhookReceiver` hands each new
    notification to."""

    def __call__(self, notification: Notification, /) -> Awaitable[object]:
        """Handle *notification*; a raised exception is logged."""


class Clock(Protocol):
    """A monotonic clock in seconds, such as `time.monotonic`."""

    def __call__(self) -> float:
        """The current time in seconds."""


async def answer_challenge(request: web.Request) -> web.Response:
    """
    Answer Nylas's challenge: ``GET ?challenge=X`` gets 200 and exactly
    ``X`` as a plain-text body, as creating a destination requires.

    A request without a ``challenge`` parameter, or with one longer
    than 2048 characters, gets 400.
    """
    value = request.query.get("challenge")
    if value is None or len(value) > _MAX_CHALLENGE_LENGTH:
        return _plain(400, "expected ?challenge=<value>")

    return _plain(200, value)


class _RecentIds:
    """
    Notification ids accepted in the last *ttl* seconds, at most *size*
    of them; the oldest are forgotten first.
    """

    def __init__(self, size: int, ttl: float, clock: Clock) -> None:
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, notification_id: str) -> bool:
        self._forget_expired()

        return notification_id in self._expiry

    def add(self, notification_id: str) -> None:
        self._expiry[notification_id] = self._clock() + self._ttl
        self._expiry.move_to_end(notification_id)
        while len(self._expiry) > self._size:
            self._expiry.popitem(last=False)

    def _forget_expired(self) -> None:
        now = self._clock()
        while self._expiry:
            oldest, expiry = next(iter(self._expiry.items()))
            if expiry > now:
                return
            del self._expiry[oldest]


class WebhookReceiver:
    """
    Receives Nylas notifications in an aiohttp.web application.

    Mount it with `add_routes`, or route GET and POST to `handler`
    yourself and await `aclose` on shutdown.  For each request it:

    - answers ``GET ?challenge=X`` with ``X`` (see `answer_challenge`);
    - answers 401 to a POST without a valid ``x-nylas-signature``,
      413 to one over *max_body_size*, 400 to a signed body that is
      not a notification;
    - answers 200 at once to a repeat of a notification id accepted in
      the last *dedupe_ttl* seconds, without calling back again;
    - otherwise answers 200 and runs *on_notification* in a background
      task, so that a slow callback never makes Nylas wait past its
      10 s.  With *max_pending* callbacks already running it answers
      503 instead, and Nylas delivers again later.

    A failing callback is logged at ERROR and not retried: the delivery
    was already acknowledged.  Neither secrets nor bodies are logged.

    Compressed deliveries are checked on their raw gzip bytes, which an
    aiohttp server hands over only when run with
    ``auto_decompress=False`` (``web.run_app(app,
    auto_decompress=False)`` or ``web.AppRunner(app,
    auto_decompress=False)``); otherwise only a signature over the
    inflated body can match, and a WARNING says so once.

    Args:
        secrets: the destination's secret, or several during a
            rotation's cut-over; swap them at any time through
            `secrets`.  ``None`` means none is known yet, as while
            creating the destination (the challenge needs none):
            deliveries then get 503, so Nylas sends them again later.
        on_notification: an ``async`` function taking a `Notification`.
        max_body_size: the most bytes read from a request, and the most
            a gzip body may inflate to; 4 MiB by default.
        max_pending: callbacks that may run at once; 100 by default.
        dedupe_size: how many recent notification ids to remember;
            10 000 by default.
        dedupe_ttl: how long to remember an id, in seconds, finite and
            above 0; a day by default.
        shutdown_grace: on `aclose`, how long running callbacks may
            finish before they are cancelled, in seconds, finite and 0
            or more; 5 by default.
        clock: the monotonic clock used to expire ids.

    Raises:
        UsageError: no secret, or a setting of the wrong type or out of
            range, such as ``dedupe_ttl=None``.
    """

    def __init__(
        self,
        *,
        secrets: Secrets | None,
        on_notification: NotificationCallback,
        max_body_size: int = MAX_BODY_SIZE,
        max_pending: int = 100,
        dedupe_size: int = 10_000,
        dedupe_ttl: float = 86_400.0,
        shutdown_grace: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if not callable(on_notification):
            raise UsageError("on_notification must be an async function")
        if not callable(clock):
            raise UsageError("clock must be a function returning seconds")
        check_size(max_body_size, "max_body_size")
        for name, count in (
            ("max_pending", max_pending),
            ("dedupe_size", dedupe_size),
        ):
            if (
                isinstance(count, bool)
                or not isinstance(count, int)
                or count < 1
            ):
                raise UsageError(f"{name} must be a positive integer")
        _check_seconds("dedupe_ttl", dedupe_ttl, zero=False)
        _check_seconds("shutdown_grace", shutdown_grace, zero=True)

        self._secrets: tuple[str, ...] = ()
        self._keys: tuple[bytes, ...] = ()
        if secrets is not None:
            self._secrets, self._keys = _checked(secrets)
        self._on_notification = on_notification
        self._max_body_size = max_body_size
        self._max_pending = max_pending
        self._shutdown_grace = shutdown_grace
        self._recent = _RecentIds(dedupe_size, dedupe_ttl, clock)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._warned_inflated = False

    def __repr__(self) -> str:
        count = len(self._secrets)
        return (
            f"<WebhookReceiver secrets=<{count} hidden> "
            f"pending={len(self._tasks)} closed={self._closed}>"
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """
        The secrets deliveries are checked against; empty until set
        when the receiver was made with ``secrets=None``.

        Assign one secret or several to swap them at once, for example
        ``[new, old]`` right after a rotation and ``[new]`` once
        deliveries signed with the old one have drained.
        """
        return self._secrets

    @secrets.setter
    def secrets(self, secrets: Secrets) -> None:
        self._secrets, self._keys = _checked(secrets)

    def set_secrets(self, secrets: Secrets) -> None:
        """Swap the secrets deliveries are checked against, as assigning
        `secrets` does."""
        self.secrets = secrets

    @property
    def pending(self) -> int:
        """How many callbacks are running now."""
        return len(self._tasks)

    def add_routes(
        self, app: web.Application, path: str = "/webhooks/nylas"
    ) -> None:
        """
        Route GET and POST *path* of *app* to this receiver, and close
        it when *app* shuts down.

        Closing runs on shutdown, before the application's cleanup
        contexts exit, so callbacks can still use a client those close.
        """
        app.router.add_get(path, self.handler, allow_head=False)
        app.router.add_post(path, self.handler)
        app.on_shutdown.append(self._on_app_stop)
        app.on_cleanup.append(self._on_app_stop)

    async def handler(self, request: web.Request) -> web.StreamResponse:
        """
        The aiohttp handler: the challenge for GET, a delivery for POST,
        405 for any other method.
        """
        if request.method == "GET":
            return await answer_challenge(request)
        if request.method == "POST":
            return await self._receive(request)

        raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])

    async def aclose(self) -> None:
        """
        Stop accepting deliveries (503 from now on), give running
        callbacks *shutdown_grace* seconds, then cancel and await the
        rest.  Calling it again is harmless.
        """
        self._closed = True
        tasks = set(self._tasks)
        if tasks and self._shutdown_grace > 0:
            await asyncio.wait(tasks, timeout=self._shutdown_grace)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _on_app_stop(self, app: web.Application) -> None:
        await self.aclose()

    async def _receive(self, request: web.Request) -> web.Response:
        if self._closed:
            return _plain(503, "shutting down")
        if not self._keys:
            _log.warning("deferred a delivery: no secret is set yet")
            return _plain(503, "no secret yet")

        expected = parse_signature(signature_from_headers(request.headers))
        if expected is None:
            _log.info("refused a delivery without a usable signature")
            return _plain(401, "invalid signature")

        length = request.content_length
        body = None
        if length is None or length <= self._max_body_size:
            try:
                body = await _read_at_most(request, self._max_body_size)
            except web.RequestPayloadError:
                # aiohttp inflating a body that claims gzip and is not.
                return _plain(400, "the body cannot be decoded")
        if body is None:
            _log.info("refused a delivery over %d bytes", self._max_body_size)
            return _plain(413, "body too large")

        gzipped = is_gzip(request.headers)
        keys = self._keys
        if not matches_delivery(
            body, expected, keys, gzipped, self._max_body_size
        ):
            self._warn_if_inflated(gzipped, body)
            _log.info("refused a delivery with a wrong signature")
            return _plain(401, "invalid signature")

        try:
            notification = parse_notification(
                body=body,
                headers=request.headers,
                max_size=self._max_body_size,
            )
        except InvalidNotificationError as exc:
            _log.warning("refused a signed delivery: %s", exc)
            status = 413 if exc.too_large else 400
            return _plain(status, "not a notification")

        return self._accept(notification)

    def _accept(self, notification: Notification) -> web.Response:
        if notification.id in self._recent:
            _log.debug("dropped a repeat of notification %s", notification.id)
            return _plain(200, "")
        if self._closed or len(self._tasks) >= self._max_pending:
            _log.warning(
                "deferred notification %s: %d callbacks running",
                notification.id,
                len(self._tasks),
            )
            return _plain(503, "busy")

        self._recent.add(notification.id)
        task = asyncio.create_task(
            self._call_back(notification),
            name=f"nylas-notification-{notification.id}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        _log.debug(
            "accepted notification %s (%s)", notification.id, notification.type
        )

        return _plain(200, "")

    async def _call_back(self, notification: Notification) -> None:
        try:
            await self._on_notification(notification)
        except Exception:
            _log.exception(
                "the callback failed on notification %s (%s)",
                notification.id,
                notification.type,
            )

    def _warn_if_inflated(self, gzipped: bool, body: bytes) -> None:
        """Say once that the server inflated a gzip body before we saw
        it, which hides the bytes Nylas signed."""
        if not gzipped or looks_gzipped(body) or self._warned_inflated:
            return

        self._warned_inflated = True
        _log.warning(
            "a compressed delivery arrived already inflated, so its "
            "signature over the gzip bytes cannot be checked; serve the "
            "application with auto_decompress=False"
        )


def _check_seconds(name: str, value: object, *, zero: bool) -> None:
    """Raise `UsageError` unless *value* is a finite number of seconds
    above 0, or from 0 with *zero*."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{name} must be a number of seconds, not {value!r}")
    in_range = value >= 0 if zero else value > 0
    if not (math.isfinite(value) and in_range):
        least = "zero or more" if zero else "above zero"
        raise UsageError(f"{name} must be finite and {least}, not {value!r}")


def _checked(secrets: Secrets) -> tuple[tuple[str, ...], tuple[bytes, ...]]:
    """*secrets* as a tuple of strings and as HMAC keys, validated."""
    keys = secret_keys(secrets)

    return tuple(k.decode("utf-8") for k in keys), keys


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    """The body of *request*, or ``None`` as soon as it passes *limit*
    bytes, so that no more than that is ever held."""
    body = bytearray()
    while len(body) <= limit:
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            return bytes(body)
        body += chunk

    return None


def _plain(status: int, text: str) -> web.Response:
    return web.Response(
        status=status,
        text=text,
        content_type="text/plain",
        headers={"X-Content-Type-Options": "nosniff"},
    )
