"""Tests for nylas_async.testing, the fake Nylas webhooks API, over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from nylas_async.testing import (
    FakeNylas,
    FakeServer,
    Fault,
    RandomFaults,
    RecordedRequest,
)

API_KEY = "nyk_test"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SPEC = Path(__file__).parent / "data" / "nylas-webhooks-openapi.yml"
NYLAS_ID = re.compile(r"[A-Za-z0-9]{26}")
SECRET = re.compile(r"[A-Za-z0-9_-]{20}")
ROTATED_KEYS = {
    "id",
    "trigger_types",
    "webhook_url",
    "webhook_secret",
    "status",
    "notification_email_addresses",
}


def rotate_path(webhook_id: str) -> str:
    return f"/v3/webhooks/rotate-secret/{webhook_id}"


@contextlib.asynccontextmanager
async def serving(fake: FakeNylas) -> AsyncIterator[aiohttp.ClientSession]:
    """A session with the right key against *fake* served on loopback."""
    async with (
        FakeServer(fake) as server,
        aiohttp.ClientSession(server.url, headers=AUTH) as session,
    ):
        yield session


@pytest.fixture
def fake() -> FakeNylas:
    return FakeNylas(API_KEY)


@pytest.fixture
def webhook_id(fake: FakeNylas) -> str:
    return fake.add_webhook(description="Seeded")


@pytest.fixture
async def session(
    fake: FakeNylas,
) -> AsyncIterator[aiohttp.ClientSession]:
    async with serving(fake) as session:
        yield session


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC))


def check_schema(
    openapi: OpenAPI, method: str, path: str, status: int, body: bytes
) -> None:
    """Fail unless *body* is a valid *status* reply to *method* *path*."""
    request = MockRequest("https://api.us.nylas.com", method, path)
    openapi.validate_response(request, MockResponse(body, status_code=status))


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait up to a second for *condition*, which the fake meets soon."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail("the condition never held")


async def rotate(
    session: aiohttp.ClientSession, webhook_id: str
) -> tuple[int, bytes]:
    async with session.post(rotate_path(webhook_id), json={}) as response:
        return response.status, await response.read()


class TestFakeNylas:
    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({}, id="missing"),
            pytest.param({"Authorization": "Bearer nyk_other"}, id="wrong"),
            pytest.param({"Authorization": f"Basic {API_KEY}"}, id="basic"),
        ],
    )
    async def test_bad_key_is_401(
        self, fake: FakeNylas, webhook_id: str, headers: dict[str, str]
    ) -> None:
        """Without the right Bearer key every route answers a Nylas 401."""
        async with (
            FakeServer(fake) as server,
            aiohttp.ClientSession(server.url) as session,
            session.post(rotate_path(webhook_id), headers=headers) as response,
        ):
            body = await response.json()

            assert response.status == 401
            assert body["error"] == {
                "type": "api.authentication_error",
                "message": "Unauthorized",
            }
            assert body["request_id"] == response.headers["x-request-id"]
        assert fake.rotations_of(webhook_id) == 0

    async def test_rotate_commits_a_new_secret(
        self,
        fake: FakeNylas,
        webhook_id: str,
        session: aiohttp.ClientSession,
        openapi: OpenAPI,
    ) -> None:
        """Rotate replaces the secret and returns it in the rotate shape."""
        before = fake.secret_of(webhook_id)

        status, raw = await rotate(session, webhook_id)

        data = json.loads(raw)["data"]
        assert status == 200
        assert set(data) == ROTATED_KEYS | {"description"}
        assert data["webhook_secret"] == fake.secret_of(webhook_id) != before
        assert SECRET.fullmatch(data["webhook_secret"])
        assert fake.rotations_of(webhook_id) == 1
        check_schema(openapi, "post", rotate_path(webhook_id), status, raw)

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(b"{}", id="empty-object"),
            pytest.param(b"", id="nothing"),
            pytest.param(b"not json", id="garbage"),
        ],
    )
    async def test_rotate_ignores_the_body(
        self,
        fake: FakeNylas,
        webhook_id: str,
        session: aiohttp.ClientSession,
        body: bytes,
    ) -> None:
        """Rotate succeeds whatever body the SDK sends."""
        async with session.post(rotate_path(webhook_id), data=body) as resp:
            assert resp.status == 200
        assert fake.rotations_of(webhook_id) == 1

    async def test_create_returns_an_active_destination_with_secret(
        self,
        fake: FakeNylas,
        session: aiohttp.ClientSession,
        openapi: OpenAPI,
    ) -> None:
        """Create stores the destination and returns it with its secret."""
        request = {
            "trigger_types": ["message.created", "grant.expired"],
            "webhook_url": "https://example.com/new",
            "description": "New",
            "notification_email_addresses": ["ops@example.com"],
            "compressed_delivery": True,
        }

        async with session.post("/v3/webhooks", json=request) as response:
            raw = await response.read()

        data = json.loads(raw)["data"]
        assert response.status == 200
        assert fake.webhook_ids == [data["id"]]
        assert NYLAS_ID.fullmatch(data["id"])
        assert data["status"] == "active"
        assert data["webhook_secret"] == fake.secret_of(data["id"])
        assert data["compressed_delivery"] is True
        assert {k: data[k] for k in request} == request
        assert all(
            isinstance(data[k], int)
            for k in ("created_at", "updated_at", "status_updated_at")
        )
        check_schema(openapi, "post", "/v3/webhooks", 200, raw)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            pytest.param(
                {"webhook_url": "https://example.com"},
                "required",
                id="no-trigger-types",
            ),
            pytest.param(
                {"trigger_types": ["message.created"]},
                "required",
                id="no-webhook-url",
            ),
            pytest.param(
                {"trigger_types": [], "webhook_url": "https://example.com"},
                "empty",
                id="empty-trigger-types",
            ),
            pytest.param(
                {
                    "trigger_types": "message.created",
                    "webhook_url": "https://example.com",
                },
                "list",
                id="trigger-types-not-list",
            ),
            pytest.param(
                {"trigger_types": ["message.created"], "webhook_url": 3},
                "string",
                id="webhook-url-not-string",
            ),
            pytest.param([], "JSON object", id="array"),
            pytest.param(None, "parsing", id="no-body"),
        ],
    )
    async def test_create_rejects_invalid_bodies(
        self,
        fake: FakeNylas,
        session: aiohttp.ClientSession,
        openapi: OpenAPI,
        body: object,
        message: str,
    ) -> None:
        """A create with a missing or ill-typed field is a Nylas 400."""
        data = b"" if body is None else json.dumps(body).encode()

        async with session.post("/v3/webhooks", data=data) as response:
            raw = await response.read()

        error = json.loads(raw)["error"]
        assert response.status == 400
        assert error["type"] == "invalid_request_error"
        assert message in error["message"]
        assert fake.webhook_ids == []
        check_schema(openapi, "post", "/v3/webhooks", 400, raw)

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            pytest.param("POST", "/v3/webhooks", id="create"),
            pytest.param("PUT", "/v3/webhooks/{id}", id="update"),
            pytest.param("POST", "/v3/webhooks/mock-payload", id="mock"),
            pytest.param(
                "POST", "/v3/webhooks/send-test-event", id="test-event"
            ),
        ],
    )
    @pytest.mark.parametrize("opener", ["[", '{"a":'])
    async def test_deeply_nested_body_is_400(
        self,
        fake: FakeNylas,
        session: aiohttp.ClientSession,
        webhook_id: str,
        method: str,
        path: str,
        opener: str,
    ) -> None:
        """A body nested past the parser's stack is a 400, not a 500."""
        data = (opener * 100_000).encode()
        url = path.format(id=webhook_id)

        async with session.request(method, url, data=data) as response:
            body = await response.json()

        assert response.status == 400
        assert body["error"]["type"] == "invalid_request_error"
        assert "parsing" in body["error"]["message"]
        assert fake.webhook_ids == [webhook_id]

    async def test_undecodable_key_is_401(self, fake: FakeNylas) -> None:
        """An Authorization header with bytes that are not UTF-8 is 401."""
        async with FakeServer(fake) as server:
            host, port = server.url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                b"GET /v3/webhooks HTTP/1.1\r\nHost: fake\r\n"
                b"Authorization: Bearer nyk_test\xff\r\n"
                b"Connection: close\r\n\r\n"
            )
            reply = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            await writer.wait_closed()

        assert reply.startswith(b"HTTP/1.1 401 ")

    async def test_list_hides_secrets(
        self,
        fake: FakeNylas,
        session: aiohttp.ClientSession,
        openapi: OpenAPI,
    ) -> None:
        """List returns every destination, none with its secret."""
        ids = [fake.add_webhook(), fake.add_webhook(status="failing")]

        async with session.get("/v3/webhooks") as response:
            raw = await response.read()

        data = json.loads(raw)["data"]
        assert [d["id"] for d in data] == ids
        assert not any("webhook_secret" in d for d in data)
        check_schema(openapi, "get", "/v3/webhooks", 200, raw)

    async def test_get_hides_the_secret(
        self,
        webhook_id: str,
        session: aiohttp.ClientSession,
        openapi: OpenAPI,
    ) -> None:
        """Get returns the destination with timestamps and no secret."""
        async with session.get(f"/v3/webhooks/{webhook_id}") as response:
            raw = await response.read()

        data = json.loads(raw)["data"]
        assert data["id"] == webhook_id
        assert "webhook_secret" not in data
        assert isinstance(data["updated_at"], int)
        check_schema(openapi, "get", f"/v3/webhooks/{webhook_id}", 200, raw)

    async def test_update_changes_only_given_fields(
        self,
        fake: FakeNylas,
        webhook_id: str,
        session: aiohttp.ClientSession,
        openapi: OpenAPI,
    ) -> None:
        """Update applies the fields sent and keeps the others."""
        path = f"/v3/webhooks/{webhook_id}"

        async with session.put(path, json={"status": "pause"}) as response:
            raw = await response.read()

        data = json.loads(raw)["data"]
        assert data["status"] == "pause"
        assert data["description"] == "Seeded"
        assert "webhook_secret" not in data
        check_schema(openapi, "put", path, 200, raw)

    async def test_update_rejects_other_statuses(
        self, webhook_id: str, session: aiohttp.ClientSession
    ) -> None:
        """Update accepts only the statuses active and pause."""
        path = f"/v3/webhooks/{webhook_id}"

        async with session.put(path, json={"status": "failed"}) as response:
            assert response.status == 400

    async def test_delete_removes_the_destination(
        self,
        fake: FakeNylas,
        webhook_id: str,
        session: aiohttp.ClientSession,
        openapi: OpenAPI,
    ) -> None:
        """Delete answers success and the id is gone."""
        path = f"/v3/webhooks/{webhook_id}"

        async with session.delete(path) as response:
            raw = await response.read()

        assert json.loads(raw)["data"] == {"status": "success"}
        assert fake.webhook_ids == []
        check_schema(openapi, "delete", path, 200, raw)

    @pytest.mark.parametrize("not_found_status", [400, 404])
    @pytest.mark.parametrize(
        ("method", "template"),
        [
            pytest.param("POST", "/v3/webhooks/rotate-secret/{}", id="rotate"),
            pytest.param("GET", "/v3/webhooks/{}", id="get"),
            pytest.param("PUT", "/v3/webhooks/{}", id="update"),
            pytest.param("DELETE", "/v3/webhooks/{}", id="delete"),
        ],
    )
    async def test_unknown_id_is_70000(
        self, not_found_status: int, method: str, template: str
    ) -> None:
        """An unknown id gets the configured status with type 70000."""
        fake = FakeNylas(API_KEY, not_found_status=not_found_status)
        path = template.format("A" * 26)

        async with (
            serving(fake) as session,
            session.request(method, path, json={}) as response,
        ):
            body = await response.json()

        assert response.status == not_found_status
        assert body["error"] == {
            "type": "70000",
            "message": "destination.id.not.found : record not found",
        }

    @pytest.mark.parametrize(
        ("method", "template"),
        [
            pytest.param(
                "PUT", "/v3/webhooks/{}/rotate-secret", id="python-sdk-rotate"
            ),
            pytest.param("POST", "/v3/webhooks/{}", id="post-to-id"),
            pytest.param("PATCH", "/v3/webhooks/{}", id="patch"),
            pytest.param("GET", "/v3/hooks", id="unknown-path"),
            pytest.param("GET", "/v3/webhooks/{}/", id="trailing-slash"),
        ],
    )
    async def test_unknown_route_is_go_404(
        self,
        fake: FakeNylas,
        webhook_id: str,
        session: aiohttp.ClientSession,
        method: str,
        template: str,
    ) -> None:
        """An unknown route or method gets the gateway's plain-text 404."""
        path = template.format(webhook_id)

        async with session.request(method, path) as response:
            text = await response.text()

        assert response.status == 404
        assert response.content_type == "text/plain"
        assert text == "404 page not found\n"
        assert fake.rotations_of(webhook_id) == 0
        assert fake.requests[-1].operation is None

    async def test_replies_carry_request_ids(
        self,
        fake: FakeNylas,
        webhook_id: str,
        session: aiohttp.ClientSession,
    ) -> None:
        """x-request-id matches the body and the record; x-fastly-id is
        there too."""
        async with session.get(f"/v3/webhooks/{webhook_id}") as response:
            body = await response.json()

        request_id = response.headers["x-request-id"]
        assert response.content_type == "application/json"
        assert body["request_id"] == request_id
        assert fake.requests[-1].request_id == request_id
        assert response.headers["x-fastly-id"] not in ("", request_id)

    async def test_rate_limit_answers_429_above_the_rate(self) -> None:
        """Above the rate the fake answers 429 until tokens refill."""
        fake = FakeNylas(API_KEY, rate_limit=2)

        async with serving(fake) as session:
            statuses = []
            for _ in range(6):
                async with session.get("/v3/webhooks") as response:
                    statuses.append(response.status)
                    retry_after = response.headers.get("Retry-After")
            await asyncio.sleep(0.6)
            async with session.get("/v3/webhooks") as response:
                later = response.status

        assert statuses[:2] == [200, 200]
        assert statuses.count(429) >= 3
        assert retry_after is None
        assert later == 200

    async def test_latency_delays_every_reply(self) -> None:
        """With latency, even a 404 takes at least that long."""
        fake = FakeNylas(API_KEY, latency=0.1)

        async with serving(fake) as session:
            started = time.monotonic()
            async with session.get("/v3/nothing") as response:
                assert response.status == 404

        assert time.monotonic() - started >= 0.1

    async def test_inject_matches_operation_and_id(
        self, fake: FakeNylas, session: aiohttp.ClientSession
    ) -> None:
        """A scripted fault waits for a request with its operation and
        id."""
        first, second = fake.add_webhook(), fake.add_webhook()
        fake.inject(
            Fault.server_error(503), webhook_id=second, operation="rotate"
        )

        async with session.get(f"/v3/webhooks/{second}") as response:
            assert response.status == 200
        assert (await rotate(session, first))[0] == 200
        assert (await rotate(session, second))[0] == 503
        assert (await rotate(session, second))[0] == 200

        faults = [r.fault for r in fake.requests]
        assert faults == [None, None, "server_error_503", None]

    async def test_injected_faults_apply_in_order(
        self, fake: FakeNylas, webhook_id: str, session: aiohttp.ClientSession
    ) -> None:
        """Faults queued together apply one per request, in order."""
        fake.inject(Fault.rate_limited(), Fault.server_error())

        statuses = [(await rotate(session, webhook_id))[0] for _ in range(3)]

        assert statuses == [429, 500, 200]

    async def test_rejected_requests_keep_faults_queued(
        self, fake: FakeNylas, webhook_id: str, session: aiohttp.ClientSession
    ) -> None:
        """Unknown routes and bad keys do not use up a scripted fault."""
        fake.inject(Fault.server_error())

        async with session.get("/v3/nothing") as response:
            assert response.status == 404
        bad_key = {"Authorization": "Bearer nope"}
        async with session.get("/v3/webhooks", headers=bad_key) as response:
            assert response.status == 401

        assert (await rotate(session, webhook_id))[0] == 500

    def test_inject_rejects_unknown_operations(self, fake: FakeNylas) -> None:
        """inject names the operations it knows when given another."""
        with pytest.raises(ValueError, match="rotate"):
            fake.inject(Fault.server_error(), operation="rotate-secret")

    def test_add_webhook_sticks_to_the_get_schema(
        self, fake: FakeNylas
    ) -> None:
        """Seeding refuses trigger types the get reply schema lacks."""
        with pytest.raises(ValueError, match=r"notetaker\.media"):
            fake.add_webhook(trigger_types=["notetaker.media"])

    def test_secret_of_an_unknown_id_raises(self, fake: FakeNylas) -> None:
        """secret_of raises KeyError for an id it does not hold."""
        with pytest.raises(KeyError):
            fake.secret_of("missing")

    @pytest.mark.parametrize(
        "kwargs",
        [
            pytest.param({"api_key": ""}, id="empty-key"),
            pytest.param({"api_key": " "}, id="blank-key"),
            pytest.param({"api_key": "nyk\x01"}, id="control-in-key"),
            pytest.param({"api_key": "nyk\udcff"}, id="undecodable-key"),
            pytest.param({"api_key": "nyké"}, id="non-ascii-key"),
            pytest.param({"latency": -1.0}, id="negative-latency"),
            pytest.param({"latency": float("nan")}, id="nan-latency"),
            pytest.param({"latency": float("inf")}, id="inf-latency"),
            pytest.param({"rate_limit": 0.0}, id="zero-rate"),
            pytest.param({"rate_limit": float("inf")}, id="inf-rate"),
            pytest.param({"not_found_status": 410}, id="other-status"),
            pytest.param({"challenge_timeout": 0.0}, id="zero-challenge"),
            pytest.param({"page_size": 0}, id="zero-page"),
        ],
    )
    def test_rejects_bad_settings(self, kwargs: dict[str, object]) -> None:
        """Settings out of range raise ValueError."""
        arguments: dict[str, object] = {"api_key": API_KEY} | kwargs

        with pytest.raises(ValueError):  # noqa: PT011
            FakeNylas(**arguments)  # type: ignore[arg-type]


