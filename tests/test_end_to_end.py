"""
Create, rotate, deliver and verify over loopback: our Client against the
fake Nylas, whose deliveries reach a WebhookReceiver served on
127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from nylas_async import (
    Client,
    CreateWebhookRequest,
    Notification,
    NylasApiError,
    RetryPolicy,
    UpdateWebhookRequest,
    WebhookReceiver,
)
from nylas_async.testing import FakeNylas, FakeServer

from .conftest import until

KEY = "nyk_end_to_end_test"
PATH = "/hooks/nylas"


class Inbox:
    """A notification callback that keeps what it gets."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []

    async def __call__(self, notification: Notification) -> None:
        self.notifications.append(notification)


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve *app* on 127.0.0.1 as Nylas deliveries need it (gzip
    bodies left as sent); yield its base URL."""
    runner = web.AppRunner(app, auto_decompress=False, shutdown_timeout=2)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def receiving(receiver: WebhookReceiver) -> AsyncIterator[str]:
    """Serve *receiver* at PATH on 127.0.0.1; yield its URL."""
    app = web.Application()
    receiver.add_routes(app, PATH)
    async with serve(app) as base:
        yield base + PATH


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def fake() -> FakeNylas:
    return FakeNylas(KEY, verify_challenge=True)


@pytest.fixture
async def client(fake: FakeNylas) -> AsyncIterator[Client]:
    async with (
        FakeServer(fake) as server,
        Client(
            api_key=KEY,
            api_uri=server.url,
            retry=RetryPolicy(testing=True),
            rate_limit=None,
        ) as c,
    ):
        yield c


@pytest.fixture
def receiver(inbox: Inbox) -> WebhookReceiver:
    return WebhookReceiver(
        secrets=None, on_notification=inbox, shutdown_grace=0
    )


class TestRotateDeliverVerify:
    async def test_rotation_cut_over(
        self,
        client: Client,
        fake: FakeNylas,
        receiver: WebhookReceiver,
        inbox: Inbox,
    ) -> None:
        """After a rotation the receiver accepts the new secret once
        swapped in, and refuses deliveries signed with the old one."""
        async with receiving(receiver) as url:
            created = await client.webhooks.create(
                CreateWebhookRequest(
                    trigger_types=["message.created"], webhook_url=url
                )
            )
            wid, old = created.data.id, created.data.webhook_secret
            receiver.secrets = old
            before = await fake.deliver(wid)

            rotated = await client.webhooks.rotate_secret(wid)
            new = rotated.data.webhook_secret
            not_yet_swapped = await fake.deliver(wid)
            receiver.secrets = new
            accepted = await fake.deliver(wid, "message.updated")
            signed_with_old = await fake.deliver(wid, secret=old)
            await until(lambda: len(inbox.notifications) == 2)

        assert new != old
        assert (before, not_yet_swapped) == (200, 401)
        assert (accepted, signed_with_old) == (200, 401)
        assert [n.type for n in inbox.notifications] == [
            "message.created",
            "message.updated",
        ]
        assert inbox.notifications[1].data.application_id == (
            fake.application_id
        )

    async def test_compressed_delivery(
        self,
        client: Client,
        fake: FakeNylas,
        receiver: WebhookReceiver,
        inbox: Inbox,
    ) -> None:
        """A destination switched to compressed delivery is still
        verified and decoded."""
        async with receiving(receiver) as url:
            created = await client.webhooks.create(
                CreateWebhookRequest(
                    trigger_types=["message.created"], webhook_url=url
                )
            )
            wid = created.data.id
            receiver.secrets = created.data.webhook_secret
            await client.webhooks.update(
                wid, UpdateWebhookRequest(compressed_delivery=True)
            )
            status = await fake.deliver(wid)
            await until(lambda: len(inbox.notifications) == 1)

        assert status == 200
        assert inbox.notifications[0].data.object["object"] == "message"

    async def test_duplicate_delivery(
        self,
        client: Client,
        fake: FakeNylas,
        receiver: WebhookReceiver,
        inbox: Inbox,
    ) -> None:
        """A notification delivered twice reaches the callback once."""
        payload = _notification("dup-1")

        async with receiving(receiver) as url:
            wid = fake.add_webhook(webhook_url=url)
            receiver.secrets = fake.secret_of(wid)
            statuses = [
                await fake.deliver(wid, payload=payload) for _ in range(3)
            ]
            await until(lambda: len(inbox.notifications) == 1)
            other = await fake.deliver(wid)
            await until(lambda: len(inbox.notifications) == 2)

        assert (statuses, other) == ([200, 200, 200], 200)
        assert inbox.notifications[0].id == "dup-1"

    async def test_challenge_failure_refuses_create(
        self, client: Client, fake: FakeNylas
    ) -> None:
        """A URL that does not echo the challenge makes create fail."""

        async def wrong(request: web.Request) -> web.Response:
            return web.json_response({"challenge": "nope"})

        app = web.Application()
        app.router.add_get(PATH, wrong)

        async with serve(app) as base:
            with pytest.raises(NylasApiError) as info:
                await client.webhooks.create(
                    CreateWebhookRequest(
                        trigger_types=["message.created"],
                        webhook_url=base + PATH,
                    )
                )

        assert (info.value.status, info.value.type) == (400, "70005")
        assert fake.webhook_ids == []


class TestSendTestEvent:
    async def test_signed_with_mock_secret(
        self, client: Client, receiver: WebhookReceiver, inbox: Inbox
    ) -> None:
        """send-test-event delivers for real, signed with the literal
        secret mock-webhook-secret."""
        receiver.secrets = "mock-webhook-secret"

        async with receiving(receiver) as url:
            reply = await client.webhooks.send_test_event(
                "message.created", url
            )
            await until(lambda: len(inbox.notifications) == 1)

        assert reply.data == "success"
        assert inbox.notifications[0].type == "message.created"

    async def test_refused_delivery_reported(
        self, client: Client, receiver: WebhookReceiver, inbox: Inbox
    ) -> None:
        """A receiver that refuses the test event makes it 'failed'."""
        receiver.secrets = "the-real-destination-secret"

        async with receiving(receiver) as url:
            reply = await client.webhooks.send_test_event(
                "message.created", url
            )

        assert reply.data == "failed"
        assert inbox.notifications == []


class Capture:
    """A bare aiohttp app that records what the fake sends."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        return web.Response(status=self.status)


