"""The state and aiohttp application of the fake Nylas webhooks API."""

from __future__ import annotations

import asyncio
import email.utils
import hmac
import json
import math
import random
import re
import secrets
import string
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any, Final

import aiohttp
import attrs
import yarl
from aiohttp import web

from .._models import TriggerType
from ._faults import BadBodyKind, Fault, RandomFaults

OPERATIONS: Final = (
    "rotate",
    "create",
    "list",
    "get",
    "update",
    "delete",
    "mock_payload",
    "send_test_event",
    "ip_addresses",
)

# The trigger types the published schema of the get reply allows, which
# are those `TriggerType` names; seeding sticks to them so that every
# reply of a seeded fake validates.
SEED_TRIGGER_TYPES: Final = tuple(t.value for t in TriggerType)
SEED_STATUSES: Final = ("active", "pause", "failing", "failed")
# The trigger types the published schemas of mock-payload and
# send-test-event accept.
MOCK_TRIGGER_TYPES: Final = (
    "calendar.created",
    "calendar.updated",
    "calendar.deleted",
    "event.created",
    "event.updated",
    "event.deleted",
    "grant.created",
    "grant.updated",
    "grant.deleted",
    "grant.expired",
    "message.send_success",
    "message.send_failed",
    "message.bounce_detected",
    "message.created",
    "message.created.truncated",
    "message.created.cleaned",
    "message.updated",
    "message.updated.truncated",
    "contact.updated",
    "contact.deleted",
    "folder.created",
    "folder.updated",
    "folder.deleted",
    "message.opened",
    "message.link_clicked",
    "thread.replied",
)
# Addresses from the documentation ranges of RFC 5737, so that nobody
# mistakes them for Nylas's.
FAKE_IP_ADDRESSES: Final = ("192.0.2.10", "198.51.100.20", "203.0.113.30")

_ID_ALPHABET: Final = string.ascii_letters + string.digits
_TRIGGER_TYPE: Final = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)+")
_NOT_FOUND_TYPE: Final = "70000"
_NOT_FOUND_MESSAGE: Final = "destination.id.not.found : record not found"
_CHALLENGE_TYPE: Final = "70005"
_CHALLENGE_HOST: Final = "127.0.0.1"
_PAGE_TOKEN: Final = re.compile(r"p([1-9][0-9]{0,8})")
_DROPPED: Final = 444
_NOT_JSON_PAGE: Final = (
    "<html><body><h1>Service temporarily unavailable</h1></body></html>"
)


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """
    One request the fake received.

    Attributes:
        method: The HTTP method.
        path: The path, without the query string.
        operation: One of `OPERATIONS`, such as ``"rotate"`` or
            ``"mock_payload"``; ``None`` for unknown routes.
        webhook_id: The id in the path, if the route has one.
        client_request_id: The ``X-Request-ID`` header the client sent.
        attempt: The ``X-Request-Attempt`` header as an integer; ``None``
            when absent or not an integer.
        request_id: The server's own request id, as sent back in
            ``x-request-id``.
        status: The status answered; ``None`` while the request is in
            flight or when the connection was dropped without a reply.
        fault: The name of the fault applied (see `Fault.name`), if any;
            ``None`` too while the request is in flight.
        query: The query parameters, such as ``limit`` and
            ``page_token``.
    """

    method: str
    path: str
    operation: str | None
    webhook_id: str | None
    client_request_id: str | None
    attempt: int | None
    request_id: str
    status: int | None = None
    fault: str | None = None
    query: Mapping[str, str] = attrs.field(factory=dict, hash=False)


@attrs.define(kw_only=True)
class _Destination:
    id: str
    webhook_url: str
    trigger_types: list[str]
    description: str | None
    notification_email_addresses: list[str]
    compressed_delivery: bool
    status: str
    secret: str
    created_at: int
    updated_at: int
    status_updated_at: int

    def to_json(self, *, secret: bool) -> dict[str, object]:
        """The destination as get, list and update show it, plus the secret
        when asked, as create shows it."""
        data: dict[str, object] = {"id": self.id}
        if self.description is not None:
            data["description"] = self.description
        data |= {
            "trigger_types": list(self.trigger_types),
            "webhook_url": self.webhook_url,
            "status": self.status,
            "notification_email_addresses": list(
                self.notification_email_addresses
            ),
            "compressed_delivery": self.compressed_delivery,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "status_updated_at": self.status_updated_at,
        }
        if secret:
            data["webhook_secret"] = self.secret

        return data

    def to_rotated_json(self) -> dict[str, object]:
        """The destination as the rotate reply shows it: only the fields of
        its published schema, with no timestamps."""
        data = self.to_json(secret=True)
        for key in (
            "compressed_delivery",
            "created_at",
            "updated_at",
            "status_updated_at",
        ):
            del data[key]

        return data