class TestFakeNylasEndpoints:
    @pytest.mark.parametrize(
        ("nested", "keys"),
        [
            pytest.param(True, {"data"}, id="nested"),
            pytest.param(False, {"specversion", "type", "data"}, id="flat"),
        ],
    )
    async def test_mock_payload_nesting(
        self, nested: bool, keys: set[str]
    ) -> None:
        """mock-payload nests the notification as configured."""
        fake = FakeNylas(API_KEY, mock_payload_nested=nested)
        body = {"trigger_type": "event.created"}

        async with (
            serving(fake) as session,
            session.post("/v3/webhooks/mock-payload", json=body) as response,
        ):
            data = (await response.json())["data"]

        assert response.status == 200
        assert keys <= set(data)
        notification = data["data"] if nested else data
        assert notification["type"] == "event.created"
        assert notification["data"]["object"]["object"] == "event"

    @pytest.mark.parametrize(
        ("path", "body", "message"),
        [
            pytest.param(
                "mock-payload", {}, "trigger_type is required", id="mock-none"
            ),
            pytest.param(
                "mock-payload",
                {"trigger_type": 5},
                "must be a string",
                id="mock-not-string",
            ),
            pytest.param(
                "mock-payload",
                {"trigger_type": "notetaker.media"},
                "invalid value",
                id="mock-unmockable",
            ),
            pytest.param(
                "send-test-event",
                {"trigger_type": "message.created"},
                "webhook_url is required",
                id="test-event-no-url",
            ),
            pytest.param(
                "send-test-event",
                {"webhook_url": "http://127.0.0.1:9/"},
                "trigger_type is required",
                id="test-event-no-trigger",
            ),
            pytest.param(
                "send-test-event",
                {
                    "trigger_type": "message.created",
                    "webhook_url": "https://example.com/hook",
                },
                "127.0.0.1",
                id="test-event-not-loopback",
            ),
        ],
    )
    async def test_mock_endpoints_validate(
        self,
        session: aiohttp.ClientSession,
        path: str,
        body: dict[str, object],
        message: str,
    ) -> None:
        """mock-payload and send-test-event answer 400 for bad bodies."""
        async with session.post(f"/v3/webhooks/{path}", json=body) as resp:
            error = (await resp.json())["error"]

        assert resp.status == 400
        assert error["type"] == "invalid_request_error"
        assert message in error["message"]

    @pytest.mark.parametrize("served", [True, False])
    async def test_ip_addresses(self, served: bool) -> None:
        """ip-addresses answers the list, or the gateway 404 when off."""
        fake = FakeNylas(API_KEY, serve_ip_addresses=served)

        async with (
            serving(fake) as session,
            session.get("/v3/webhooks/ip-addresses") as response,
        ):
            raw = await response.read()

        if served:
            data = json.loads(raw)["data"]
            assert data["ip_addresses"]
            assert isinstance(data["updated_at"], int)
        else:
            assert response.status == 404
            assert raw == b"404 page not found\n"
            assert fake.requests[0].operation is None

    async def test_list_pages(self) -> None:
        """With page_size, list pages by limit and page_token and records
        the query."""
        fake = FakeNylas(API_KEY, page_size=2)
        ids = [fake.add_webhook() for _ in range(3)]

        async with serving(fake) as session:
            async with session.get("/v3/webhooks?limit=5") as response:
                first = await response.json()
            token = first["next_cursor"]
            query = {"limit": "5", "page_token": token}
            async with session.get("/v3/webhooks", params=query) as response:
                second = await response.json()

        assert [d["id"] for d in first["data"]] == ids[:2]
        assert [d["id"] for d in second["data"]] == ids[2:]
        assert "next_cursor" not in second
        assert fake.requests[1].query == query

    @pytest.mark.parametrize(
        "query",
        [
            pytest.param("limit=0", id="zero"),
            pytest.param("limit=many", id="word"),
            pytest.param("page_token=xyz", id="bad-token"),
        ],
    )
    async def test_list_rejects_bad_paging(self, query: str) -> None:
        """A bad limit or page token is a 400 when paging is on."""
        fake = FakeNylas(API_KEY, page_size=2)

        async with (
            serving(fake) as session,
            session.get(f"/v3/webhooks?{query}") as response,
        ):
            assert response.status == 400

    async def test_list_ignores_paging_by_default(
        self, session: aiohttp.ClientSession, fake: FakeNylas
    ) -> None:
        """Without page_size, limit and page_token are ignored."""
        ids = [fake.add_webhook() for _ in range(3)]

        async with session.get("/v3/webhooks?limit=1&page_token=x") as resp:
            body = await resp.json()

        assert [d["id"] for d in body["data"]] == ids
        assert "next_cursor" not in body

    async def test_challenge_keeps_the_url_query(self) -> None:
        """The challenge is added to the URL's own query parameters."""
        seen: list[dict[str, str]] = []

        async def echo(request: web.Request) -> web.Response:
            seen.append(dict(request.query))
            return web.Response(text=request.query["challenge"])

        app = web.Application()
        app.router.add_get("/hook", echo)
        runner = web.AppRunner(app, shutdown_timeout=1)
        await runner.setup()
        fake = FakeNylas(API_KEY, verify_challenge=True, challenge_timeout=2)
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = runner.addresses[0][1]
            body = {
                "trigger_types": ["message.created"],
                "webhook_url": f"http://127.0.0.1:{port}/hook?tenant=7",
            }
            async with (
                serving(fake) as session,
                session.post("/v3/webhooks", json=body) as response,
            ):
                assert response.status == 200
        finally:
            await runner.cleanup()

        [query] = seen
        assert query["tenant"] == "7"
        assert len(query["challenge"]) >= 16

    @pytest.mark.parametrize(
        "operation", ["mock_payload", "send_test_event", "ip_addresses"]
    )
    async def test_inject_knows_the_new_operations(
        self, fake: FakeNylas, session: aiohttp.ClientSession, operation: str
    ) -> None:
        """Faults can target the newer operations too."""
        fake.inject(Fault.server_error(503), operation=operation)
        requests = {
            "mock_payload": ("POST", "/v3/webhooks/mock-payload"),
            "send_test_event": ("POST", "/v3/webhooks/send-test-event"),
            "ip_addresses": ("GET", "/v3/webhooks/ip-addresses"),
        }
        method, path = requests[operation]

        async with session.request(method, path, json={}) as response:
            assert response.status == 503
        assert fake.requests[-1].operation == operation


