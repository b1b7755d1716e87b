"""
The HTTP layer: one aiohttp session, request ids, pacing and retries.

Every logical call gets a client request id that all of its attempts
send as ``X-Request-ID``.  The first attempt runs without any tenacity
machinery, since most calls succeed at once; a failure that is worth
retrying hands over to tenacity, which replays that failure as its own
first attempt and goes on from there.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, Final, Protocol

import aiohttp
import attrs
import tenacity
import yarl
from aiolimiter import AsyncLimiter

from ._config import RetryPolicy, Timeouts
from ._errors import (
    Attempt,
    AuthenticationError,
    CallError,
    ClientClosedError,
    DecodeError,
    NotFoundError,
    NylasApiError,
    NylasConnectionError,
    NylasError,
    NylasTimeoutError,
    RateLimitedError,
    ServerError,
    UsageError,
    excerpt,
    hide_secrets,
)

log: Final = logging.getLogger("nylas_async.http")
retry_log: Final = logging.getLogger("nylas_async.retry")

RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
#: Nylas's documented type for an unknown webhook id on a 400 reply.
NOT_FOUND_TYPE: Final = "70000"
#: The largest reply read; Nylas's webhook replies are a few kilobytes.
MAX_REPLY_BYTES: Final = 8 * 1024 * 1024
#: Paths whose every segment starts with a letter or digit and holds
#: nothing that needs percent-encoding: their URL is built without
#: parsing (no dot segments, nothing to quote).
_PLAIN_PATH: Final = re.compile(r"(?:/[A-Za-z0-9][A-Za-z0-9_.:-]*)+")

AmbiguityHandler = Callable[[NylasError, "Call"], NylasError]


class AttemptHooks(Protocol):
    """
    What a group of calls plugs into the transport: a batch rotation's
    shared pace and retry budget.

    Set through `attempt_hooks` in the tasks that make the calls; calls
    made from other tasks are not affected.
    """

    async def before_attempt(self) -> None:
        """Wait, if need be, before any attempt of a call goes out."""

    def may_retry(self, error: BaseException) -> bool:
        """
        Whether a call may try again after *error*.

        Asked only once the policy would retry, so a ``False`` ends
        the call with *error* (or with the ambiguity error it implies).
        """


#: The hooks of the group of calls the current task belongs to; a
#: context variable, so that each batch worker carries its own and
#: single calls pay one lookup.
attempt_hooks: Final[ContextVar[AttemptHooks | None]] = ContextVar(
    "nylas_async_attempt_hooks", default=None
)


@attrs.frozen
class Reply:
    """A decoded JSON object from a 2xx reply, with the call's ids."""

    method: str
    path: str
    payload: Mapping[str, Any]
    request_id: str | None
    client_request_id: str
    fastly_id: str | None
    attempts: tuple[Attempt, ...]


class Call:
    """
    The state of one logical call across its attempts.

    *on_ambiguous* is set for calls that are not idempotent (rotate,
    create): it turns the final error into the one that says the
    server's state is unknown, once an attempt failed in a way that
    leaves open whether the server acted.
    """

    __slots__ = (
        "ambiguous",
        "attempts",
        "body",
        "client_request_id",
        "method",
        "on_ambiguous",
        "params",
        "path",
        "retry_ambiguous",
        "started",
        "url",
    )

    def __init__(
        self,
        method: str,
        path: str,
        url: yarl.URL | str,
        body: bytes | None,
        params: Mapping[str, str] | None,
        on_ambiguous: AmbiguityHandler | None,
        retry_ambiguous: bool,
    ) -> None:
        self.method = method
        self.path = path
        self.url = url
        self.body = body
        self.params = params
        self.on_ambiguous = on_ambiguous
        self.retry_ambiguous = retry_ambiguous
        self.client_request_id = new_request_id()
        self.attempts: list[Attempt] = []
        self.started = time.monotonic()
        self.ambiguous = False


def new_request_id() -> str:
    """
    Return a random (version 4) UUID as text, like ``str(uuid.uuid4())``
    but without building a `uuid.UUID`, which costs more per request
    than all of the request's headers.
    """
    digits = os.urandom(16).hex()
    variant = "89ab"[int(digits[16], 16) & 3]

    return (
        f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-"
        f"{variant}{digits[17:20]}-{digits[20:]}"
    )


def _loads(raw: bytes) -> Any:
    """
    `json.loads` of a reply body, skipping its encoding sniffing when
    the body opens a UTF-8 object, as every Nylas reply does.
    """
    if raw[:1] == b"{" and raw[1:2] != b"\x00":
        return json.loads(raw.decode("utf-8", "surrogatepass"))

    return json.loads(raw)