@attrs.frozen
class _Route:
    method: str
    pattern: re.Pattern[str]
    operation: str


_ID: Final = r"(?P<id>[^/]+)"

# Order matters: fixed paths such as rotate-secret come before {id}.
_ROUTES: Final = (
    _Route("POST", re.compile(rf"/v3/webhooks/rotate-secret/{_ID}"), "rotate"),
    _Route("POST", re.compile(r"/v3/webhooks/mock-payload"), "mock_payload"),
    _Route(
        "POST", re.compile(r"/v3/webhooks/send-test-event"), "send_test_event"
    ),
    _Route("GET", re.compile(r"/v3/webhooks/ip-addresses"), "ip_addresses"),
    _Route("POST", re.compile(r"/v3/webhooks"), "create"),
    _Route("GET", re.compile(r"/v3/webhooks"), "list"),
    _Route("GET", re.compile(rf"/v3/webhooks/{_ID}"), "get"),
    _Route("PUT", re.compile(rf"/v3/webhooks/{_ID}"), "update"),
    _Route("DELETE", re.compile(rf"/v3/webhooks/{_ID}"), "delete"),
)


def _match(method: str, path: str) -> tuple[str | None, str | None]:
    """The operation and webhook id of a request; ``(None, None)`` when no
    route matches."""
    for route in _ROUTES:
        found = route.pattern.fullmatch(path)
        if route.method == method and found is not None:
            return route.operation, found.groupdict().get("id")

    return None, None


@attrs.frozen
class _Call:
    webhook_id: str | None
    body: bytes
    query: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class _Reply:
    """A reply before rendering: *body* lacks the request id."""

    status: int
    body: Mapping[str, object]


class _ApiError(Exception):
    def __init__(self, status: int, type_: str, message: str) -> None:
        super().__init__(message)
        self.reply = _Reply(
            status, {"error": {"type": type_, "message": message}}
        )


def _invalid(message: str) -> _ApiError:
    return _ApiError(400, "invalid_request_error", message)


def _unverified(detail: str) -> _ApiError:
    """The refusal of a create whose webhook URL failed the challenge."""
    return _ApiError(
        400, _CHALLENGE_TYPE, f"unable.verify.webhook_url : {detail}"
    )


@attrs.define
class _Exchange:
    """What the fake decided about one request so far."""

    request_id: str
    fastly_id: str
    fault: Fault | None = None
    status: int | None = None


@attrs.frozen
class _Scripted:
    fault: Fault
    webhook_id: str | None
    operation: str | None

    def matches(self, operation: str, webhook_id: str | None) -> bool:
        return self.operation in (None, operation) and self.webhook_id in (
            None,
            webhook_id,
        )