class TestFault:
    async def test_delay_answers_after_waiting(
        self, fake: FakeNylas, webhook_id: str, session: aiohttp.ClientSession
    ) -> None:
        """A delayed request still commits and answers normally."""
        fake.inject(Fault.delay(0.2))
        started = time.monotonic()

        status, _ = await rotate(session, webhook_id)

        assert status == 200
        assert time.monotonic() - started >= 0.2
        assert fake.rotations_of(webhook_id) == 1

    @pytest.mark.parametrize(
        ("fault", "header"),
        [
            pytest.param(Fault.rate_limited(), None, id="no-retry-after"),
            pytest.param(Fault.rate_limited(1), "1", id="seconds"),
            pytest.param(Fault.rate_limited(0.2), "1", id="rounded-up"),
        ],
    )
    async def test_rate_limited_answers_429_without_acting(
        self,
        fake: FakeNylas,
        webhook_id: str,
        session: aiohttp.ClientSession,
        fault: Fault,
        header: str | None,
    ) -> None:
        """A 429 fault carries the Retry-After asked for and commits
        nothing."""
        fake.inject(fault)

        async with session.post(rotate_path(webhook_id)) as response:
            body = await response.json()

        assert response.status == 429
        assert response.headers.get("Retry-After") == header
        assert body["error"]["type"] == "api.rate_limit_error"
        assert fake.rotations_of(webhook_id) == 0

    async def test_rate_limited_can_send_an_http_date(
        self, fake: FakeNylas, webhook_id: str, session: aiohttp.ClientSession
    ) -> None:
        """With http_date, Retry-After is a GMT date about that far
        ahead."""
        fake.inject(Fault.rate_limited(30, http_date=True))

        async with session.post(rotate_path(webhook_id)) as response:
            header = response.headers["Retry-After"]

        when = email.utils.parsedate_to_datetime(header)
        ahead = (when - datetime.now(UTC)).total_seconds()
        assert header.endswith("GMT")
        assert 25 < ahead <= 30

    @pytest.mark.parametrize("status", [500, 503])
    async def test_server_error_is_a_nylas_json_error(
        self,
        fake: FakeNylas,
        webhook_id: str,
        session: aiohttp.ClientSession,
        status: int,
    ) -> None:
        """A JSON server error has the Nylas error shape and request id."""
        fake.inject(Fault.server_error(status))

        async with session.post(rotate_path(webhook_id)) as response:
            body = await response.json()

        assert response.status == status
        assert body["error"]["type"] == "api.internal_error"
        assert body["request_id"] == response.headers["x-request-id"]

    async def test_html_server_error_is_a_gateway_page(
        self, fake: FakeNylas, webhook_id: str, session: aiohttp.ClientSession
    ) -> None:
        """An HTML server error is a gateway page with no request id."""
        fake.inject(Fault.server_error(502, html=True))

        async with session.post(rotate_path(webhook_id)) as response:
            text = await response.text()

        assert response.status == 502
        assert response.content_type == "text/html"
        assert "<html>" in text
        assert "502 Bad Gateway" in text
        assert "x-request-id" not in response.headers
        assert "x-fastly-id" in response.headers

    @pytest.mark.parametrize(
        ("fault", "committed"),
        [
            pytest.param(Fault.rate_limited(1), False, id="rate-limited"),
            pytest.param(Fault.server_error(), False, id="5xx-before"),
            pytest.param(
                Fault.server_error(after_commit=True), True, id="5xx-after"
            ),
            pytest.param(
                Fault.server_error(502, html=True, after_commit=True),
                True,
                id="html-after",
            ),
            pytest.param(
                Fault.drop(after_commit=False), False, id="drop-before"
            ),
            pytest.param(Fault.drop(after_commit=True), True, id="drop-after"),
            pytest.param(
                Fault.bad_body("truncated"), True, id="bad-body-after"
            ),
        ],
    )
    async def test_only_after_commit_faults_rotate(
        self,
        fake: FakeNylas,
        webhook_id: str,
        session: aiohttp.ClientSession,
        fault: Fault,
        committed: bool,
    ) -> None:
        """A faulty rotate changes the secret exactly when the fault comes
        after the commit."""
        before = fake.secret_of(webhook_id)
        fake.inject(fault)

        with contextlib.suppress(aiohttp.ClientError):
            await rotate(session, webhook_id)

        assert fake.rotations_of(webhook_id) == int(committed)
        assert (fake.secret_of(webhook_id) != before) is committed
        assert fake.requests[-1].fault == fault.name

    @pytest.mark.parametrize("after_commit", [False, True])
    async def test_drop_disconnects_without_a_reply(
        self,
        fake: FakeNylas,
        webhook_id: str,
        session: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture,
        after_commit: bool,
    ) -> None:
        """A dropped request ends in a server disconnection, not an HTTP
        error, and the server logs no error."""
        fake.inject(Fault.drop(after_commit=after_commit))

        with (
            caplog.at_level(logging.WARNING),
            pytest.raises(aiohttp.ServerDisconnectedError),
        ):
            await rotate(session, webhook_id)

        assert fake.requests[-1].status is None
        assert (await rotate(session, webhook_id))[0] == 200
        assert caplog.records == []

    async def test_drop_after_commit_still_creates(
        self, fake: FakeNylas, session: aiohttp.ClientSession
    ) -> None:
        """A create dropped after commit leaves the destination behind."""
        fake.inject(Fault.drop(after_commit=True), operation="create")
        body = {
            "trigger_types": ["message.created"],
            "webhook_url": "http://x",
        }

        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.post("/v3/webhooks", json=body)

        assert len(fake.webhook_ids) == 1

    async def test_slow_reply_outlives_the_client(
        self, fake: FakeNylas, webhook_id: str, session: aiohttp.ClientSession
    ) -> None:
        """A slow rotate commits, the client times out, and the held
        reply is abandoned."""
        fake.inject(Fault.slow(30))
        timeout = aiohttp.ClientTimeout(total=0.2)

        with pytest.raises(TimeoutError):
            await session.post(rotate_path(webhook_id), timeout=timeout)

        assert fake.rotations_of(webhook_id) == 1
        await eventually(lambda: fake.requests[-1].fault == "slow")
        assert fake.requests[-1].status is None

    async def test_slow_reply_arrives_late(
        self, fake: FakeNylas, webhook_id: str, session: aiohttp.ClientSession
    ) -> None:
        """A slow reply within the client's patience is a normal 200."""
        fake.inject(Fault.slow(0.2))
        started = time.monotonic()

        status, raw = await rotate(session, webhook_id)

        assert status == 200
        assert time.monotonic() - started >= 0.2
        secret = json.loads(raw)["data"]["webhook_secret"]
        assert secret == fake.secret_of(webhook_id)

    @pytest.mark.parametrize(
        ("kind", "content_type", "parses"),
        [
            pytest.param("truncated", "application/json", False, id="cut"),
            pytest.param("not_json", "text/html", False, id="html"),
            pytest.param("text_plain_json", "text/plain", True, id="plain"),
        ],
    )
    async def test_bad_body_follows_a_commit(
        self,
        fake: FakeNylas,
        webhook_id: str,
        session: aiohttp.ClientSession,
        kind: str,
        content_type: str,
        parses: bool,
    ) -> None:
        """A damaged body is a 200 of the stated kind after the rotation."""
        fake.inject(Fault.bad_body(kind))  # type: ignore[arg-type]

        async with session.post(rotate_path(webhook_id)) as response:
            text = await response.text()

        assert response.status == 200
        assert response.content_type == content_type
        assert fake.rotations_of(webhook_id) == 1
        if parses:
            secret = json.loads(text)["data"]["webhook_secret"]
            assert secret == fake.secret_of(webhook_id)
        else:
            with pytest.raises(ValueError):  # noqa: PT011
                json.loads(text)

    @pytest.mark.parametrize(
        ("fault", "name"),
        [
            pytest.param(Fault.delay(1), "delay", id="delay"),
            pytest.param(Fault.rate_limited(), "rate_limited", id="429"),
            pytest.param(
                Fault.rate_limited(1), "rate_limited_retry_after", id="429-s"
            ),
            pytest.param(
                Fault.server_error(502, html=True, after_commit=True),
                "server_error_502_html_after_commit",
                id="502",
            ),
            pytest.param(
                Fault.drop(after_commit=False), "drop_before_commit", id="drop"
            ),
            pytest.param(Fault.slow(1), "slow", id="slow"),
            pytest.param(
                Fault.bad_body("not_json"), "bad_body_not_json", id="body"
            ),
        ],
    )
    def test_name_says_what_happens(self, fault: Fault, name: str) -> None:
        """Each fault has a short name that recorded requests show."""
        assert fault.name == name

    @pytest.mark.parametrize(
        "make",
        [
            pytest.param(lambda: Fault.delay(-1), id="negative-delay"),
            pytest.param(lambda: Fault.server_error(404), id="not-5xx"),
            pytest.param(
                lambda: Fault.bad_body("empty"),  # type: ignore[arg-type]
                id="bad-kind",
            ),
            pytest.param(
                lambda: Fault.rate_limited(http_date=True), id="date-no-delay"
            ),
        ],
    )
    def test_rejects_nonsense(self, make: object) -> None:
        """Faults that cannot happen raise ValueError."""
        with pytest.raises(ValueError):  # noqa: PT011
            make()  # type: ignore[operator]