@asynccontextmanager
async def capturing(capture: Capture) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post(PATH, capture.handle)
    async with serve(app) as base:
        yield base + PATH


class TestFakeDeliver:
    @pytest.mark.parametrize(
        "compressed",
        [pytest.param(False, id="plain"), pytest.param(True, id="gzip")],
    )
    async def test_wire_format(self, compressed: bool) -> None:
        """The fake signs the bytes it sends with the current secret,
        compressing them only for compressed destinations."""
        fake, capture = FakeNylas(KEY), Capture()

        async with capturing(capture) as url:
            wid = fake.add_webhook(
                webhook_url=url, compressed_delivery=compressed
            )
            status = await fake.deliver(wid)

        [(headers, body)] = capture.requests
        secret = fake.secret_of(wid).encode()
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        assert status == 200
        assert headers["X-Nylas-Signature"] == expected
        assert headers["Content-Type"] == "application/json"
        assert ("Content-Encoding" in headers) is compressed
        raw = gzip.decompress(body) if compressed else body
        assert json.loads(raw)["type"] == "message.created"

    async def test_status_returned(self) -> None:
        """deliver returns whatever status the receiver answered."""
        fake, capture = FakeNylas(KEY), Capture()
        capture.status = 418

        async with capturing(capture) as url:
            wid = fake.add_webhook(webhook_url=url)

            assert await fake.deliver(wid) == 418

    @pytest.mark.parametrize(
        "url",
        [
            pytest.param("https://example.com/hook", id="remote"),
            pytest.param("http://localhost:1/hook", id="hostname"),
            pytest.param("https://127.0.0.1:1/hook", id="https"),
            pytest.param("http://10.0.0.1/hook", id="private"),
        ],
    )
    async def test_only_loopback(self, url: str) -> None:
        """The fake refuses to deliver anywhere but 127.0.0.1."""
        fake = FakeNylas(KEY)
        wid = fake.add_webhook(webhook_url=url)

        with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
            await fake.deliver(wid)

    async def test_unreachable(self) -> None:
        """A receiver that is not listening is a ConnectionError."""
        fake = FakeNylas(KEY)
        async with serve(web.Application()) as base:
            url = base + PATH
        wid = fake.add_webhook(webhook_url=url)

        with pytest.raises(ConnectionError):
            await fake.deliver(wid)

    async def test_unknown_destination(self) -> None:
        """Delivering for an unknown id is a KeyError."""
        with pytest.raises(KeyError):
            await FakeNylas(KEY).deliver("nope")


def _notification(notification_id: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": "message.created",
        "source": "/nylas/fake",
        "id": notification_id,
        "time": 1723821985,
        "webhook_delivery_attempt": 1,
        "data": {"application_id": "app", "object": {"id": "m1"}},
    }