@attrs.define
class _TokenBucket:
    """Admits *rate* requests per second with bursts of up to *rate*."""

    rate: float
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        capacity = max(self.rate, 1.0)
        elapsed = now - self.stamp
        self.tokens = min(capacity, self.tokens + elapsed * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False

        self.tokens -= 1.0
        return True


class FakeNylas:
    """
    An in-memory fake of the Nylas v3 webhooks API, served by `app`.

    It answers every webhooks operation (see `OPERATIONS`) like the
    documented API, with its validation and error bodies, checks the
    Bearer key, records every request, and can misbehave on purpose:
    scripted faults from `inject`, random ones from *random_faults*,
    added *latency* and a *rate_limit*.

    Nylas verifies a new destination by sending ``GET
    <webhook_url>?challenge=<value>`` and expecting that value back.
    The fake does so only with *verify_challenge*, because most tests
    and the demo create destinations at ``https://example.com`` and
    must not touch the network; even then it contacts nothing but
    ``127.0.0.1`` and refuses any other host as a failed challenge.
    The application is bound to the first event loop that serves it.

    Args:
        api_key: The only key the fake accepts: printable ASCII
            without spaces, as a client can send it.
        random_faults: Faults to draw for requests without a scripted
            fault; none by default.
        latency: Seconds added before every reply, after the operation
            ran; none by default.
        rate_limit: Requests per second the fake admits, with bursts of
            as many; above it, 429 without ``Retry-After``. ``None``
            (the default) admits everything.
        not_found_status: The status for an unknown webhook id: 400 as
            documented (the default) or 404 as production may answer.
            The body has type ``"70000"`` either way.
        verify_challenge: Challenge the webhook URL of every create, and
            refuse the create with 400 type ``"70005"`` unless the URL is
            on ``http://127.0.0.1`` and answers 200 with exactly the
            challenge value; off by default.
        challenge_timeout: Seconds the challenge waits for its answer,
            10 like Nylas by default.
        page_size: Serve list in pages of at most this many destinations,
            honouring ``limit`` and ``page_token`` and adding
            ``next_cursor`` while more remain.  ``None`` (the default)
            answers every destination at once and ignores both
            parameters, as the documented API does.
        mock_payload_nested: Answer mock-payload with the notification
            under ``data.data``, the literal reading of the published
            schema (the default), or directly as ``data`` when false.
        serve_ip_addresses: Answer ``GET /v3/webhooks/ip-addresses``
            (the default); when false it gets the gateway's 404 page,
            since the current reference lacks the endpoint.
    """

    def __init__(
        self,
        api_key: str,
        *,
        random_faults: RandomFaults | None = None,
        latency: float = 0.0,
        rate_limit: float | None = None,
        not_found_status: int = 400,
        verify_challenge: bool = False,
        challenge_timeout: float = 10.0,
        page_size: int | None = None,
        mock_payload_nested: bool = True,
        serve_ip_addresses: bool = True,
    ) -> None:
        if not (isinstance(api_key, str) and is_token(api_key)):
            raise ValueError(
                "api_key must be printable ASCII without spaces, as a "
                "client can send it"
            )
        if not (math.isfinite(latency) and latency >= 0):
            raise ValueError(f"latency must be >= 0, got {latency!r}")
        if rate_limit is not None and not (
            math.isfinite(rate_limit) and rate_limit > 0
        ):
            raise ValueError(f"rate_limit must be > 0, got {rate_limit!r}")
        if not_found_status not in (400, 404):
            raise ValueError(
                f"not_found_status must be 400 or 404, got {not_found_status}"
            )
        if not (math.isfinite(challenge_timeout) and challenge_timeout > 0):
            raise ValueError(
                f"challenge_timeout must be > 0, got {challenge_timeout!r}"
            )
        if page_size is not None and not (
            isinstance(page_size, int) and page_size > 0
        ):
            raise ValueError(f"page_size must be > 0, got {page_size!r}")

        self._api_key = api_key.encode()
        self._random_faults = random_faults
        self._rng = random.Random(
            random_faults.seed if random_faults is not None else 0
        )
        self._latency = latency
        self._bucket = (
            None
            if rate_limit is None
            else _TokenBucket(
                rate_limit, max(rate_limit, 1.0), time.monotonic()
            )
        )
        self._not_found_status = not_found_status
        self._verify_challenge = verify_challenge
        self._challenge_timeout = challenge_timeout
        self._page_size = page_size
        self._mock_payload_nested = mock_payload_nested
        self._serve_ip_addresses = serve_ip_addresses
        self._application_id = str(uuid.uuid4())
        self._started = int(time.time())

        self._destinations: dict[str, _Destination] = {}
        self._rotations: Counter[str] = Counter()
        self._scripted: list[_Scripted] = []
        self._requests: list[RecordedRequest] = []
        self._closing: asyncio.Event | None = None
        self._operations: Mapping[
            str, Callable[[_Call], Awaitable[_Reply]]
        ] = {
            "rotate": self._rotate,
            "create": self._create,
            "list": self._list,
            "get": self._get,
            "update": self._update,
            "delete": self._delete,
            "mock_payload": self._mock_payload,
            "send_test_event": self._send_test_event,
            "ip_addresses": self._ip_addresses,
        }

        self._app = web.Application()
        self._app.router.add_route("*", "/{path:.*}", self._handle)
        self._app.on_startup.append(self._on_startup)
        self._app.on_shutdown.append(self._on_shutdown)

    @property
    def app(self) -> web.Application:
        """The aiohttp application that serves the fake."""
        return self._app

    @property
    def application_id(self) -> str:
        """The application id the fake's notifications carry."""
        return self._application_id

    @property
    def webhook_ids(self) -> list[str]:
        """The ids of the current destinations, oldest first."""
        return list(self._destinations)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since the last `clear_requests`, in order
        of arrival, including those still in flight."""
        return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._requests = []

    def add_webhook(
        self,
        *,
        webhook_url: str = "https://example.com/hook",
        trigger_types: Iterable[str] = ("message.created",),
        description: str | None = None,
        notification_email_addresses: Iterable[str] = (),
        compressed_delivery: bool = False,
        status: str = "active",
        webhook_secret: str | None = None,
    ) -> str:
        """
        Add a destination directly, without a request, and return its id.

        Trigger types must be among those the published get reply allows,
        and *status* one of ``active``, ``pause``, ``failing`` or
        ``failed``. A random secret is made unless *webhook_secret* is
        given.
        """
        trigger_types = list(trigger_types)
        unknown = sorted(set(trigger_types) - set(SEED_TRIGGER_TYPES))
        if not trigger_types or unknown:
            raise ValueError(
                "trigger_types must be a non-empty selection of "
                f"{', '.join(SEED_TRIGGER_TYPES)}; unknown: {unknown}"
            )
        if status not in SEED_STATUSES:
            raise ValueError(
                f"status must be one of {', '.join(SEED_STATUSES)}"
            )
        if webhook_secret == "":
            raise ValueError("webhook_secret must not be empty")

        destination = self._new_destination(
            webhook_url=webhook_url,
            trigger_types=trigger_types,
            description=description,
            notification_email_addresses=list(notification_email_addresses),
            compressed_delivery=compressed_delivery,
            status=status,
            secret=webhook_secret,
        )

        return destination.id

    def secret_of(self, webhook_id: str) -> str:
        """
        The secret the destination holds now.

        Raises:
            KeyError: No destination has this id.
        """
        return self._destinations[webhook_id].secret

    def rotations_of(self, webhook_id: str) -> int:
        """How many rotations the fake committed for *webhook_id*; 0 for
        unknown ids. Deleting a destination keeps its count."""
        return self._rotations[webhook_id]

    async def deliver(
        self,
        webhook_id: str,
        trigger_type: str = "message.created",
        payload: Mapping[str, Any] | None = None,
        *,
        secret: str | None = None,
    ) -> int:
        """
        Deliver a notification to a destination's URL as Nylas does, and
        return the HTTP status its receiver answered.

        The body is *payload* as given (send one twice to repeat a
        notification id), or by default a new notification of
        *trigger_type*. It is signed with the destination's current
        secret, or with *secret* to test a refusal, and sent gzip-
        compressed with ``Content-Encoding: gzip`` when the destination
        has ``compressed_delivery``, the signature then covering the
        compressed bytes. Only ``http://127.0.0.1`` URLs are delivered
        to.

        Raises:
            KeyError: No destination has this id.
            ValueError: The destination's URL is not on 127.0.0.1.
            ConnectionError: The receiver could not be reached.
            TimeoutError: The receiver did not answer within 10 s.
        """
        from ._delivery import deliver

        destination = self._destinations[webhook_id]
        if payload is None:
            payload = mock_notification(trigger_type, self._application_id)

        return await deliver(
            destination.webhook_url,
            notification=payload,
            secret=destination.secret if secret is None else secret,
            compressed=destination.compressed_delivery,
        )

    def inject(
        self,
        *faults: Fault,
        webhook_id: str | None = None,
        operation: str | None = None,
    ) -> None:
        """
        Queue *faults* for coming requests.

        Each request to a known route, once its key is accepted, takes the
        first queued fault whose filters match it; random faults apply
        only when none does.

        Args:
            faults: Applied one per matching request, in order.
            webhook_id: Match only requests for this id; any by default.
            operation: Match only this operation (see `OPERATIONS`); any
                by default.
        """
        if operation is not None and operation not in OPERATIONS:
            raise ValueError(
                f"operation must be one of {', '.join(OPERATIONS)}, "
                f"got {operation!r}"
            )

        self._scripted.extend(
            _Scripted(fault, webhook_id, operation) for fault in faults
        )

    def _new_destination(
        self,
        *,
        webhook_url: str,
        trigger_types: list[str],
        description: str | None,
        notification_email_addresses: list[str],
        compressed_delivery: bool,
        status: str,
        secret: str | None,
    ) -> _Destination:
        now = int(time.time())
        destination = _Destination(
            id=_new_id(),
            webhook_url=webhook_url,
            trigger_types=trigger_types,
            description=description,
            notification_email_addresses=notification_email_addresses,
            compressed_delivery=compressed_delivery,
            status=status,
            secret=secret or _new_secret(),
            created_at=now,
            updated_at=now,
            status_updated_at=now,
        )
        self._destinations[destination.id] = destination

        return destination

    async def _on_startup(self, app: web.Application) -> None:
        self._closing = asyncio.Event()

    async def _on_shutdown(self, app: web.Application) -> None:
        if self._closing is not None:
            self._closing.set()

    async def _pause(self, seconds: float) -> bool:
        """Wait *seconds*; ``False`` if the server began shutting down
        meanwhile, so that no sleep holds up a shutdown."""
        if seconds <= 0:
            return True
        if self._closing is None:
            await asyncio.sleep(seconds)
            return True

        try:
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        except TimeoutError:
            return True

        return False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        operation, webhook_id = _match(request.method, request.path)
        if operation == "ip_addresses" and not self._serve_ip_addresses:
            operation = None
        exchange = _Exchange(str(uuid.uuid4()), secrets.token_hex(16))
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            operation=operation,
            webhook_id=webhook_id,
            client_request_id=request.headers.get("X-Request-ID"),
            attempt=_attempt(request.headers.get("X-Request-Attempt")),
            request_id=exchange.request_id,
            query=dict(request.query),
        )
        log, index = self._requests, len(self._requests)
        log.append(record)

        try:
            response = await self._respond(
                request, operation, webhook_id, exchange
            )
            if response is None or not await self._pause(self._latency):
                return _drop(request)

            exchange.status = response.status
            return response
        finally:
            fault = exchange.fault.name if exchange.fault else None
            log[index] = attrs.evolve(
                record, status=exchange.status, fault=fault
            )

    async def _respond(
        self,
        request: web.Request,
        operation: str | None,
        webhook_id: str | None,
        exchange: _Exchange,
    ) -> web.Response | None:
        """The reply to *request*; ``None`` to drop the connection."""
        if operation is None:
            return _page_not_found(exchange)
        if not self._authorized(request):
            return _error(
                401, "api.authentication_error", "Unauthorized", exchange
            )
        if self._bucket is not None and not self._bucket.take(
            time.monotonic()
        ):
            return _rate_limited(None, False, exchange)

        exchange.fault = fault = self._take_fault(operation, webhook_id)
        call = _Call(webhook_id, await request.read(), dict(request.query))
        if fault is None:
            return _render(await self._run(operation, call), exchange)

        return await self._apply(fault, operation, call, exchange)

    async def _apply(
        self, fault: Fault, operation: str, call: _Call, exchange: _Exchange
    ) -> web.Response | None:
        """The reply to a request with *fault*; ``None`` to drop it."""
        match fault.kind:
            case "delay":
                if not await self._pause(fault.seconds):
                    return None
                return _render(await self._run(operation, call), exchange)
            case "slow":
                reply = await self._run(operation, call)
                if not await self._pause(fault.seconds):
                    return None
                return _render(reply, exchange)
            case "bad_body":
                assert fault.body_kind is not None
                reply = await self._run(operation, call)
                return _bad_body(fault.body_kind, reply, exchange)

        if fault.after_commit:
            await self._run(operation, call)
        if fault.kind == "rate_limited":
            return _rate_limited(fault.retry_after, fault.http_date, exchange)
        if fault.kind == "server_error":
            return _server_error(fault.status, fault.html, exchange)

        return None

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")

        # aiohttp keeps undecodable header bytes as lone surrogates.
        given = key.strip().encode("utf-8", "surrogateescape")

        return scheme.lower() == "bearer" and hmac.compare_digest(
            given, self._api_key
        )

    def _take_fault(
        self, operation: str, webhook_id: str | None
    ) -> Fault | None:
        for index, scripted in enumerate(self._scripted):
            if scripted.matches(operation, webhook_id):
                del self._scripted[index]
                return scripted.fault

        if self._random_faults is None:
            return None

        return self._random_faults.pick(self._rng)

    async def _run(self, operation: str, call: _Call) -> _Reply:
        try:
            return await self._operations[operation](call)
        except _ApiError as error:
            return error.reply

    def _find(self, webhook_id: str | None) -> _Destination:
        destination = self._destinations.get(webhook_id or "")
        if destination is None:
            raise _ApiError(
                self._not_found_status, _NOT_FOUND_TYPE, _NOT_FOUND_MESSAGE
            )

        return destination

    async def _rotate(self, call: _Call) -> _Reply:
        destination = self._find(call.webhook_id)
        destination.secret = _new_secret()
        destination.updated_at = int(time.time())
        self._rotations[destination.id] += 1

        return _Reply(200, {"data": destination.to_rotated_json()})

    async def _create(self, call: _Call) -> _Reply:
        payload = _json_object(call.body)
        trigger_types = _trigger_types(payload)
        webhook_url = _webhook_url(payload)
        description = _string(payload, "description")
        emails = _strings(payload, "notification_email_addresses")
        compressed = _boolean(payload, "compressed_delivery")
        if trigger_types is None or webhook_url is None:
            raise _invalid("trigger_types and webhook_url are required")
        if self._verify_challenge:
            await self._challenge(webhook_url)

        destination = self._new_destination(
            webhook_url=webhook_url,
            trigger_types=trigger_types,
            description=description,
            notification_email_addresses=emails or [],
            compressed_delivery=bool(compressed),
            status="active",
            secret=None,
        )

        return _Reply(200, {"data": destination.to_json(secret=True)})

    async def _list(self, call: _Call) -> _Reply:
        destinations = list(self._destinations.values())
        if self._page_size is None:
            data = [d.to_json(secret=False) for d in destinations]
            return _Reply(200, {"data": data})

        size = min(self._page_size, _limit(call.query))
        start = _page_start(call.query)
        end = start + size
        body: dict[str, object] = {
            "data": [d.to_json(secret=False) for d in destinations[start:end]]
        }
        if end < len(destinations):
            body["next_cursor"] = f"p{end}"

        return _Reply(200, body)

    async def _get(self, call: _Call) -> _Reply:
        destination = self._find(call.webhook_id)

        return _Reply(200, {"data": destination.to_json(secret=False)})

    async def _update(self, call: _Call) -> _Reply:
        destination = self._find(call.webhook_id)
        payload = _json_object(call.body)
        trigger_types = _trigger_types(payload)
        webhook_url = _webhook_url(payload)
        description = _string(payload, "description")
        emails = _strings(payload, "notification_email_addresses")
        compressed = _boolean(payload, "compressed_delivery")
        status = _string(payload, "status")
        if status not in (None, "active", "pause"):
            raise _invalid("status must be active or pause")

        now = int(time.time())
        if trigger_types is not None:
            destination.trigger_types = trigger_types
        if webhook_url is not None:
            destination.webhook_url = webhook_url
        if description is not None:
            destination.description = description
        if emails is not None:
            destination.notification_email_addresses = emails
        if compressed is not None:
            destination.compressed_delivery = compressed
        if status is not None and status != destination.status:
            destination.status = status
            destination.status_updated_at = now
        destination.updated_at = now

        return _Reply(200, {"data": destination.to_json(secret=False)})

    async def _delete(self, call: _Call) -> _Reply:
        destination = self._find(call.webhook_id)
        del self._destinations[destination.id]

        return _Reply(200, {"data": {"status": "success"}})

    async def _mock_payload(self, call: _Call) -> _Reply:
        payload = _json_object(call.body)
        trigger_type = _mock_trigger_type(payload)
        _string(payload, "webhook_url")

        notification = mock_notification(trigger_type, self._application_id)
        if self._mock_payload_nested:
            return _Reply(200, {"data": {"data": notification}})

        return _Reply(200, {"data": notification})

    async def _send_test_event(self, call: _Call) -> _Reply:
        payload = _json_object(call.body)
        trigger_type = _mock_trigger_type(payload)
        webhook_url = _webhook_url(payload)
        if webhook_url is None:
            raise _invalid("webhook_url is required")

        outcome = await self._deliver_test_event(trigger_type, webhook_url)

        return _Reply(200, {"data": outcome})

    async def _deliver_test_event(
        self, trigger_type: str, webhook_url: str
    ) -> str:
        """
        Deliver a test notification of *trigger_type* to *webhook_url*,
        signed with the secret ``mock-webhook-secret`` as Nylas does,
        and return the ``data`` string of the reply: ``"success"`` when
        the receiver answered 2xx, ``"failed"`` otherwise.

        Raises the 400 refusal for a URL outside 127.0.0.1.
        """
        from ._delivery import TEST_EVENT_SECRET, deliver

        notification = mock_notification(trigger_type, self._application_id)
        try:
            status = await deliver(
                webhook_url,
                notification=notification,
                secret=TEST_EVENT_SECRET,
            )
        except ValueError as exc:
            raise _invalid(str(exc)) from None
        except (ConnectionError, TimeoutError):
            return "failed"

        return "success" if 200 <= status < 300 else "failed"

    async def _ip_addresses(self, call: _Call) -> _Reply:
        data = {
            "ip_addresses": list(FAKE_IP_ADDRESSES),
            "updated_at": self._started,
        }

        return _Reply(200, {"data": data})

    async def _challenge(self, webhook_url: str) -> None:
        """
        Send Nylas's challenge to *webhook_url*; raise the ``"70005"``
        refusal unless it answers 200 with exactly the challenge value
        within the challenge timeout.
        """
        try:
            url = yarl.URL(webhook_url)
        except ValueError:
            raise _unverified("invalid url") from None
        if url.scheme != "http" or url.host != _CHALLENGE_HOST:
            raise _unverified(
                f"the fake challenges only http://{_CHALLENGE_HOST} URLs"
            )

        value = secrets.token_urlsafe(24)
        timeout = aiohttp.ClientTimeout(total=self._challenge_timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(
                    url.update_query(challenge=value), allow_redirects=False
                ) as response,
            ):
                status = response.status
                body = await response.read()
        except TimeoutError:
            raise _unverified("timeout waiting for the challenge") from None
        except aiohttp.ClientError:
            raise _unverified("could not connect to the webhook_url") from None

        if status != 200:
            raise _unverified(f"status is not ok, got {status}")
        if body != value.encode():
            raise _unverified("challenge value mismatch")


def _new_id() -> str:
    """A Nylas-looking id: 26 letters and digits."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


def _new_secret() -> str:
    """An opaque 20-character URL-safe secret, like the spec's example."""
    return secrets.token_urlsafe(15)


def is_token(text: str) -> bool:
    """Whether *text* is non-empty printable ASCII without whitespace,
    as an API key must be."""
    return (
        bool(text)
        and text.isascii()
        and text.isprintable()
        and not any(c.isspace() for c in text)
    )


def _attempt(header: str | None) -> int | None:
    if header is None:
        return None
    try:
        return int(header)
    except ValueError:
        return None


def _json_object(body: bytes) -> dict[str, object]:
    # Deep nesting, such as "[" * 100_000, exhausts the parser's stack:
    # that is a bad body too, not a server error.
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise _invalid("error parsing request body") from None
    if not isinstance(value, dict):
        raise _invalid("error parsing request body: expected a JSON object")

    return value


def _string(payload: Mapping[str, object], key: str) -> str | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, str):
        raise _invalid(f"{key} must be a string")

    return value


