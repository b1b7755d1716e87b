"""Replies no well-behaved Nylas sends, from a stub server on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from nylas_async import (
    Client,
    DecodeError,
    NotFoundError,
    NylasApiError,
    NylasConnectionError,
    RateLimitedError,
    RetryPolicy,
    SecretStateUnknownError,
    UsageError,
)
from nylas_async._http import MAX_REPLY_BYTES, parse_retry_after

KEY = "nyk_hostile_test_key"
WID = "wh1"
SURROGATE = '{"data": {"id": "wh1", "webhook_secret": "a\\ud800"}}'
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Stub:
    """A one-handler aiohttp server on 127.0.0.1 that counts requests."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.hits = 0
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        assert self.handler is not None
        return await self.handler(request)


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    s = Stub()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", s._handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    s.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield s
    finally:
        await runner.cleanup()


def client_for(stub: Stub, **kwargs: object) -> Client:
    return Client(
        api_key=KEY,
        api_uri=stub.url,
        rate_limit=None,
        retry=RetryPolicy(testing=True),
        **kwargs,  # type: ignore[arg-type]
    )


def rotated(secret: object, wid: str = WID) -> web.Response:
    body = {"data": {"id": wid, "webhook_secret": secret}}
    return web.json_response(body)


class TestUnusableSecrets:
    @pytest.mark.parametrize(
        "reply",
        [
            pytest.param(lambda: rotated(""), id="empty"),
            pytest.param(lambda: rotated("   "), id="blank"),
            pytest.param(lambda: rotated(12345), id="number"),
            pytest.param(
                lambda: web.Response(text=SURROGATE),
                id="lone-surrogate",
            ),
            pytest.param(lambda: rotated("fine", wid="other"), id="other-id"),
        ],
    )
    async def test_no_usable_secret_is_unknown(
        self, stub: Stub, reply: Callable[[], web.Response]
    ) -> None:
        """A 200 rotation without a usable secret for the id is unknown."""

        async def handler(_: web.Request) -> web.Response:
            return reply()

        stub.handler = handler
        async with client_for(stub) as c:
            with pytest.raises(SecretStateUnknownError) as info:
                await c.webhooks.rotate_secret(WID)

        assert isinstance(info.value.__cause__, DecodeError)


class TestRedirects:
    @pytest.mark.parametrize("status", [302, 307])
    async def test_not_followed(self, stub: Stub, status: int) -> None:
        """A redirect is an error, never followed to another origin."""

        async def handler(_: web.Request) -> web.Response:
            location = {"Location": "http://127.0.0.2:9/elsewhere"}
            return web.Response(status=status, headers=location)

        stub.handler = handler
        async with client_for(stub) as c:
            with pytest.raises(NylasApiError) as info:
                await c.webhooks.rotate_secret(WID)

        assert info.value.status == status
        assert stub.hits == 1


