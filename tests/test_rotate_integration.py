"""rotate_secret, create, find and list over loopback against the fake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from nylas_async import (
    AuthenticationError,
    Client,
    CreateWebhookRequest,
    NotFoundError,
    RateLimitedError,
    RetryPolicy,
    SecretStateUnknownError,
    Timeouts,
)
from nylas_async.testing import FakeNylas, FakeServer, Fault

from .conftest import until

KEY = "nyk_integration_test"
FAST = RetryPolicy(attempts=5, initial=0.01, maximum=0.05)


@pytest.fixture
def fake() -> FakeNylas:
    return FakeNylas(KEY)


@pytest.fixture
async def server(fake: FakeNylas) -> AsyncIterator[FakeServer]:
    async with FakeServer(fake) as s:
        yield s


@pytest.fixture
async def client(server: FakeServer) -> AsyncIterator[Client]:
    async with Client(
        api_key=KEY,
        api_uri=server.url,
        retry=FAST,
        timeouts=Timeouts(connect=2, attempt=0.5),
        rate_limit=None,
    ) as c:
        yield c


@pytest.fixture
def wid(fake: FakeNylas) -> str:
    return fake.add_webhook(
        webhook_url="https://example.com/hook",
        trigger_types=["message.created"],
    )


class TestRotateSecret:
    async def test_plain(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """A rotation returns the fake's new secret and Nylas's ids."""
        before = fake.secret_of(wid)

        r = await client.webhooks.rotate_secret(wid)

        assert r.data.webhook_secret == fake.secret_of(wid) != before
        assert r.request_id
        assert r.fastly_id
        [req] = fake.requests
        assert (req.method, req.path) == (
            "POST",
            f"/v3/webhooks/rotate-secret/{wid}",
        )
        assert req.client_request_id == r.client_request_id

    @pytest.mark.parametrize(
        "fault",
        [
            pytest.param(Fault.rate_limited(), id="429"),
            pytest.param(Fault.rate_limited(0.05), id="429-seconds"),
            pytest.param(Fault.rate_limited(1, http_date=True), id="429-date"),
            pytest.param(Fault.server_error(500), id="500-json"),
            pytest.param(Fault.server_error(503), id="503-json"),
            pytest.param(Fault.server_error(502, html=True), id="502-html"),
            pytest.param(
                Fault.server_error(500, after_commit=True),
                id="500-after-commit",
            ),
            pytest.param(Fault.drop(after_commit=False), id="drop-before"),
            pytest.param(Fault.drop(after_commit=True), id="drop-after"),
            pytest.param(Fault.slow(2.0), id="slower-than-timeout"),
            pytest.param(Fault.delay(0.05), id="latency"),
            pytest.param(Fault.bad_body("truncated"), id="truncated"),
            pytest.param(Fault.bad_body("not_json"), id="html-200"),
            pytest.param(Fault.bad_body("text_plain_json"), id="json-as-text"),
        ],
    )
    async def test_fault_ends_with_current_secret(
        self, client: Client, fake: FakeNylas, wid: str, fault: Fault
    ) -> None:
        """After any single fault the secret returned is the fake's."""
        fake.inject(fault, webhook_id=wid)

        r = await client.webhooks.rotate_secret(wid)

        assert r.data.webhook_secret == fake.secret_of(wid)
        ids = {q.client_request_id for q in fake.requests}
        assert ids == {r.client_request_id}

    async def test_reply_dropped_after_commit(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """A commit whose reply is lost is followed by a new rotation."""
        fake.inject(Fault.drop(after_commit=True), webhook_id=wid)

        r = await client.webhooks.rotate_secret(wid)

        assert fake.rotations_of(wid) == 2
        assert r.data.webhook_secret == fake.secret_of(wid)
        assert [a.outcome for a in r.attempts] == [
            "connection dropped",
            "200",
        ]

    async def test_unknown_when_every_reply_is_lost(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """If no reply ever arrives, the state is reported unknown."""
        fake.inject(
            *[Fault.drop(after_commit=True)] * FAST.attempts, webhook_id=wid
        )

        with pytest.raises(SecretStateUnknownError) as info:
            await client.webhooks.rotate_secret(wid)

        assert fake.rotations_of(wid) == FAST.attempts
        assert info.value.webhook_id == wid
        assert fake.secret_of(wid) not in str(info.value)

    async def test_rotate_again_off(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """With rotate_again off, one lost reply raises at once."""
        fake.inject(Fault.server_error(502, html=True), webhook_id=wid)
        policy = RetryPolicy(rotate_again=False, initial=0.01)

        with pytest.raises(SecretStateUnknownError):
            await client.webhooks.rotate_secret(wid, retry=policy)

        assert len(fake.requests) == 1

    async def test_unknown_id(self, client: Client) -> None:
        """An unknown id is NotFoundError after one request."""
        with pytest.raises(NotFoundError) as info:
            await client.webhooks.rotate_secret("doesNotExist123")

        assert info.value.type == "70000"
        assert info.value.nylas_request_id

    async def test_unknown_id_404_reading(self) -> None:
        """The 404 reading of not-found maps to NotFoundError too."""
        fake = FakeNylas(KEY, not_found_status=404)
        async with (
            FakeServer(fake) as server,
            Client(api_key=KEY, api_uri=server.url, rate_limit=None) as c,
        ):
            with pytest.raises(NotFoundError) as info:
                await c.webhooks.rotate_secret("doesNotExist123")

        assert info.value.status == 404

    async def test_wrong_key(self, server: FakeServer, wid: str) -> None:
        """A wrong key is an AuthenticationError, not retried."""
        async with Client(
            api_key="wrong", api_uri=server.url, rate_limit=None
        ) as c:
            with pytest.raises(AuthenticationError) as info:
                await c.webhooks.rotate_secret(wid)

        assert info.value.status == 401
        assert info.value.attempt_count == 1
        assert "wrong" not in str(info.value)

    async def test_cancellation_not_retried(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """Cancelling a call ends it; nothing is retried behind it."""
        fake.inject(Fault.delay(5), webhook_id=wid)
        task = asyncio.create_task(client.webhooks.rotate_secret(wid))
        await until(lambda: bool(fake.requests))

        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)

        assert len(fake.requests) == 1

    async def test_concurrent_calls_share_the_client(
        self, client: Client, fake: FakeNylas
    ) -> None:
        """Many tasks can rotate through one client at once."""
        ids = [
            fake.add_webhook(
                webhook_url=f"https://example.com/{n}",
                trigger_types=["message.created"],
            )
            for n in range(50)
        ]

        results = await asyncio.gather(
            *(client.webhooks.rotate_secret(i) for i in ids)
        )

        assert all(
            r.data.webhook_secret == fake.secret_of(i)
            for r, i in zip(results, ids, strict=True)
        )


class TestPacing:
    async def test_429_pauses_other_calls(
        self, server: FakeServer, fake: FakeNylas, wid: str
    ) -> None:
        """A 429 with Retry-After holds every call of the client."""
        other = fake.add_webhook(
            webhook_url="https://example.com/2",
            trigger_types=["message.created"],
        )
        fake.inject(Fault.rate_limited(0.3), webhook_id=wid)
        async with Client(
            api_key=KEY, api_uri=server.url, rate_limit=None
        ) as c:
            first = asyncio.create_task(c.webhooks.rotate_secret(wid))
            await until(lambda: bool(fake.requests))
            await asyncio.sleep(0.05)
            t0 = asyncio.get_running_loop().time()
            await c.webhooks.rotate_secret(other)
            held = asyncio.get_running_loop().time() - t0
            await first

        assert held >= 0.2

    @pytest.mark.parametrize(
        ("rate_limit", "paced"),
        [
            pytest.param(18.0, True, id="paced"),
            pytest.param(None, False, id="unpaced"),
        ],
    )
    async def test_rate_limit_keeps_under_the_server_limit(
        self, rate_limit: float | None, paced: bool
    ) -> None:
        """Paced under the fake's 20/s, no request is refused with 429."""
        fake = FakeNylas(KEY, rate_limit=20)
        ids = [
            fake.add_webhook(
                webhook_url=f"https://example.com/{n}",
                trigger_types=["message.created"],
            )
            for n in range(40)
        ]
        async with (
            FakeServer(fake) as server,
            Client(
                api_key=KEY,
                api_uri=server.url,
                rate_limit=rate_limit,
                retry=RetryPolicy(testing=True, attempts=1),
            ) as c,
        ):
            results = await asyncio.gather(
                *(c.webhooks.find(i) for i in ids), return_exceptions=True
            )

        refused = [r for r in results if isinstance(r, RateLimitedError)]
        assert (not refused) is paced

    async def test_no_burst_above_the_rate(self) -> None:
        """No one-second window holds more than rate + 1 requests."""
        from aiohttp import web

        arrivals: list[float] = []

        async def handler(request: web.Request) -> web.Response:
            arrivals.append(asyncio.get_running_loop().time())
            return web.json_response({"data": {"id": "a"}})

        app = web.Application()
        app.router.add_get("/v3/webhooks/{id}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with Client(
                api_key=KEY, api_uri=f"http://127.0.0.1:{port}", rate_limit=20
            ) as c:
                await asyncio.gather(
                    *(c.webhooks.find("a") for _ in range(30))
                )
        finally:
            await runner.cleanup()

        busiest = max(
            sum(1 for t in arrivals if start <= t < start + 1.0)
            for start in arrivals
        )
        assert len(arrivals) == 30
        assert busiest <= 21


class TestOtherCalls:
    async def test_create_find_list(
        self, client: Client, fake: FakeNylas
    ) -> None:
        """A created destination can be found and listed, secret aside."""
        request = CreateWebhookRequest(
            trigger_types=["message.created", "grant.expired"],
            webhook_url="https://example.com/new",
            description="new one",
        )

        created = await client.webhooks.create(request)
        found = await client.webhooks.find(created.data.id)
        listed = await client.webhooks.list()

        assert created.data.webhook_secret == fake.secret_of(created.data.id)
        assert found.data.trigger_types == request.trigger_types
        assert found.data.created_at is not None
        assert [w.id for w in listed.data] == [created.data.id]

    async def test_create_lost_reply_is_not_repeated(
        self, client: Client, fake: FakeNylas
    ) -> None:
        """A create whose reply is lost raises instead of duplicating."""
        fake.inject(Fault.drop(after_commit=True), operation="create")
        request = CreateWebhookRequest(
            trigger_types=["message.created"],
            webhook_url="https://example.com/new",
        )

        with pytest.raises(SecretStateUnknownError) as info:
            await client.webhooks.create(request)

        assert info.value.webhook_id is None
        assert len(fake.webhook_ids) == 1
        assert len(fake.requests) == 1

    async def test_create_rate_limited_is_retried(
        self, client: Client, fake: FakeNylas
    ) -> None:
        """A 429 on create made nothing, so it is retried."""
        fake.inject(Fault.rate_limited(0.01), operation="create")
        request = CreateWebhookRequest(
            trigger_types=["message.created"],
            webhook_url="https://example.com/new",
        )

        await client.webhooks.create(request)

        assert len(fake.webhook_ids) == 1

    async def test_rate_limit_error_carries_retry_after(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """A Retry-After above the cap comes back on the error."""
        fake.inject(Fault.rate_limited(120), webhook_id=wid)

        with pytest.raises(RateLimitedError) as info:
            await client.webhooks.find(wid)

        assert info.value.retry_after == 120

    @pytest.mark.parametrize(
        "kwargs",
        [
            pytest.param({"trigger_types": []}, id="no-triggers"),
            pytest.param({"trigger_types": "message.created"}, id="string"),
            pytest.param({"webhook_url": "ftp://x"}, id="bad-url"),
        ],
    )
    def test_bad_create_request(self, kwargs: dict[str, object]) -> None:
        """An invalid create request fails before any request."""
        from nylas_async import UsageError

        base: dict[str, object] = {
            "trigger_types": ["message.created"],
            "webhook_url": "https://example.com/x",
        }
        with pytest.raises(UsageError):
            CreateWebhookRequest(**{**base, **kwargs})  # type: ignore[arg-type]


class TestHiddenResend:
    async def test_dropped_get_is_counted_as_an_attempt(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """A dropped GET shows up in the attempts, not resent unseen."""
        await client.webhooks.find(wid)
        fake.inject(Fault.drop(after_commit=True), operation="get")

        r = await client.webhooks.find(wid)

        assert [a.outcome for a in r.attempts] == [
            "connection dropped",
            "200",
        ]

    async def test_aiohttp_alone_resends(
        self, server: FakeServer, fake: FakeNylas, wid: str
    ) -> None:
        """
        XXX: a plain aiohttp session resends a dropped GET by itself;
        when this starts failing, the private switch the transport turns
        off can go.
        """
        import aiohttp

        fake.inject(Fault.drop(after_commit=True), operation="get")
        headers = {"Authorization": f"Bearer {KEY}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            url = f"{server.url}/v3/webhooks/{wid}"
            async with session.get(url) as warm:
                await warm.read()
            async with session.get(url) as resp:
                status = resp.status

        assert status == 200
        assert len(fake.requests) == 3