def _strings(payload: Mapping[str, object], key: str) -> list[str] | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(item, str) for item in value
    ):
        raise _invalid(f"{key} must be a list of strings")

    return list(value)


def _boolean(payload: Mapping[str, object], key: str) -> bool | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, bool):
        raise _invalid(f"{key} must be true or false")

    return value


def _mock_trigger_type(payload: Mapping[str, object]) -> str:
    """The one trigger type of a mock-payload or send-test-event body."""
    trigger_type = _string(payload, "trigger_type")
    if trigger_type is None:
        raise _invalid("trigger_type is required")
    if trigger_type not in MOCK_TRIGGER_TYPES:
        raise _invalid(f"trigger_type: invalid value {trigger_type!r}")

    return trigger_type


def _limit(query: Mapping[str, str]) -> int:
    """The ``limit`` of a list request; unlimited when absent."""
    raw = query.get("limit")
    if raw is None:
        return 2**31
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 0 < int(raw) <= 1000:
        raise _invalid("limit must be an integer from 1 to 1000")

    return int(raw)


def _page_start(query: Mapping[str, str]) -> int:
    """Where the page that ``page_token`` names starts, 0-based."""
    token = query.get("page_token")
    if token is None:
        return 0
    found = _PAGE_TOKEN.fullmatch(token)
    if found is None:
        raise _invalid("invalid page_token")

    return int(found.group(1))