class TestRandomFaults:
    async def test_same_seed_same_faults(self) -> None:
        """Two fakes with the same seed misbehave identically."""
        runs = []
        for _ in range(2):
            fake = FakeNylas(API_KEY, random_faults=RandomFaults(0.5, seed=3))
            webhook_id = fake.add_webhook()
            async with serving(fake) as session:
                for _ in range(16):
                    with contextlib.suppress(aiohttp.ClientError):
                        await rotate(session, webhook_id)
            runs.append([r.fault for r in fake.requests])

        assert runs[0] == runs[1]
        assert None in runs[0]
        assert len(set(runs[0])) > 2

    def test_pick_is_deterministic(self) -> None:
        """pick draws the same faults from generators seeded alike."""
        faults = RandomFaults(0.7, seed=1)

        first = [faults.pick(random.Random(9)) for _ in range(50)]
        second = [faults.pick(random.Random(9)) for _ in range(50)]

        assert first == second

    @pytest.mark.parametrize("rate", [0.0, 1.0])
    def test_rate_is_the_share_of_faulty_requests(self, rate: float) -> None:
        """Rate 0 never faults and rate 1 always does."""
        faults = RandomFaults(rate, seed=0)
        rng = random.Random(0)

        picks = [faults.pick(rng) for _ in range(100)]

        assert all((p is not None) is bool(rate) for p in picks)

    def test_default_mix_is_varied_and_quick(self) -> None:
        """The default mix covers the common failures with short waits."""
        faults = RandomFaults(1.0, seed=0)
        rng = random.Random(0)

        picks = [faults.pick(rng) for _ in range(400)]

        names = {p.name for p in picks if p is not None}
        assert names == set(faults.weights)
        waits = [p.retry_after for p in picks if p and p.retry_after]
        assert max(waits) <= 1

    def test_weights_choose_the_kinds(self) -> None:
        """Only faults with a weight are drawn."""
        faults = RandomFaults(1.0, seed=0, weights={"drop_after_commit": 1})
        rng = random.Random(0)

        names = {faults.pick(rng).name for _ in range(20)}  # type: ignore[union-attr]

        assert names == {"drop_after_commit"}

    @pytest.mark.parametrize(
        "kwargs",
        [
            pytest.param({"rate": 1.5}, id="rate-above-1"),
            pytest.param({"weights": {"teapot": 1.0}}, id="unknown-name"),
            pytest.param({"weights": {"slow": -1.0}}, id="negative"),
            pytest.param({"weights": {"slow": 0.0}}, id="all-zero"),
        ],
    )
    def test_rejects_bad_settings(self, kwargs: dict[str, object]) -> None:
        """Rates outside 0..1 and unusable weights raise ValueError."""
        arguments: dict[str, object] = {"rate": 0.5, "seed": 0} | kwargs

        with pytest.raises(ValueError):  # noqa: PT011
            RandomFaults(**arguments)  # type: ignore[arg-type]


