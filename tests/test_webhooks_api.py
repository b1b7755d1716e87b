"""Every client.webhooks endpoint over loopback against the fake."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from nylas_async import (
    Client,
    CreateWebhookRequest,
    DecodeError,
    InvalidWebhookIdError,
    NotFoundError,
    NylasApiError,
    RetryPolicy,
    SecretStateUnknownError,
    Timeouts,
    UpdateWebhookRequest,
    UsageError,
    WebhookDeleteResult,
    WebhookIpAddresses,
    WebhookStatus,
)
from nylas_async._models import UNSET, update_body
from nylas_async.testing import FakeNylas, FakeServer, Fault

KEY = "nyk_webhooks_api_test"
FAST = RetryPolicy(attempts=4, initial=0.01, maximum=0.05)
BAD_IDS = [
    pytest.param("", id="empty"),
    pytest.param("a/b", id="slash"),
    pytest.param("../v3", id="dot-dot"),
    pytest.param(12, id="not-a-string"),
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serving(fake: FakeNylas) -> AsyncIterator[Client]:
    """A fast-retrying client against *fake* served on loopback."""
    async with (
        FakeServer(fake) as server,
        Client(
            api_key=KEY,
            api_uri=server.url,
            retry=FAST,
            timeouts=Timeouts(connect=2, attempt=1),
            rate_limit=None,
        ) as client,
    ):
        yield client


@contextlib.asynccontextmanager
async def local_app(
    routes: dict[tuple[str, str], Handler],
) -> AsyncIterator[str]:
    """Serve *routes* on a free loopback port; yield the base URL."""
    app = web.Application()
    for (method, path), handler in routes.items():
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def echo_challenge(request: web.Request) -> web.Response:
    return web.Response(text=request.query["challenge"])


@pytest.fixture
def fake() -> FakeNylas:
    return FakeNylas(KEY)


@pytest.fixture
async def client(fake: FakeNylas) -> AsyncIterator[Client]:
    async with serving(fake) as c:
        yield c


@pytest.fixture
def wid(fake: FakeNylas) -> str:
    return fake.add_webhook(description="Seeded")


def new_request(url: str = "https://example.com/new") -> CreateWebhookRequest:
    return CreateWebhookRequest(
        trigger_types=["message.created"], webhook_url=url
    )


class TestList:
    async def test_one_request_when_no_cursor(
        self, client: Client, fake: FakeNylas
    ) -> None:
        """Without next_cursor, list is one plain request for all."""
        ids = [fake.add_webhook() for _ in range(3)]

        listed = await client.webhooks.list()

        assert [w.id for w in listed.data] == ids
        [request] = fake.requests
        assert request.query == {}
        assert listed.request_id == request.request_id

    async def test_follows_cursors(self) -> None:
        """With pages, list follows next_cursor and returns them all."""
        fake = FakeNylas(KEY, page_size=2)
        ids = [fake.add_webhook() for _ in range(5)]

        async with serving(fake) as client:
            listed = await client.webhooks.list()

        assert [w.id for w in listed.data] == ids
        assert [r.query for r in fake.requests] == [
            {},
            {"page_token": "p2"},
            {"page_token": "p4"},
        ]
        assert len(listed.attempts) == 3

    async def test_pages_send_limit_and_token(self) -> None:
        """pages() sends limit on every page and the cursor after it."""
        fake = FakeNylas(KEY, page_size=10)
        ids = [fake.add_webhook() for _ in range(3)]

        async with serving(fake) as client:
            pages = [p async for p in client.webhooks.pages(limit=2)]

        assert [[w.id for w in p.data.webhooks] for p in pages] == [
            ids[:2],
            ids[2:],
        ]
        assert [p.data.next_cursor for p in pages] == ["p2", None]
        assert [r.query for r in fake.requests] == [
            {"limit": "2"},
            {"limit": "2", "page_token": "p2"},
        ]

    async def test_pages_stop_at_max_pages(self) -> None:
        """pages() stops quietly after max_pages, cursor in hand."""
        fake = FakeNylas(KEY, page_size=1)
        for _ in range(4):
            fake.add_webhook()

        async with serving(fake) as client:
            pages = [p async for p in client.webhooks.pages(max_pages=2)]
            rest = [
                p
                async for p in client.webhooks.pages(
                    page_token=pages[-1].data.next_cursor
                )
            ]

        assert len(pages) == 2
        assert len(rest) == 2
        assert rest[-1].data.next_cursor is None

    async def test_iter_all_yields_every_destination(self) -> None:
        """iter_all yields each destination once across pages."""
        fake = FakeNylas(KEY, page_size=3)
        ids = [fake.add_webhook() for _ in range(7)]

        async with serving(fake) as client:
            seen = [w.id async for w in client.webhooks.iter_all(limit=2)]

        assert seen == ids
        assert len(fake.requests) == 4

    async def test_repeated_cursor_raises(self) -> None:
        """A server that repeats its cursor gets a DecodeError, not a
        loop."""
        calls = 0

        async def same_cursor(request: web.Request) -> web.Response:
            nonlocal calls
            calls += 1
            return web.json_response(
                {"request_id": "r", "data": [], "next_cursor": "again"}
            )

        routes = {("GET", "/v3/webhooks"): same_cursor}
        async with (
            local_app(routes) as url,
            Client(api_key=KEY, api_uri=url, rate_limit=None) as client,
        ):
            with pytest.raises(DecodeError) as info:
                await client.webhooks.list()

        assert calls == 2
        assert info.value.problems == (
            ("next_cursor", "repeats an earlier cursor"),
        )

    async def test_bad_cursor_type_raises(self) -> None:
        """A next_cursor that is not a string is a DecodeError."""

        async def number_cursor(request: web.Request) -> web.Response:
            return web.json_response({"data": [], "next_cursor": 7})

        routes = {("GET", "/v3/webhooks"): number_cursor}
        async with (
            local_app(routes) as url,
            Client(api_key=KEY, api_uri=url, rate_limit=None) as client,
        ):
            with pytest.raises(DecodeError, match="next_cursor"):
                await client.webhooks.list()

    @pytest.mark.parametrize(
        "kwargs",
        [
            pytest.param({"limit": 0}, id="zero-limit"),
            pytest.param({"limit": True}, id="bool-limit"),
            pytest.param({"max_pages": -1}, id="negative-max"),
            pytest.param({"page_token": ""}, id="empty-token"),
        ],
    )
    async def test_bad_paging_arguments(
        self, client: Client, fake: FakeNylas, kwargs: dict[str, object]
    ) -> None:
        """Nonsense paging arguments raise UsageError without a request."""
        with pytest.raises(UsageError):
            async for _ in client.webhooks.pages(**kwargs):  # type: ignore[arg-type]
                pass

        assert fake.requests == []


class TestFind:
    async def test_returns_without_secret(
        self, client: Client, wid: str
    ) -> None:
        """find returns the destination with aware timestamps."""
        found = await client.webhooks.find(wid)

        assert found.data.id == wid
        assert found.data.description == "Seeded"
        assert found.data.created_at is not None
        assert found.data.created_at.tzinfo is dt.UTC
        assert not hasattr(found.data, "webhook_secret")

    @pytest.mark.parametrize("webhook_id", BAD_IDS)
    async def test_bad_id_makes_no_request(
        self, client: Client, fake: FakeNylas, webhook_id: object
    ) -> None:
        """A malformed id fails before any request."""
        with pytest.raises(InvalidWebhookIdError):
            await client.webhooks.find(webhook_id)  # type: ignore[arg-type]

        assert fake.requests == []


class TestCreate:
    async def test_returns_the_secret(
        self, client: Client, fake: FakeNylas
    ) -> None:
        """create returns the new destination and its secret."""
        request = CreateWebhookRequest(
            trigger_types=["message.created"],
            webhook_url="https://example.com/new",
            compressed_delivery=True,
            notification_email_addresses=["ops@example.com"],
        )

        created = await client.webhooks.create(request)

        assert created.data.webhook_secret == fake.secret_of(created.data.id)
        assert created.data.compressed_delivery is True
        assert created.data.webhook_secret not in repr(created)

    @pytest.mark.parametrize(
        "fault",
        [
            pytest.param(Fault.drop(after_commit=True), id="drop-after"),
            pytest.param(Fault.drop(after_commit=False), id="drop-before"),
            pytest.param(
                Fault.server_error(500, after_commit=True), id="500-after"
            ),
            pytest.param(
                Fault.server_error(502, html=True), id="502-html-before"
            ),
            pytest.param(Fault.bad_body("truncated"), id="truncated"),
            pytest.param(Fault.slow(3), id="slower-than-timeout"),
        ],
    )
    async def test_lost_reply_is_never_repeated(
        self, client: Client, fake: FakeNylas, fault: Fault
    ) -> None:
        """After a reply that may hide a creation, create raises at once
        instead of creating a duplicate."""
        fake.inject(fault, operation="create")

        with pytest.raises(SecretStateUnknownError) as info:
            await client.webhooks.create(new_request())

        assert info.value.webhook_id is None
        assert len(fake.requests) == 1
        assert len(fake.webhook_ids) <= 1

    @pytest.mark.parametrize(
        "fault",
        [
            pytest.param(Fault.rate_limited(0.01), id="429-retry-after"),
            pytest.param(Fault.rate_limited(), id="429"),
        ],
    )
    async def test_rate_limited_is_retried(
        self, client: Client, fake: FakeNylas, fault: Fault
    ) -> None:
        """A 429 cannot have created anything, so create tries again."""
        fake.inject(fault, operation="create")

        created = await client.webhooks.create(new_request())

        assert fake.webhook_ids == [created.data.id]
        assert len(fake.requests) == 2

    async def test_reply_without_secret_is_unknown_state(self) -> None:
        """A 200 whose body lacks the secret is reported as unknown."""

        async def no_secret(request: web.Request) -> web.Response:
            return web.json_response({"data": {"id": "abc"}})

        routes = {("POST", "/v3/webhooks"): no_secret}
        async with (
            local_app(routes) as url,
            Client(api_key=KEY, api_uri=url, rate_limit=None) as client,
        ):
            with pytest.raises(SecretStateUnknownError) as info:
                await client.webhooks.create(new_request())

        assert isinstance(info.value.__cause__, DecodeError)

    async def test_not_a_request(self, client: Client) -> None:
        """create refuses anything but a CreateWebhookRequest."""
        with pytest.raises(UsageError):
            await client.webhooks.create({"webhook_url": "x"})  # type: ignore[arg-type]


class TestCreateChallenge:
    async def test_answered_challenge_creates(self) -> None:
        """A loopback URL that echoes the challenge gets its destination."""
        seen: list[str] = []

        async def echo(request: web.Request) -> web.Response:
            seen.append(request.query["challenge"])
            return web.Response(text=request.query["challenge"])

        fake = FakeNylas(KEY, verify_challenge=True, challenge_timeout=2)
        async with (
            local_app({("GET", "/hook"): echo}) as url,
            serving(fake) as client,
        ):
            created = await client.webhooks.create(new_request(url + "/hook"))

        assert fake.webhook_ids == [created.data.id]
        assert len(seen) == 1
        assert len(seen[0]) >= 16

    @pytest.mark.parametrize(
        ("reply", "detail"),
        [
            pytest.param(
                lambda r: web.Response(status=404), "got 404", id="404"
            ),
            pytest.param(
                lambda r: web.Response(text="nope"), "mismatch", id="wrong"
            ),
            pytest.param(
                lambda r: web.json_response(r.query["challenge"]),
                "mismatch",
                id="json-quoted",
            ),
            pytest.param(
                lambda r: web.Response(text=r.query["challenge"] + "\n"),
                "mismatch",
                id="trailing-newline",
            ),
        ],
    )
    async def test_failed_challenge_is_70005(
        self,
        reply: Callable[[web.Request], web.Response],
        detail: str,
    ) -> None:
        """A challenge answered wrongly refuses the create with 70005."""

        async def handler(request: web.Request) -> web.Response:
            return reply(request)

        fake = FakeNylas(KEY, verify_challenge=True, challenge_timeout=2)
        async with (
            local_app({("GET", "/hook"): handler}) as url,
            serving(fake) as client,
        ):
            with pytest.raises(NylasApiError) as info:
                await client.webhooks.create(new_request(url + "/hook"))

        assert info.value.status == 400
        assert info.value.type == "70005"
        assert info.value.message.startswith("unable.verify.webhook_url : ")
        assert detail in info.value.message
        assert fake.webhook_ids == []
        assert info.value.attempt_count == 1

    async def test_slow_challenge_times_out(self) -> None:
        """A challenge answered after the timeout fails the create."""

        async def slow(request: web.Request) -> web.Response:
            await asyncio.sleep(5)
            return await echo_challenge(request)

        fake = FakeNylas(KEY, verify_challenge=True, challenge_timeout=0.2)
        loop = asyncio.get_running_loop()
        async with (
            local_app({("GET", "/hook"): slow}) as url,
            serving(fake) as client,
        ):
            started = loop.time()
            with pytest.raises(NylasApiError) as info:
                await client.webhooks.create(new_request(url + "/hook"))
            elapsed = loop.time() - started

        assert info.value.type == "70005"
        assert "timeout" in info.value.message
        assert elapsed < 1.5

    @pytest.mark.parametrize(
        "url",
        [
            pytest.param("https://example.com/hook", id="public-host"),
            pytest.param("http://localhost:9/hook", id="localhost"),
            pytest.param("https://127.0.0.1:9/hook", id="https"),
        ],
    )
    async def test_only_loopback_is_contacted(self, url: str) -> None:
        """Any URL but http://127.0.0.1 fails the challenge unsent."""
        fake = FakeNylas(KEY, verify_challenge=True)

        async with serving(fake) as client:
            with pytest.raises(NylasApiError) as info:
                await client.webhooks.create(new_request(url))

        assert info.value.type == "70005"
        assert "127.0.0.1" in info.value.message

    async def test_closed_port_fails(self) -> None:
        """Nothing listening at the URL fails the challenge."""
        async with local_app({}) as url:
            closed = url
        fake = FakeNylas(KEY, verify_challenge=True, challenge_timeout=2)

        async with serving(fake) as client:
            with pytest.raises(NylasApiError) as info:
                await client.webhooks.create(new_request(closed + "/hook"))

        assert info.value.type == "70005"

    async def test_off_by_default(self, client: Client) -> None:
        """Without verify_challenge the fake never contacts the URL."""
        created = await client.webhooks.create(
            new_request("https://example.com/never-contacted")
        )

        assert created.data.status == "active"