def mock_notification(
    trigger_type: str, application_id: str
) -> dict[str, Any]:
    """
    An example notification of *trigger_type*, shaped like the ones
    Nylas delivers: the CloudEvents-style envelope around
    ``data.object``.  ``.truncated`` variants lack the message body.
    """
    kind = trigger_type.split(".", 1)[0]
    obj: dict[str, Any] = {
        "id": _new_id(),
        "grant_id": str(uuid.uuid4()),
        "object": kind,
    }
    if kind in ("message", "thread"):
        obj |= {
            "subject": "Hello from the fake Nylas",
            "from": [{"name": "Fake Sender", "email": "sender@example.com"}],
            "to": [{"email": "recipient@example.com"}],
            "snippet": "Hello from the fake Nylas",
            "date": int(time.time()),
        }
        if not trigger_type.endswith(".truncated"):
            obj["body"] = "<p>Hello from the fake Nylas</p>"

    return {
        "specversion": "1.0",
        "type": trigger_type,
        "source": "/nylas/fake",
        "id": str(uuid.uuid4()),
        "time": int(time.time()),
        "webhook_delivery_attempt": 1,
        "data": {"application_id": application_id, "object": obj},
    }


def _trigger_types(payload: Mapping[str, object]) -> list[str] | None:
    """The trigger types asked for; any dotted name is accepted because
    Nylas keeps adding new ones."""
    trigger_types = _strings(payload, "trigger_types")
    if trigger_types is None:
        return None
    if not trigger_types:
        raise _invalid("trigger_types must not be empty")
    for trigger_type in trigger_types:
        if _TRIGGER_TYPE.fullmatch(trigger_type) is None:
            raise _invalid(f"trigger_types: invalid value {trigger_type!r}")

    return trigger_types