class TestFakeServer:
    async def test_listens_on_a_free_loopback_port(
        self, fake: FakeNylas
    ) -> None:
        """By default the server binds 127.0.0.1 on a port of its own."""
        async with FakeServer(fake) as server:
            url = server.url

        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*", url)

    def test_url_needs_a_running_server(self, fake: FakeNylas) -> None:
        """url raises RuntimeError outside the context."""
        with pytest.raises(RuntimeError):
            FakeServer(fake).url  # noqa: B018

    async def test_shutdown_drops_held_replies_at_once(
        self, fake: FakeNylas, webhook_id: str
    ) -> None:
        """Leaving the context ends a held reply without waiting for it."""
        fake.inject(Fault.slow(30))

        async with FakeServer(fake) as server:
            client = aiohttp.ClientSession(server.url, headers=AUTH)
            pending = asyncio.create_task(rotate(client, webhook_id))
            await eventually(lambda: fake.rotations_of(webhook_id) == 1)
            started = time.monotonic()

        assert time.monotonic() - started < 1
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await pending
        await client.close()

    async def test_serve_forever_stops_on_sigterm(self) -> None:
        """serve_forever serves seeded webhooks and exits cleanly on
        SIGTERM."""
        code = (
            "import functools\n"
            "from nylas_async.testing._server import serve_forever\n"
            "serve_forever(host='127.0.0.1', port=0, api_key='nyk_test',"
            " seed_webhooks=2, fault_rate=0.0, seed=1, latency=0.0,"
            " rate_limit=None, print_fn=functools.partial(print, flush=True))"
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=Path(__file__).parents[1],
        )
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 10)
        url = first.decode().split()[-1]

        async with (
            aiohttp.ClientSession(url, headers=AUTH) as session,
            session.get("/v3/webhooks") as response,
        ):
            listed = (await response.json())["data"]
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), 10)

        assert process.returncode == 0
        assert err == b""
        assert len(listed) == 2
        assert all(d["id"].encode() in out for d in listed)
        assert API_KEY.encode() not in first + out