def parse_retry_after(value: str | None) -> float | None:
    """
    Return the pause a ``Retry-After`` header asks for, in seconds.

    Both forms are accepted: delta seconds and an HTTP date.  A date in
    the past gives 0; a value that is neither gives ``None``.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            if when.tzinfo is None:
                return None
            seconds = when.timestamp() - time.time()
        except (TypeError, ValueError, OverflowError, IndexError):
            # email.utils raises any of these on hostile dates, such as
            # a year with twenty digits.
            return None
    if not math.isfinite(seconds):
        return None

    return max(0.0, seconds)


class _Failure:
    """Why an attempt failed, as the retry rules need it."""

    __slots__ = ("ambiguous", "reason", "retryable")

    def __init__(self, reason: str, retryable: bool, ambiguous: bool):
        self.reason = reason
        self.retryable = retryable
        self.ambiguous = ambiguous


def _failure(exc: BaseException) -> _Failure | None:
    return getattr(exc, "_nylas_failure", None)


def _mark(
    exc: NylasError, reason: str, *, retryable: bool, ambiguous: bool
) -> NylasError:
    exc._nylas_failure = _Failure(  # type: ignore[attr-defined]
        reason, retryable, ambiguous
    )
    return exc


class Transport:
    """
    Sends requests for a `Client` and applies the retry policy.

    Owns the aiohttp session unless the caller passed one in, paces all
    requests through one limiter, and pauses every request when any of
    them is answered 429.
    """

    def __init__(
        self,
        *,
        api_key: str,
        api_uri: str,
        timeouts: Timeouts,
        retry: RetryPolicy,
        rate_limit: float | None,
        connection_limit: int,
        session: aiohttp.ClientSession | None,
        user_agent: str,
    ) -> None:
        self.api_uri = api_uri.rstrip("/")
        self.timeouts = timeouts
        self.retry = retry
        self.rate_limit = rate_limit
        self._connection_limit = connection_limit
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._paused_until = 0.0
        # One request per 1/rate seconds, no burst: a bucket as deep as
        # the rate would let twice the rate out in the first second.
        self._limiter = (
            AsyncLimiter(1, 1 / rate_limit) if rate_limit is not None else None
        )
        self._key = api_key
        self._headers: Final = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        self._timeout = aiohttp.ClientTimeout(
            total=timeouts.attempt, sock_connect=timeouts.connect
        )
        self._base_url = _base_url(self.api_uri)

    @property
    def closed(self) -> bool:
        return self._closed

    def check_open(self) -> None:
        """Raise `ClientClosedError` if `aclose` was called."""
        if self._closed:
            raise ClientClosedError(
                "this client is closed; create a new Client to go on"
            )

    def _get_session(self) -> aiohttp.ClientSession:
        self.check_open()
        if self._session is None:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connection_limit),
                timeout=self._timeout,
                raise_for_status=False,
            )
            # XXX: aiohttp silently resends a GET, PUT or DELETE once when
            # a reused connection drops, hiding a lost reply from the
            # retry rules; it has no public switch, so turn its private
            # one off on the sessions we own.  A caller's session is left
            # as it is.  tests/test_rotate_integration.py shows the resend.
            session._retry_connection = False
            self._session = session

        return self._session

    async def aclose(self) -> None:
        """Close the session if we own it; calling again does nothing."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    def policy(self, retry: RetryPolicy | None) -> RetryPolicy:
        """*retry*, or the client's policy when it is ``None``."""
        if retry is None:
            return self.retry
        if not isinstance(retry, RetryPolicy):
            raise UsageError("retry must be a RetryPolicy or None")

        return retry

    def pause(self, seconds: float) -> None:
        """Hold every request of this client for *seconds* from now."""
        until = time.monotonic() + seconds
        if until > self._paused_until:
            self._paused_until = until

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        on_ambiguous: AmbiguityHandler | None = None,
        retry: RetryPolicy | None = None,
    ) -> Reply:
        """
        Send one logical call and return the JSON object of its reply.

        Raises the error of the last attempt, with every attempt
        recorded on it, or what *on_ambiguous* makes of it when an
        attempt may have acted on the server without a reply.
        """
        self._get_session()
        policy = self.policy(retry)
        body = None
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
        call = Call(
            method,
            path,
            self._url(path),
            body,
            params,
            on_ambiguous,
            policy.rotate_again,
        )

        try:
            return await self._attempt(call, policy)
        except NylasError as exc:
            first = exc

        try:
            worth_retrying = self._should_retry(call, first)
            if worth_retrying and policy.attempts > 1:
                return await self._retry(call, policy, first)
            raise first
        except NylasError as exc:
            final = self._final(call, exc)
            if final is exc:
                raise
            raise final from exc

    def _url(self, path: str) -> yarl.URL | str:
        """
        The URL of *path*: built from the parsed base when the path is
        plain, since aiohttp would otherwise parse and quote the whole
        URL again on every request.
        """
        base = self._base_url
        if base is not None and _PLAIN_PATH.fullmatch(path):
            return base.with_path(
                base.raw_path.rstrip("/") + path, encoded=True
            )

        return self.api_uri + path

    def _scrub_id(self, value: str | None) -> str | None:
        """*value* from a reply, with the API key blanked out if echoed."""
        if value is not None and self._key in value:
            return value.replace(self._key, "[api key]")

        return value

    def _excerpt(self, text: str) -> str:
        """The start of *text*, without secrets or the API key."""
        return excerpt(text.replace(self._key, "[api key]"))

    def _holds_secret(self, text: str) -> bool:
        """
        Whether *text* holds the API key or a webhook secret, in which
        case the aiohttp exception it came from is not chained: the
        check runs on the whole text, since an excerpt may cut off the
        very part that was blanked out.
        """
        return self._key in text or hide_secrets(text) != text

    def _final(self, call: Call, exc: NylasError) -> NylasError:
        attempts = tuple(call.attempts)
        if isinstance(exc, CallError):
            exc.attempts = attempts
        if call.ambiguous and call.on_ambiguous is not None:
            return call.on_ambiguous(exc, call)

        return exc

    def _should_retry(self, call: Call, exc: BaseException) -> bool:
        failure = _failure(exc)
        if failure is None:
            return False
        if call.on_ambiguous is not None and failure.ambiguous:
            call.ambiguous = True
            return failure.retryable and call.retry_ambiguous

        return failure.retryable

    async def _retry(
        self, call: Call, policy: RetryPolicy, first: NylasError
    ) -> Reply:
        replay: list[NylasError] = [first]

        async def attempt() -> Reply:
            if replay:
                raise replay.pop()
            return await self._attempt(call, policy)

        backoff = tenacity.wait_random_exponential(
            multiplier=policy.initial, max=policy.maximum
        )

        def wait(state: tenacity.RetryCallState) -> float:
            exc = _exception(state)
            if isinstance(exc, RateLimitedError) and exc.retry_after:
                return exc.retry_after
            return float(backoff(state))

        def stop(state: tenacity.RetryCallState) -> bool:
            exc = _exception(state)
            if state.attempt_number >= policy.attempts:
                return True
            if (
                isinstance(exc, RateLimitedError)
                and exc.retry_after is not None
                and exc.retry_after > policy.max_retry_after
            ):
                return True
            elapsed = time.monotonic() - call.started
            upcoming = state.upcoming_sleep
            if elapsed + upcoming >= policy.deadline:
                return True
            hooks = attempt_hooks.get()

            return hooks is not None and not hooks.may_retry(exc)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = _exception(state)
            failure = _failure(exc)
            reason = failure.reason if failure else type(exc).__name__
            seconds = state.upcoming_sleep
            call.attempts[-1] = attrs.evolve(
                call.attempts[-1], wait=seconds, reason=reason
            )
            if isinstance(exc, RateLimitedError):
                self.pause(seconds)
            retry_log.warning(
                "retrying %s %s in %.2fs after attempt %d: %s "
                "(client request id %s)",
                call.method,
                call.path,
                seconds,
                state.attempt_number,
                reason,
                call.client_request_id,
            )

        async def sleep(seconds: float) -> None:
            await asyncio.sleep(0 if policy.testing else seconds)

        retrying = tenacity.AsyncRetrying(
            sleep=sleep,
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception(
                lambda exc: self._should_retry(call, exc)
            ),
            before_sleep=before_sleep,
            reraise=True,
        )
        result: Reply = await retrying(attempt)

        return result

    async def _gate(self, call: Call, policy: RetryPolicy) -> None:
        delay = self._paused_until - time.monotonic()
        if delay > 0 and not policy.testing:
            remaining = policy.deadline - (time.monotonic() - call.started)
            await asyncio.sleep(min(delay, max(0.0, remaining)))
        hooks = attempt_hooks.get()
        if hooks is not None:
            await hooks.before_attempt()
        if self._limiter is not None:
            await self._limiter.acquire()

    async def _attempt(self, call: Call, policy: RetryPolicy) -> Reply:
        number = len(call.attempts) + 1
        if (
            self._limiter is not None
            or self._paused_until > 0
            or attempt_hooks.get() is not None
        ):
            await self._gate(call, policy)

        start = time.monotonic()
        remaining = policy.deadline - (start - call.started)
        if remaining <= 0:
            raise _mark(
                NylasTimeoutError(
                    f"the call's deadline of {policy.deadline:g}s passed",
                    method=call.method,
                    path=call.path,
                    client_request_id=call.client_request_id,
                ),
                "deadline",
                retryable=False,
                ambiguous=False,
            )
        timeout = self._timeout
        if remaining < self.timeouts.attempt:
            timeout = aiohttp.ClientTimeout(
                total=remaining, sock_connect=self.timeouts.connect
            )

        headers = {
            **self._headers,
            "X-Request-ID": call.client_request_id,
            "X-Request-Attempt": str(number),
        }
        if call.body is not None:
            headers["Content-Type"] = "application/json"

        session = self._get_session()
        try:
            async with session.request(
                call.method,
                call.url,
                data=call.body,
                params=call.params,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                raise_for_status=False,
            ) as resp:
                raw = await _read(resp)
                status = resp.status
                resp_headers = resp.headers
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            elapsed = time.monotonic() - start
            error = self._transport_error(call, exc, number, elapsed)
            if self._holds_secret(str(exc)):
                raise error from None
            raise error from exc
        except (ValueError, RuntimeError) as exc:
            raise UsageError(
                f"aiohttp refused to send the request: {exc}"
            ) from exc
        elapsed = time.monotonic() - start

        key = self._key
        nylas_id = resp_headers.get("x-request-id") or resp_headers.get(
            "request-id"
        )
        if nylas_id is not None and key in nylas_id:
            nylas_id = self._scrub_id(nylas_id)
        fastly_id = resp_headers.get("x-fastly-id")
        if fastly_id is not None and key in fastly_id:
            fastly_id = self._scrub_id(fastly_id)
        call.attempts.append(
            Attempt(
                number=number,
                outcome=str(status),
                elapsed=elapsed,
                nylas_request_id=nylas_id,
                fastly_id=fastly_id,
            )
        )
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s %s -> %d in %.3fs (attempt %d, client request id %s, "
                "Nylas request id %s, flow id %s)",
                call.method,
                call.path,
                status,
                elapsed,
                number,
                call.client_request_id,
                nylas_id,
                fastly_id,
            )

        ids = {
            "method": call.method,
            "path": call.path,
            "client_request_id": call.client_request_id,
            "fastly_id": fastly_id,
        }
        if 200 <= status < 300:
            return self._success(call, raw, nylas_id, ids)

        raise self._status_error(status, raw, resp_headers, nylas_id, ids)

    def _success(
        self,
        call: Call,
        raw: bytes | None,
        nylas_id: str | None,
        ids: dict[str, Any],
    ) -> Reply:
        if raw is None:
            raise _mark(
                DecodeError(
                    f"the reply is larger than {MAX_REPLY_BYTES} bytes",
                    nylas_request_id=nylas_id,
                    **ids,
                ),
                "reply too large",
                retryable=False,
                ambiguous=True,
            )
        try:
            payload = _loads(raw)
        except (ValueError, RecursionError):
            text = raw.decode("utf-8", "replace")
            raise _mark(
                DecodeError(
                    "the reply is not JSON",
                    body_excerpt=self._excerpt(text),
                    nylas_request_id=nylas_id,
                    **ids,
                ),
                "reply body not JSON",
                retryable=True,
                ambiguous=True,
            ) from None
        if not isinstance(payload, dict):
            kind = type(payload).__name__
            raise _mark(
                DecodeError(
                    "the reply is not a JSON object",
                    problems=[("", f"expected an object, got {kind}")],
                    nylas_request_id=nylas_id,
                    **ids,
                ),
                "reply not an object",
                retryable=False,
                ambiguous=True,
            )
        request_id = payload.get("request_id")
        if not isinstance(request_id, str):
            request_id = nylas_id

        return Reply(
            call.method,
            call.path,
            payload,
            request_id,
            call.client_request_id,
            ids["fastly_id"],
            tuple(call.attempts),
        )

    def _status_error(
        self,
        status: int,
        raw: bytes | None,
        headers: Mapping[str, str],
        nylas_id: str | None,
        ids: dict[str, Any],
    ) -> NylasError:
        error_type: str | None = None
        message: str | None = None
        provider_error = None
        body_excerpt = None
        request_id = nylas_id
        try:
            payload = None if raw is None else json.loads(raw)
        except (ValueError, RecursionError):
            payload = None
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            error_type = self._scrub_id(_str_or_none(error.get("type")))
            message = self._scrub_id(_str_or_none(error.get("message")))
            if isinstance(error.get("provider_error"), dict):
                provider_error = error["provider_error"]
            assert isinstance(payload, dict)
            request_id = (
                self._scrub_id(_str_or_none(payload.get("request_id")))
                or nylas_id
            )
        elif raw is None:
            body_excerpt = f"(larger than {MAX_REPLY_BYTES} bytes)"
        else:
            text = raw.decode("utf-8", "replace")
            body_excerpt = self._excerpt(text) or None

        cls = _error_class(status, error_type)
        retry_after = None
        if status == 429:
            retry_after = parse_retry_after(headers.get("Retry-After"))
        exc = cls(
            message or _default_message(status),
            status=status,
            type=error_type,
            provider_error=provider_error,
            body_excerpt=body_excerpt,
            retry_after=retry_after,
            nylas_request_id=request_id,
            **ids,
        )
        retryable = status in RETRY_STATUSES

        return _mark(
            exc,
            f"status {status}",
            retryable=retryable,
            ambiguous=retryable and status != 429,
        )

    def _transport_error(
        self,
        call: Call,
        exc: BaseException,
        number: int,
        elapsed: float,
    ) -> NylasError:
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            kind, ambiguous = "connect timeout", False
        elif isinstance(exc, asyncio.TimeoutError):
            kind, ambiguous = "timeout", True
        elif isinstance(exc, aiohttp.ClientConnectorError):
            kind, ambiguous = "connection failed", False
        else:
            kind, ambiguous = "connection dropped", True
        call.attempts.append(
            Attempt(number=number, outcome=kind, elapsed=elapsed)
        )
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s %s -> %s after %.3fs (attempt %d, client request id %s)",
                call.method,
                call.path,
                kind,
                elapsed,
                number,
                call.client_request_id,
            )

        cls: type[NylasTimeoutError | NylasConnectionError]
        if isinstance(exc, asyncio.TimeoutError):
            cls = NylasTimeoutError
        else:
            cls = NylasConnectionError
        error = cls(
            f"{kind}: {self._excerpt(_describe_transport(exc))}",
            method=call.method,
            path=call.path,
            client_request_id=call.client_request_id,
        )

        return _mark(error, kind, retryable=True, ambiguous=ambiguous)