class TestHostileBodies:
    async def test_deeply_nested_json(self, stub: Stub) -> None:
        """A pathologically nested body is a DecodeError, not a crash."""

        async def handler(_: web.Request) -> web.Response:
            return web.Response(text="[" * 100_000)

        stub.handler = handler
        async with client_for(stub) as c:
            with pytest.raises(DecodeError):
                await c.webhooks.find(WID)

    async def test_deeply_nested_error_body(self, stub: Stub) -> None:
        """A nested error body still maps to the status's error."""

        async def handler(_: web.Request) -> web.Response:
            return web.Response(status=404, text="[" * 100_000)

        stub.handler = handler
        async with client_for(stub) as c:
            with pytest.raises(NotFoundError):
                await c.webhooks.find(WID)

    async def test_huge_reply_not_read_whole(self, stub: Stub) -> None:
        """A reply over the size cap is refused, streamed or not."""

        async def handler(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse()
            await resp.prepare(request)
            chunk = b" " * 1024 * 1024
            for _ in range(MAX_REPLY_BYTES // len(chunk) + 2):
                await resp.write(chunk)
            await resp.write_eof()
            return resp

        stub.handler = handler
        async with client_for(stub) as c:
            with pytest.raises(DecodeError, match="larger than"):
                await c.webhooks.find(WID, retry=RetryPolicy.no_retries())

    async def test_echoed_key_is_scrubbed(self, stub: Stub) -> None:
        """An API key a server echoes back never reaches error text."""

        async def handler(request: web.Request) -> web.Response:
            auth = request.headers["Authorization"]
            body = {"request_id": auth, "error": {"message": auth}}
            return web.Response(
                status=400,
                text=json.dumps(body),
                headers={"x-request-id": auth},
            )

        stub.handler = handler
        async with client_for(stub) as c:
            with pytest.raises(NylasApiError) as info:
                await c.webhooks.find(WID)

        assert KEY not in str(info.value)
        assert KEY not in repr(vars(info.value))

    async def test_key_deep_in_aiohttp_error_not_chained(
        self, stub: Stub
    ) -> None:
        """An aiohttp error naming the key past the excerpt is dropped."""

        async def fail(*_: object) -> None:
            raise aiohttp.ClientConnectionError("x" * 300 + KEY)

        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(fail)
        session = aiohttp.ClientSession(trace_configs=[trace])
        async with session, client_for(stub, session=session) as c:
            with pytest.raises(NylasConnectionError) as info:
                await c.webhooks.find(WID, retry=RetryPolicy.no_retries())

        assert info.value.__cause__ is None
        assert info.value.__suppress_context__

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param('{"v": "SECRET-IN-OBJECT"}', id="object"),
            pytest.param('["a", "SECRET-IN-LIST"]', id="list"),
            pytest.param('"SECRET-PLAIN"', id="string"),
        ],
    )
    @pytest.mark.parametrize(
        "key",
        [
            pytest.param("webhook_secret", id="plain-key"),
            pytest.param("\\u0077ebhook_secret", id="escaped-key"),
        ],
    )
    async def test_secret_in_error_body_hidden(
        self, stub: Stub, key: str, value: str
    ) -> None:
        """A secret in a non-Nylas error body never reaches error text."""
        body = '{"data": {"id": "wh1", "' + key + '": ' + value + "}}"

        async def handler(_: web.Request) -> web.Response:
            return web.Response(status=502, text=body)

        stub.handler = handler
        async with client_for(stub) as c:
            with pytest.raises(NylasApiError) as info:
                await c.webhooks.find(WID, retry=RetryPolicy.no_retries())

        assert "SECRET" not in str(info.value)
        assert "SECRET" not in (info.value.body_excerpt or "")

    async def test_huge_retry_after_date(self, stub: Stub) -> None:
        """A Retry-After date past any calendar is ignored, not a crash."""

        async def handler(_: web.Request) -> web.Response:
            date = "Mon, 01 Jan 99999999999999999999 00:00:00 GMT"
            return web.Response(status=429, headers={"Retry-After": date})

        stub.handler = handler
        async with client_for(stub) as c:
            with pytest.raises(RateLimitedError) as info:
                await c.webhooks.find(WID)

        assert info.value.retry_after is None
        assert parse_retry_after("Mon, 01 Jan 99999 00:00:00 GMT") is None


class TestCallersSession:
    async def test_raise_for_status_session(self, stub: Stub) -> None:
        """A caller's raise_for_status session still maps statuses."""

        async def handler(_: web.Request) -> web.Response:
            return web.json_response({"error": {"type": "70000"}}, status=400)

        stub.handler = handler
        async with (
            aiohttp.ClientSession(raise_for_status=True) as session,
            client_for(stub, session=session) as c,
        ):
            with pytest.raises(NotFoundError):
                await c.webhooks.rotate_secret(WID)

        assert stub.hits == 1

    async def test_closed_session(self, stub: Stub) -> None:
        """A caller's session closed under us is a UsageError."""
        session = aiohttp.ClientSession()
        await session.close()

        async with client_for(stub, session=session) as c:
            with pytest.raises(UsageError):
                await c.webhooks.find(WID)