class TestRecordedRequest:
    @pytest.mark.parametrize(
        ("headers", "client_request_id", "attempt"),
        [
            pytest.param(
                {"X-Request-ID": "req-1", "X-Request-Attempt": "2"},
                "req-1",
                2,
                id="both",
            ),
            pytest.param({"X-Request-Attempt": "two"}, None, None, id="bad"),
            pytest.param({}, None, None, id="none"),
        ],
    )
    async def test_records_the_client_headers(
        self,
        fake: FakeNylas,
        webhook_id: str,
        session: aiohttp.ClientSession,
        headers: dict[str, str],
        client_request_id: str | None,
        attempt: int | None,
    ) -> None:
        """The client's request id and attempt number are recorded."""
        path = rotate_path(webhook_id)

        async with session.post(path, headers=headers) as response:
            request_id = response.headers["x-request-id"]

        assert fake.requests == [
            RecordedRequest(
                method="POST",
                path=path,
                operation="rotate",
                webhook_id=webhook_id,
                client_request_id=client_request_id,
                attempt=attempt,
                request_id=request_id,
                status=200,
            )
        ]

    async def test_clear_requests_forgets(
        self, fake: FakeNylas, session: aiohttp.ClientSession
    ) -> None:
        """clear_requests empties the record."""
        async with session.get("/v3/webhooks"):
            pass

        fake.clear_requests()

        assert fake.requests == []