def _webhook_url(payload: Mapping[str, object]) -> str | None:
    webhook_url = _string(payload, "webhook_url")
    if webhook_url is not None and not webhook_url.startswith(
        ("https://", "http://")
    ):
        raise _invalid("webhook_url must be an http or https URL")

    return webhook_url


def _headers(exchange: _Exchange) -> dict[str, str]:
    return {
        "x-request-id": exchange.request_id,
        "x-fastly-id": exchange.fastly_id,
    }


def _payload(reply: _Reply, exchange: _Exchange) -> str:
    return json.dumps({"request_id": exchange.request_id, **reply.body})


def _render(
    reply: _Reply,
    exchange: _Exchange,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=reply.status,
        text=_payload(reply, exchange),
        content_type="application/json",
        headers=_headers(exchange) | dict(headers or {}),
    )


def _error(
    status: int,
    type_: str,
    message: str,
    exchange: _Exchange,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    reply = _Reply(status, {"error": {"type": type_, "message": message}})

    return _render(reply, exchange, headers)


def _page_not_found(exchange: _Exchange) -> web.Response:
    """What Nylas's Go gateway answers for an unknown route or method."""
    return web.Response(
        status=404,
        text="404 page not found\n",
        content_type="text/plain",
        headers=_headers(exchange),
    )


def _rate_limited(
    retry_after: float | None, http_date: bool, exchange: _Exchange
) -> web.Response:
    headers: dict[str, str] = {}
    if retry_after is not None and http_date:
        when = datetime.now(UTC) + timedelta(seconds=retry_after)
        headers["Retry-After"] = email.utils.format_datetime(when, usegmt=True)
    elif retry_after is not None:
        headers["Retry-After"] = str(math.ceil(retry_after))

    return _error(
        429, "api.rate_limit_error", "Too many requests", exchange, headers
    )


def _server_error(
    status: int, html: bool, exchange: _Exchange
) -> web.Response:
    try:
        title = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        title = f"{status} Server Error"
    if not html:
        return _error(status, "api.internal_error", title, exchange)

    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    )
    # A gateway page comes from in front of the API: no Nylas request id.
    return web.Response(
        status=status,
        text=page,
        content_type="text/html",
        headers={"x-fastly-id": exchange.fastly_id},
    )


def _bad_body(
    kind: BadBodyKind, reply: _Reply, exchange: _Exchange
) -> web.Response:
    payload = _payload(reply, exchange)
    match kind:
        case "truncated":
            text, content_type = (
                payload[: len(payload) // 2],
                "application/json",
            )
        case "not_json":
            text, content_type = _NOT_JSON_PAGE, "text/html"
        case "text_plain_json":
            text, content_type = payload, "text/plain"

    return web.Response(
        status=reply.status,
        text=text,
        content_type=content_type,
        headers=_headers(exchange),
    )


def _drop(request: web.Request) -> web.Response:
    """Close the connection without a reply.

    The response returned is never sent: aiohttp finds the transport
    closing and gives up quietly, as for a client that went away.
    """
    if request.transport is not None:
        request.transport.close()

    return web.Response(status=_DROPPED)