class TestUpdate:
    async def test_changes_only_given_fields(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """An update changes the fields it names and keeps the rest."""
        request = UpdateWebhookRequest(
            status=WebhookStatus.PAUSE, compressed_delivery=True
        )

        updated = await client.webhooks.update(wid, request)

        assert updated.data.status == "pause"
        assert updated.data.compressed_delivery is True
        assert updated.data.description == "Seeded"
        assert updated.data.trigger_types == ("message.created",)
        assert not hasattr(updated.data, "webhook_secret")

    async def test_every_field(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """Every field of the request reaches the destination."""
        request = UpdateWebhookRequest(
            description="Renamed",
            trigger_types=["grant.expired", "event.created"],
            webhook_url="https://example.com/moved",
            notification_email_addresses=["a@example.com"],
            compressed_delivery=False,
            status="active",
        )

        await client.webhooks.update(wid, request)
        found = await client.webhooks.find(wid)

        assert found.data.description == "Renamed"
        assert found.data.trigger_types == ("grant.expired", "event.created")
        assert found.data.webhook_url == "https://example.com/moved"
        assert found.data.notification_email_addresses == ("a@example.com",)

    async def test_unknown_id(self, client: Client) -> None:
        """Updating an unknown id is NotFoundError."""
        with pytest.raises(NotFoundError):
            await client.webhooks.update(
                "A" * 26, UpdateWebhookRequest(description="x")
            )

    async def test_retried_after_a_lost_reply(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """An update is safe to repeat, so a lost reply is retried."""
        fake.inject(Fault.drop(after_commit=True), operation="update")

        updated = await client.webhooks.update(
            wid, UpdateWebhookRequest(status="pause")
        )

        assert updated.data.status == "pause"
        assert len(fake.requests) == 2

    @pytest.mark.parametrize("webhook_id", BAD_IDS)
    async def test_bad_id_makes_no_request(
        self, client: Client, fake: FakeNylas, webhook_id: object
    ) -> None:
        """A malformed id fails before any request."""
        request = UpdateWebhookRequest(description="x")

        with pytest.raises(InvalidWebhookIdError):
            await client.webhooks.update(webhook_id, request)  # type: ignore[arg-type]

        assert fake.requests == []

    async def test_not_a_request(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """update refuses a plain dict."""
        with pytest.raises(UsageError):
            await client.webhooks.update(wid, {"status": "pause"})  # type: ignore[arg-type]

        assert fake.requests == []


class TestUpdateWebhookRequest:
    def test_only_given_fields_are_sent(self) -> None:
        """Fields left out are absent from the body; None is null."""
        request = UpdateWebhookRequest(
            description=None, trigger_types=("message.created",)
        )

        assert update_body(request) == {
            "description": None,
            "trigger_types": ["message.created"],
        }
        assert request.status is UNSET
        assert "UNSET" in repr(request)

    def test_status_enum_becomes_a_plain_string(self) -> None:
        """A WebhookStatus member is sent as its plain value."""
        request = UpdateWebhookRequest(status=WebhookStatus.ACTIVE)

        assert type(request.status) is str
        assert update_body(request) == {"status": "active"}

    @pytest.mark.parametrize(
        "kwargs",
        [
            pytest.param({}, id="nothing"),
            pytest.param({"status": "failed"}, id="status-failed"),
            pytest.param({"status": "failing"}, id="status-failing"),
            pytest.param({"status": "paused"}, id="status-typo"),
            pytest.param({"status": None}, id="status-none"),
            pytest.param({"trigger_types": []}, id="no-triggers"),
            pytest.param({"trigger_types": None}, id="triggers-none"),
            pytest.param({"trigger_types": "a.b"}, id="triggers-string"),
            pytest.param({"webhook_url": "ftp://x"}, id="bad-url"),
            pytest.param({"webhook_url": None}, id="url-none"),
            pytest.param({"description": 3}, id="description-int"),
            pytest.param({"compressed_delivery": "yes"}, id="flag-string"),
            pytest.param(
                {"notification_email_addresses": "a@b"}, id="emails-string"
            ),
        ],
    )
    def test_rejects_nonsense(self, kwargs: dict[str, object]) -> None:
        """Invalid or empty updates raise UsageError on creation."""
        with pytest.raises(UsageError):
            UpdateWebhookRequest(**kwargs)  # type: ignore[arg-type]


class TestDestroy:
    async def test_deletes(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """destroy returns Nylas's success and the id is gone."""
        deleted = await client.webhooks.destroy(wid)

        assert deleted.data == WebhookDeleteResult(status="success")
        assert fake.webhook_ids == []

    async def test_unknown_id(self, client: Client, fake: FakeNylas) -> None:
        """A destination missing from the start is NotFoundError."""
        with pytest.raises(NotFoundError):
            await client.webhooks.destroy("A" * 26)

        assert len(fake.requests) == 1

    async def test_bad_policy(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """A retry that is no RetryPolicy is UsageError, not a delete."""
        with pytest.raises(UsageError):
            await client.webhooks.destroy(wid, retry="often")  # type: ignore[arg-type]

        assert fake.webhook_ids == [wid]

    async def test_lost_reply_then_gone(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """A delete whose reply was lost, then found gone, succeeds with
        already_gone."""
        fake.inject(
            Fault.server_error(500, after_commit=True), operation="delete"
        )

        deleted = await client.webhooks.destroy(wid)

        assert deleted.data.already_gone is True
        assert deleted.data.status is None
        assert fake.webhook_ids == []
        assert [a.outcome for a in deleted.attempts] == ["500", "400"]

    async def test_dropped_reply_then_gone(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """A delete whose connection dropped after the deletion succeeds
        with already_gone."""
        fake.inject(Fault.drop(after_commit=True), operation="delete")

        deleted = await client.webhooks.destroy(wid)

        assert deleted.data.already_gone is True

    async def test_lost_reply_before_commit(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """A 5xx before the delete is retried into a plain success."""
        fake.inject(Fault.server_error(503), operation="delete")

        deleted = await client.webhooks.destroy(wid)

        assert deleted.data == WebhookDeleteResult(status="success")

    async def test_retries_even_without_rotate_again(
        self, client: Client, fake: FakeNylas, wid: str
    ) -> None:
        """rotate_again=False does not stop a delete from retrying."""
        fake.inject(Fault.server_error(500), operation="delete")
        policy = RetryPolicy(rotate_again=False, testing=True)

        deleted = await client.webhooks.destroy(wid, retry=policy)

        assert deleted.data.status == "success"

    @pytest.mark.parametrize("webhook_id", BAD_IDS)
    async def test_bad_id_makes_no_request(
        self, client: Client, fake: FakeNylas, webhook_id: object
    ) -> None:
        """A malformed id fails before any request."""
        with pytest.raises(InvalidWebhookIdError):
            await client.webhooks.destroy(webhook_id)  # type: ignore[arg-type]

        assert fake.requests == []


class TestMockPayload:
    @pytest.mark.parametrize(
        "nested",
        [pytest.param(True, id="data.data"), pytest.param(False, id="data")],
    )
    async def test_either_nesting(self, nested: bool) -> None:
        """The notification comes back whichever way it is nested."""
        fake = FakeNylas(KEY, mock_payload_nested=nested)

        async with serving(fake) as client:
            mock = await client.webhooks.mock_payload("message.created")

        assert mock.data["type"] == "message.created"
        assert mock.data["data"]["application_id"] == fake.application_id
        assert "body" in mock.data["data"]["object"]

    async def test_truncated_variant(self, client: Client) -> None:
        """A .truncated example lacks the message body."""
        mock = await client.webhooks.mock_payload("message.created.truncated")

        assert "body" not in mock.data["data"]["object"]

    async def test_unknown_trigger_type_is_400(self, client: Client) -> None:
        """A trigger type Nylas does not mock is its 400."""
        with pytest.raises(NylasApiError) as info:
            await client.webhooks.mock_payload("no.such.trigger")

        assert info.value.status == 400
        assert "trigger_type" in info.value.message

    @pytest.mark.parametrize(
        "trigger_type",
        [pytest.param("", id="empty"), pytest.param(None, id="none")],
    )
    async def test_empty_trigger_type_makes_no_request(
        self, client: Client, fake: FakeNylas, trigger_type: object
    ) -> None:
        """An empty trigger type fails before any request."""
        with pytest.raises(UsageError):
            await client.webhooks.mock_payload(trigger_type)  # type: ignore[arg-type]

        assert fake.requests == []

    async def test_data_not_an_object(self) -> None:
        """A reply whose data is no object is a DecodeError."""

        async def text(request: web.Request) -> web.Response:
            return web.json_response({"data": "nothing"})

        routes = {("POST", "/v3/webhooks/mock-payload"): text}
        async with (
            local_app(routes) as url,
            Client(api_key=KEY, api_uri=url, rate_limit=None) as client,
        ):
            with pytest.raises(DecodeError):
                await client.webhooks.mock_payload("message.created")


class TestSendTestEvent:
    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            pytest.param(200, "success", id="accepted"),
            pytest.param(500, "failed", id="refused"),
        ],
    )
    async def test_returns_what_nylas_says(
        self, client: Client, status: int, outcome: str
    ) -> None:
        """send_test_event returns the string Nylas answers after its
        delivery to the URL."""
        received: list[bytes] = []

        async def hook(request: web.Request) -> web.Response:
            received.append(await request.read())
            return web.Response(status=status)

        async with local_app({("POST", "/hook"): hook}) as url:
            sent = await client.webhooks.send_test_event(
                "message.created", url + "/hook"
            )

        assert sent.data == outcome
        assert len(received) == 1

    async def test_unknown_trigger_type_is_400(self, client: Client) -> None:
        """A trigger type the endpoint does not know is its 400."""
        with pytest.raises(NylasApiError) as info:
            await client.webhooks.send_test_event(
                "notetaker.media", "https://example.com/hook"
            )

        assert info.value.status == 400

    @pytest.mark.parametrize(
        ("trigger_type", "url"),
        [
            pytest.param("", "https://example.com", id="no-trigger"),
            pytest.param("message.created", "example.com", id="no-scheme"),
            pytest.param("message.created", None, id="no-url"),
        ],
    )
    async def test_bad_arguments_make_no_request(
        self,
        client: Client,
        fake: FakeNylas,
        trigger_type: str,
        url: object,
    ) -> None:
        """Bad arguments fail before any request."""
        with pytest.raises(UsageError):
            await client.webhooks.send_test_event(trigger_type, url)  # type: ignore[arg-type]

        assert fake.requests == []


class TestIpAddresses:
    async def test_returns_addresses(self, client: Client) -> None:
        """ip_addresses returns the list and an aware datetime."""
        found = await client.webhooks.ip_addresses()

        assert isinstance(found.data, WebhookIpAddresses)
        assert found.data.ip_addresses
        assert found.data.updated_at is not None
        assert found.data.updated_at.tzinfo is dt.UTC

    async def test_missing_endpoint_is_not_found(self) -> None:
        """A 404 from an API without the endpoint is a NotFoundError."""
        fake = FakeNylas(KEY, serve_ip_addresses=False)

        async with serving(fake) as client:
            with pytest.raises(NotFoundError) as info:
                await client.webhooks.ip_addresses()

        assert info.value.status == 404
        assert info.value.attempt_count == 1
