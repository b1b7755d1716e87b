"""
The official ``nylas`` Python SDK against our fake.

The SDK is synchronous (requests), so it runs in a worker thread while
the fake serves from the test's event loop, or from a subprocess
started as ``nylas-async fake-server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import requests
from aiohttp import web
from nylas import Client as NylasClient
from nylas.models.errors import NylasApiError
from nylas.models.webhooks import WebhookTriggers

from nylas_async.testing import FakeNylas, FakeServer

KEY = "nyk_official_sdk_test"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests must talk to loopback directly, whatever the shell says."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@contextlib.asynccontextmanager
async def challenge_receiver() -> AsyncIterator[str]:
    """A loopback URL that answers Nylas's challenge as documented."""

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=request.query["challenge"])

    app = web.Application()
    app.router.add_get("/hook", echo)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


@pytest.fixture
def fake() -> FakeNylas:
    return FakeNylas(KEY, verify_challenge=True, challenge_timeout=2)


@pytest.fixture
async def server(fake: FakeNylas) -> AsyncIterator[FakeServer]:
    async with FakeServer(fake) as s:
        yield s


def sdk(url: str, key: str = KEY) -> NylasClient:
    return NylasClient(api_key=key, api_uri=url, timeout=5)


class TestOfficialSdk:
    async def test_crud_round_trip(
        self, server: FakeServer, fake: FakeNylas
    ) -> None:
        """The SDK's create, find, list, update and destroy all succeed,
        create passing a real challenge."""
        nylas = sdk(server.url)

        async with challenge_receiver() as hook:
            created = await asyncio.to_thread(
                nylas.webhooks.create,
                {
                    "trigger_types": [WebhookTriggers.MESSAGE_CREATED],
                    "webhook_url": hook,
                    "description": "From the official SDK",
                    "notification_email_addresses": ["ops@example.com"],
                },
            )
        webhook_id = created.data.id
        secret = fake.secret_of(webhook_id)
        found = await asyncio.to_thread(nylas.webhooks.find, webhook_id)
        listed = await asyncio.to_thread(nylas.webhooks.list)
        updated = await asyncio.to_thread(
            nylas.webhooks.update,
            webhook_id,
            {"description": "Renamed by the SDK"},
        )
        deleted = await asyncio.to_thread(nylas.webhooks.destroy, webhook_id)

        assert created.data.webhook_secret == secret
        assert created.data.status == "active"
        assert created.request_id
        assert found.data.trigger_types == [WebhookTriggers.MESSAGE_CREATED]
        assert found.data.notification_email_addresses == ["ops@example.com"]
        assert [w.id for w in listed.data] == [webhook_id]
        assert updated.data.description == "Renamed by the SDK"
        assert deleted.data is not None
        assert deleted.data.status == "success"
        assert fake.webhook_ids == []

    async def test_failed_challenge_is_the_sdk_error(
        self, server: FakeServer, fake: FakeNylas
    ) -> None:
        """A URL that fails the challenge is the SDK's 400 with type
        70005, as from Nylas."""
        nylas = sdk(server.url)

        with pytest.raises(NylasApiError) as info:
            await asyncio.to_thread(
                nylas.webhooks.create,
                {
                    "trigger_types": [WebhookTriggers.MESSAGE_CREATED],
                    "webhook_url": "http://127.0.0.1:9/closed",
                },
            )

        assert info.value.status_code == 400
        assert info.value.type == "70005"
        assert fake.webhook_ids == []

    async def test_wrong_key_is_401(
        self, server: FakeServer, fake: FakeNylas
    ) -> None:
        """A wrong API key gets the SDK's authentication error."""
        fake.add_webhook()
        nylas = sdk(server.url, key="nyk_wrong")

        with pytest.raises(NylasApiError) as info:
            await asyncio.to_thread(nylas.webhooks.list)

        assert info.value.status_code == 401
        assert info.value.type == "api.authentication_error"
        assert info.value.request_id

    async def test_unknown_id_is_70000(self, server: FakeServer) -> None:
        """find of an unknown id is the SDK's 400 with type 70000."""
        nylas = sdk(server.url)

        with pytest.raises(NylasApiError) as info:
            await asyncio.to_thread(nylas.webhooks.find, "A" * 26)

        assert info.value.status_code == 400
        assert info.value.type == "70000"

    async def test_rotate_secret_gets_the_gateway_404(
        self, server: FakeServer, fake: FakeNylas
    ) -> None:
        """The SDK's rotate (PUT .../{id}/rotate-secret) gets the plain
        404 page the real API gives, which the SDK cannot parse, and
        nothing rotates."""
        webhook_id = fake.add_webhook()
        before = fake.secret_of(webhook_id)
        nylas = sdk(server.url)

        with pytest.raises(requests.exceptions.JSONDecodeError):
            await asyncio.to_thread(nylas.webhooks.rotate_secret, webhook_id)

        [request] = fake.requests
        assert (request.method, request.path) == (
            "PUT",
            f"/v3/webhooks/{webhook_id}/rotate-secret",
        )
        assert request.operation is None
        assert request.status == 404
        assert fake.secret_of(webhook_id) == before
        assert fake.rotations_of(webhook_id) == 0

    async def test_ip_addresses(self, server: FakeServer) -> None:
        """The SDK's ip_addresses reads the fake's list."""
        nylas = sdk(server.url)

        found = await asyncio.to_thread(nylas.webhooks.ip_addresses)

        assert found.data.ip_addresses
        assert isinstance(found.data.updated_at, int)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def command() -> list[str]:
    """How to run ``nylas-async``: the installed script, else -m."""
    script = Path(sys.executable).with_name("nylas-async")
    if script.exists():
        return [str(script)]

    return [sys.executable, "-m", "nylas_async"]


@contextlib.contextmanager
def killed_on_failure(process: asyncio.subprocess.Process) -> Iterator[None]:
    try:
        yield
    except BaseException:
        if process.returncode is None:
            process.kill()
        raise


class TestFakeServerCommand:
    async def test_sdk_talks_to_the_command(self) -> None:
        """``nylas-async fake-server --port P --api-key K`` serves the
        SDK, and SIGTERM stops it cleanly."""
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            *command(),
            "fake-server",
            "--port",
            str(port),
            "--api-key",
            KEY,
            "--seed-webhooks",
            "2",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        assert process.stdout is not None

        with killed_on_failure(process):
            first = await asyncio.wait_for(process.stdout.readline(), 15)
            url = first.decode().split()[-1]
            nylas = sdk(url)
            listed = await asyncio.to_thread(nylas.webhooks.list)
            created = await asyncio.to_thread(
                nylas.webhooks.create,
                {
                    "trigger_types": [WebhookTriggers.EVENT_CREATED],
                    "webhook_url": "https://example.com/from-sdk",
                },
            )
            relisted = await asyncio.to_thread(nylas.webhooks.list)
            process.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(process.communicate(), 15)

        assert url == f"http://127.0.0.1:{port}"
        assert len(listed.data) == 2
        assert created.data.webhook_secret
        assert len(relisted.data) == 3
        assert process.returncode == 0
        assert err == b""
        assert KEY.encode() not in first + out
        assert created.data.webhook_secret.encode() not in first + out