def _base_url(api_uri: str) -> yarl.URL | None:
    """
    The parsed *api_uri* to build request URLs from, or ``None`` when
    it has a query or a fragment, or building from it would not give
    what parsing the joined text gives.
    """
    try:
        base = yarl.URL(api_uri)
        sample = "/v3/webhooks/rotate-secret/0aZ_.:-"
        built = base.with_path(
            base.raw_path.rstrip("/") + sample, encoded=True
        )
        parsed = yarl.URL(api_uri + sample)
    except ValueError:
        return None
    if str(built) != str(parsed) or base.raw_query_string or base.fragment:
        return None

    return base


async def _read(resp: aiohttp.ClientResponse) -> bytes | None:
    """
    The body of *resp*, or ``None`` if it is over `MAX_REPLY_BYTES`.

    Webhook replies are small; a huge one is a broken gateway, and
    reading it whole would only exhaust memory.
    """
    length = resp.content_length
    if length is not None and length <= MAX_REPLY_BYTES:
        return await resp.read()
    if length is not None:
        return None

    chunks = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            return None
        chunks.append(chunk)

    return b"".join(chunks)


def _exception(state: tenacity.RetryCallState) -> BaseException:
    assert state.outcome is not None
    exc = state.outcome.exception()
    assert exc is not None

    return exc


def _describe_transport(exc: BaseException) -> str:
    text = str(exc)
    if not text:
        return type(exc).__name__

    return f"{type(exc).__name__}: {text}"


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _error_class(status: int, error_type: str | None) -> type[NylasApiError]:
    if status in (401, 403):
        return AuthenticationError
    if status == 404 or (status == 400 and error_type == NOT_FOUND_TYPE):
        return NotFoundError
    if status == 429:
        return RateLimitedError
    if status >= 500:
        return ServerError

    return NylasApiError


def _default_message(status: int) -> str:
    return {
        401: "the API key was refused",
        403: "the API key may not do this",
        404: "not found",
        408: "Nylas timed out waiting for the request",
        429: "rate limited",
    }.get(status, "Nylas answered with an error")
