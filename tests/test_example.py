"""examples/aiohttp_service.py, run against the fake over loopback."""

from __future__ import annotations

import importlib.util
import socket
import sys
import types
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from nylas_async import Notification
from nylas_async.testing import FakeNylas, FakeServer

from .conftest import until

KEY = "nyk_example_test"
TOKEN = "admin-token-for-tests"
EXAMPLE = Path(__file__).parent.parent / "examples" / "aiohttp_service.py"


@pytest.fixture(scope="module")
def service() -> Iterator[types.ModuleType]:
    """The example, imported from its file."""
    spec = importlib.util.spec_from_file_location("aiohttp_service", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


class Inbox:
    def __init__(self) -> None:
        self.notifications: list[Notification] = []

    async def __call__(self, notification: Notification) -> None:
        self.notifications.append(notification)


class Running:
    """The example served on 127.0.0.1, with the fake behind it."""

    def __init__(
        self, fake: FakeNylas, app: web.Application, base: str, wid: str
    ) -> None:
        self.fake = fake
        self.app = app
        self.base = base
        self.wid = wid

    async def rotate(self, token: str = TOKEN) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                self.base + "/admin/rotate-secret", headers=headers
            ) as response,
        ):
            return response.status, await response.json()


@asynccontextmanager
async def running(
    service: types.ModuleType, inbox: Inbox, cut_over: float
) -> AsyncIterator[Running]:
    fake = FakeNylas(KEY)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        wid = fake.add_webhook(webhook_url=base + service.WEBHOOK_PATH)

        async with FakeServer(fake) as server:
            settings = service.Settings(
                api_key=KEY,
                api_uri=server.url,
                webhook_id=wid,
                webhook_secret=fake.secret_of(wid),
                admin_token=TOKEN,
                cut_over=cut_over,
            )
            app = service.make_app(settings, on_notification=inbox)
            runner = web.AppRunner(app, auto_decompress=False)
            await runner.setup()
            try:
                await web.SockSite(runner, sock).start()
                yield Running(fake, app, base, wid)
            finally:
                await runner.cleanup()


class TestAiohttpService:
    async def test_rotate_then_deliver(
        self, service: types.ModuleType
    ) -> None:
        """The rotate endpoint swaps in the new secret: deliveries signed
        with it are accepted, the old one only during the cut-over."""
        inbox = Inbox()

        async with running(service, inbox, cut_over=0.2) as svc:
            old = svc.fake.secret_of(svc.wid)
            before = await svc.fake.deliver(svc.wid)
            status, reply = await svc.rotate()
            new = svc.fake.secret_of(svc.wid)
            after = await svc.fake.deliver(svc.wid)
            in_cut_over = await svc.fake.deliver(svc.wid, secret=old)
            receiver = svc.app[service.RECEIVER]
            await until(lambda: receiver.secrets == (new,))
            after_cut_over = await svc.fake.deliver(svc.wid, secret=old)
            await until(lambda: len(inbox.notifications) == 3)
            client = svc.app[service.CLIENT]

        assert (before, status, after) == (200, 200, 200)
        assert (in_cut_over, after_cut_over) == (200, 401)
        assert reply == {"webhook_id": svc.wid, "cut_over": 0.2}
        assert new != old
        assert old not in str(reply)
        assert new not in str(reply)
        assert client.closed

    async def test_rotate_needs_the_token(
        self, service: types.ModuleType
    ) -> None:
        """Without the admin token nothing is rotated."""
        async with running(service, Inbox(), cut_over=0.2) as svc:
            status, _ = await svc.rotate("wrong-token")

            assert status == 401
            assert svc.fake.rotations_of(svc.wid) == 0

    async def test_two_rotations(self, service: types.ModuleType) -> None:
        """A second rotation within the cut-over ends with only the
        latest secret."""
        async with running(service, Inbox(), cut_over=0.1) as svc:
            await svc.rotate()
            await svc.rotate()
            receiver = svc.app[service.RECEIVER]
            latest = svc.fake.secret_of(svc.wid)
            await until(lambda: receiver.secrets == (latest,))

            assert await svc.fake.deliver(svc.wid) == 200


class TestSettings:
    def test_from_env(self, service: types.ModuleType) -> None:
        """Settings are read from the environment, secrets unshown."""
        settings = service.Settings.from_env(
            {
                "NYLAS_API_KEY": "key-value",
                "NYLAS_WEBHOOK_ID": "wid",
                "NYLAS_WEBHOOK_SECRET": "secret-value",
                "SERVICE_ADMIN_TOKEN": "token-value",
            }
        )

        assert settings.webhook_id == "wid"
        assert settings.api_uri is None
        for value in ("key-value", "secret-value", "token-value"):
            assert value not in repr(settings)

    def test_missing(self, service: types.ModuleType) -> None:
        """Missing variables are all named."""
        with pytest.raises(KeyError, match="NYLAS_WEBHOOK_ID") as info:
            service.Settings.from_env({"NYLAS_API_KEY": "k"})

        assert "SERVICE_ADMIN_TOKEN" in str(info.value)
