"""
The fake and the models against Nylas's published OpenAPI file.

Every reply the fake gives for each documented operation and status
must validate against ``tests/data/nylas-webhooks-openapi.yml``, the bodies
our client sends must fit the request schemas, and every example in
the file must decode through the client into our models.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
import yaml
from aiohttp import web
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from nylas_async import (
    Client,
    CreateWebhookRequest,
    NotFoundError,
    NylasApiError,
    RetryPolicy,
    UpdateWebhookRequest,
)
from nylas_async._models import unstructure, update_body
from nylas_async.testing import FakeNylas, FakeServer
from nylas_async.testing._fake import MOCK_TRIGGER_TYPES

SPEC = Path(__file__).parent / "data" / "nylas-webhooks-openapi.yml"
HOST = "https://api.us.nylas.com"
KEY = "nyk_openapi_test"
AUTH = {"Authorization": f"Bearer {KEY}"}
UNKNOWN_ID = "A" * 26
#: Stands for the URL of a receiver on loopback in a case's body.
HOOK = "{hook}"

Pointer = tuple[str, ...]


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    return loaded


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC))


@attrs.frozen
class Case:
    """One request to the fake and the status it must get."""

    method: str
    template: str
    status: int
    body: Any = None
    settings: dict[str, Any] = attrs.field(factory=dict)
    known_id: bool = True

    @property
    def spec_path(self) -> str:
        return self.template.replace("{}", "{id}")


VALID_CREATE = {
    "trigger_types": ["message.created"],
    "webhook_url": "https://example.com/hook",
    "description": "Made by the conformance test",
    "notification_email_addresses": ["ops@example.com"],
    "compressed_delivery": True,
}
ROTATE = "/v3/webhooks/rotate-secret/{}"
ONE = "/v3/webhooks/{}"
CASES = [
    pytest.param(Case("POST", ROTATE, 200, {}), id="rotate"),
    pytest.param(
        Case("POST", ROTATE, 400, {}, known_id=False), id="rotate-unknown"
    ),
    pytest.param(Case("POST", "/v3/webhooks", 200, VALID_CREATE), id="create"),
    pytest.param(
        Case("POST", "/v3/webhooks", 400, {"webhook_url": "https://x"}),
        id="create-missing-field",
    ),
    pytest.param(
        Case("POST", "/v3/webhooks", 400, "not json"), id="create-not-json"
    ),
    pytest.param(
        Case(
            "POST",
            "/v3/webhooks",
            400,
            VALID_CREATE,
            settings={"verify_challenge": True},
        ),
        id="create-challenge-failed",
    ),
    pytest.param(Case("GET", "/v3/webhooks", 200), id="list"),
    pytest.param(
        Case("GET", "/v3/webhooks?limit=1", 200, settings={"page_size": 5}),
        id="list-page",
    ),
    pytest.param(
        Case(
            "GET",
            "/v3/webhooks?page_token=bad",
            400,
            settings={"page_size": 5},
        ),
        id="list-bad-token",
    ),
    pytest.param(Case("GET", ONE, 200), id="get"),
    pytest.param(Case("GET", ONE, 400, known_id=False), id="get-unknown"),
    pytest.param(Case("PUT", ONE, 200, {"status": "pause"}), id="update"),
    pytest.param(
        Case(
            "PUT",
            ONE,
            200,
            {"description": "x", "trigger_types": ["event.created"]},
        ),
        id="update-fields",
    ),
    pytest.param(
        Case("PUT", ONE, 400, {"status": "failed"}), id="update-bad-status"
    ),
    pytest.param(
        Case("PUT", ONE, 400, {"status": "pause"}, known_id=False),
        id="update-unknown",
    ),
    pytest.param(Case("DELETE", ONE, 200), id="delete"),
    pytest.param(
        Case("DELETE", ONE, 400, known_id=False), id="delete-unknown"
    ),
    *(
        pytest.param(
            Case(
                "POST",
                "/v3/webhooks/mock-payload",
                200,
                {"trigger_type": trigger_type},
                settings={"mock_payload_nested": nested},
            ),
            id=f"mock-payload-{trigger_type}-{'nested' if nested else 'flat'}",
        )
        for trigger_type in MOCK_TRIGGER_TYPES
        for nested in (True, False)
    ),
    pytest.param(
        Case("POST", "/v3/webhooks/mock-payload", 400, {"trigger_type": "x"}),
        id="mock-payload-unknown-trigger",
    ),
    pytest.param(
        Case(
            "POST",
            "/v3/webhooks/send-test-event",
            200,
            {"trigger_type": "grant.expired", "webhook_url": HOOK},
        ),
        id="send-test-event",
    ),
    pytest.param(
        Case(
            "POST",
            "/v3/webhooks",
            200,
            VALID_CREATE | {"webhook_url": HOOK},
            settings={"verify_challenge": True, "challenge_timeout": 2},
        ),
        id="create-challenge-passed",
    ),
    pytest.param(
        Case(
            "POST",
            "/v3/webhooks/send-test-event",
            400,
            {"trigger_type": "grant.expired"},
        ),
        id="send-test-event-no-url",
    ),
]


async def echo_challenge(request: web.Request) -> web.Response:
    return web.Response(text=request.query["challenge"])


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.Response()


async def run_case(case: Case) -> tuple[str, int, bytes]:
    """
    Send *case* to a fresh fake, with a receiver on loopback standing
    in for `HOOK`; return the path, status and body.
    """
    fake = FakeNylas(KEY, **case.settings)
    webhook_id = fake.add_webhook(description="Conformance")
    fake.add_webhook()
    path = case.template.format(webhook_id if case.known_id else UNKNOWN_ID)
    receiver = {("GET", "/hook"): echo_challenge, ("POST", "/hook"): accept}

    async with (
        serving_routes(receiver) as hook_base,
        FakeServer(fake) as server,
        aiohttp.ClientSession(server.url, headers=AUTH) as session,
    ):
        if case.body is None:
            data = None
        elif isinstance(case.body, str):
            data = case.body.encode()
        else:
            text = json.dumps(case.body)
            data = text.replace(HOOK, hook_base + "/hook").encode()
        async with session.request(case.method, path, data=data) as response:
            return path, response.status, await response.read()


def check(
    openapi: OpenAPI, method: str, path: str, status: int, raw: bytes
) -> None:
    """Fail unless *raw* is a valid *status* reply to *method* *path*."""
    plain_path = path.partition("?")[0]
    request = MockRequest(HOST, method.lower(), plain_path)
    openapi.validate_response(request, MockResponse(raw, status_code=status))


def documented_replies(spec: dict[str, Any]) -> set[tuple[str, str, int]]:
    return {
        (method.upper(), path, int(status))
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        for status in operation["responses"]
    }


class TestFakeReplies:
    @pytest.mark.parametrize("case", CASES)
    async def test_reply_fits_the_schema(
        self, openapi: OpenAPI, case: Case
    ) -> None:
        """The fake's reply has the documented status and shape."""
        path, status, raw = await run_case(case)

        assert status == case.status, raw
        check(openapi, case.method, path, status, raw)

    def test_cases_cover_every_documented_reply(
        self, spec: dict[str, Any]
    ) -> None:
        """Every documented operation and status has a case above."""
        cases = [param.values[0] for param in CASES]
        covered = {
            (c.method, c.spec_path.partition("?")[0], c.status) for c in cases
        }

        assert documented_replies(spec) <= covered

    def test_ip_addresses_is_undocumented(self, spec: dict[str, Any]) -> None:
        """The spec still lacks the IP endpoint; when it gains it, the
        fake's reply must get a case above."""
        assert "/v3/webhooks/ip-addresses" not in spec["paths"]


class TestClientRequests:
    def test_create_body_fits(self, openapi: OpenAPI) -> None:
        """A full CreateWebhookRequest is a valid create body."""
        request = CreateWebhookRequest(**VALID_CREATE)

        check_request(openapi, "POST", "/v3/webhooks", unstructure(request))

    @pytest.mark.parametrize(
        "request_",
        [
            pytest.param(UpdateWebhookRequest(status="pause"), id="status"),
            pytest.param(
                UpdateWebhookRequest(
                    description="d",
                    trigger_types=["event.created"],
                    webhook_url="https://example.com/x",
                    notification_email_addresses=["a@example.com"],
                    compressed_delivery=False,
                    status="active",
                ),
                id="every-field",
            ),
        ],
    )
    def test_update_body_fits(
        self, openapi: OpenAPI, request_: UpdateWebhookRequest
    ) -> None:
        """UpdateWebhookRequest bodies are valid update bodies."""
        body = update_body(request_)

        check_request(openapi, "PUT", f"/v3/webhooks/{UNKNOWN_ID}", body)

    def test_send_test_event_body_fits(self, openapi: OpenAPI) -> None:
        """The body send_test_event sends is a valid one."""
        body = {
            "trigger_type": "message.created",
            "webhook_url": "https://example.com/x",
        }

        check_request(openapi, "POST", "/v3/webhooks/send-test-event", body)


def check_request(
    openapi: OpenAPI, method: str, path: str, body: object
) -> None:
    request = MockRequest(
        HOST,
        method.lower(),
        path,
        headers=AUTH,
        data=json.dumps(body).encode(),
    )
    openapi.validate_request(request)


# Examples -------------------------------------------------------------


class _Missing:
    pass


MISSING = _Missing()


def resolve(spec: dict[str, Any], ref: str) -> tuple[Any, Pointer]:
    pointer = tuple(ref.removeprefix("#/").split("/"))
    node: Any = spec
    for key in pointer:
        node = node[key]

    return node, pointer


def build(
    spec: dict[str, Any], schema: Any, at: Pointer, used: set[Pointer]
) -> Any:
    """
    A value for *schema* made of the examples it holds, recording in
    *used* the pointer of each example taken; `MISSING` when the
    schema gives nothing to build from.
    """
    if "$ref" in schema:
        target, pointer = resolve(spec, schema["$ref"])
        return build(spec, target, pointer, used)
    if "example" in schema:
        used.add((*at, "example"))
        return schema["example"]
    if "enum" in schema:
        return schema["enum"][0]
    if schema.get("type") == "object" or "properties" in schema:
        value = {}
        for name, sub in schema.get("properties", {}).items():
            item = build(spec, sub, (*at, "properties", name), used)
            if item is not MISSING:
                value[name] = item
        return value
    if schema.get("type") == "array":
        item = build(spec, schema["items"], (*at, "items"), used)
        return MISSING if item is MISSING else [item]

    return MISSING


def all_examples(node: Any, at: Pointer = ()) -> Iterator[Pointer]:
    """The pointer of every ``example`` and every named ``examples``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "example":
                yield (*at, key)
            elif key == "examples" and isinstance(value, dict):
                yield from ((*at, key, name) for name in value)
            else:
                yield from all_examples(value, (*at, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from all_examples(value, (*at, str(index)))


def reply_part(
    spec: dict[str, Any], component: str, part: str, used: set[Pointer]
) -> Any:
    """
    The *part* (``data`` or ``error``) of the example reply that the
    response *component* builds.
    """
    at: Pointer = ("components", "responses", component, "content")
    at = (*at, "application/json", "schema", "properties", part)
    schema: Any = spec
    for key in at:
        schema = schema[key]

    return build(spec, schema, at, used)


@contextlib.asynccontextmanager
async def serving_routes(
    routes: dict[tuple[str, str], Any],
) -> AsyncIterator[str]:
    """Serve fixed handlers on a free loopback port; yield the URL."""
    app = web.Application()
    for (method, path), handler in routes.items():
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def replying(status: int, body: object) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    return handler


@contextlib.asynccontextmanager
async def client_for(
    routes: dict[tuple[str, str], Any],
) -> AsyncIterator[Client]:
    async with (
        serving_routes(routes) as url,
        Client(
            api_key=KEY,
            api_uri=url,
            rate_limit=None,
            retry=RetryPolicy.no_retries(),
        ) as client,
    ):
        yield client


ID_EXAMPLE = "UMWjAjMeWQ4D8gYF2moonK4486"
#: Response component, route it answers, and the call that reads it.
SUCCESS = [
    pytest.param("create_200", "POST", "/v3/webhooks", id="create"),
    pytest.param(
        "rotate_secret_200",
        "POST",
        f"/v3/webhooks/rotate-secret/{ID_EXAMPLE}",
        id="rotate",
    ),
    pytest.param("get_200", "GET", "/v3/webhooks", id="list"),
    pytest.param(
        "get_by_id_200", "GET", f"/v3/webhooks/{ID_EXAMPLE}", id="get"
    ),
    pytest.param(
        "update_200", "PUT", f"/v3/webhooks/{ID_EXAMPLE}", id="update"
    ),
    pytest.param(
        "delete_200", "DELETE", f"/v3/webhooks/{ID_EXAMPLE}", id="delete"
    ),
    pytest.param(
        "send_test_event_200",
        "POST",
        "/v3/webhooks/send-test-event",
        id="send-test-event",
    ),
    pytest.param(
        "get_mock_payload_200",
        "POST",
        "/v3/webhooks/mock-payload",
        id="mock-payload",
    ),
]
ERRORS = [
    pytest.param("create_400", "POST", "/v3/webhooks", id="create"),
    pytest.param("get_400", "GET", "/v3/webhooks", id="list"),
    pytest.param(
        "delete_400", "DELETE", f"/v3/webhooks/{ID_EXAMPLE}", id="delete"
    ),
    pytest.param(
        "update_400", "PUT", f"/v3/webhooks/{ID_EXAMPLE}", id="update"
    ),
]


async def call(client: Client, method: str, path: str) -> Any:
    """Make the client call that *method* *path* stands for."""
    webhooks = client.webhooks
    match method, path:
        case "POST", "/v3/webhooks":
            request = CreateWebhookRequest(
                trigger_types=["message.created"],
                webhook_url="https://example.com/x",
            )
            return (await webhooks.create(request)).data
        case "POST", "/v3/webhooks/send-test-event":
            sent = await webhooks.send_test_event(
                "message.created", "https://example.com/x"
            )
            return sent.data
        case "POST", "/v3/webhooks/mock-payload":
            return (await webhooks.mock_payload("message.created")).data
        case "POST", _:
            return (await webhooks.rotate_secret(ID_EXAMPLE)).data
        case "GET", "/v3/webhooks":
            return (await webhooks.list()).data
        case "GET", _:
            return (await webhooks.find(ID_EXAMPLE)).data
        case "PUT", _:
            update = UpdateWebhookRequest(status="pause")
            return (await webhooks.update(ID_EXAMPLE, update)).data
        case "DELETE", _:
            return (await webhooks.destroy(ID_EXAMPLE)).data

    raise AssertionError(f"no call for {method} {path}")


def shown(value: Any, like: Any) -> Any:
    """The parts of a decoded *value* that the example *like* has, back
    in their JSON shape."""
    if isinstance(value, list):
        return [shown(v, w) for v, w in zip(value, like, strict=True)]
    if attrs.has(type(value)):
        raw = unstructure(value)
        return {k: raw.get(k) for k in like}

    return value


class TestExamples:
    @pytest.mark.parametrize(("component", "method", "path"), SUCCESS)
    async def test_success_example_decodes(
        self, spec: dict[str, Any], component: str, method: str, path: str
    ) -> None:
        """A reply made of the component's examples decodes, and every
        example value comes back unchanged."""
        data = reply_part(spec, component, "data", set())
        body = {"request_id": "example", "data": data}

        async with client_for({(method, path): replying(200, body)}) as c:
            decoded = await call(c, method, path)

        if component == "get_mock_payload_200":
            assert decoded == data["data"]
        else:
            assert shown(decoded, data) == data

    @pytest.mark.parametrize(("component", "method", "path"), ERRORS)
    async def test_error_schema_example_decodes(
        self, spec: dict[str, Any], component: str, method: str, path: str
    ) -> None:
        """An error made of the component's examples becomes the right
        exception with its type and message."""
        error = reply_part(spec, component, "error", set())

        routes = {(method, path): replying(400, {"error": error})}
        async with client_for(routes) as c:
            with pytest.raises(NylasApiError) as info:
                await call(c, method, path)

        assert info.value.type == error["type"]
        assert info.value.message == error["message"]
        assert isinstance(info.value, NotFoundError) is (
            error["type"] == "70000"
        )

    async def test_named_error_examples_decode(
        self, spec: dict[str, Any]
    ) -> None:
        """The named examples of the shared 400 reply become errors that
        keep type, message and provider_error."""
        media = spec["components"]["responses"]["400"]["content"]
        examples = media["application/json"]["examples"]
        assert examples

        for example in examples.values():
            body = example["value"]
            path = "/v3/webhooks/mock-payload"
            async with client_for({("POST", path): replying(400, body)}) as c:
                with pytest.raises(NylasApiError) as info:
                    await c.webhooks.mock_payload("message.created")

            assert info.value.type == body["error"]["type"]
            assert info.value.message == body["error"]["message"]
            assert info.value.nylas_request_id == body["request_id"]
            assert info.value.provider_error == body["error"].get(
                "provider_error"
            )

    async def test_request_examples_make_calls(
        self, spec: dict[str, Any]
    ) -> None:
        """The request schemas' examples make valid request objects and
        calls that the fake accepts."""
        schemas = spec["components"]["schemas"]

        def example(name: str) -> Any:
            return build(
                spec, schemas[name], ("components", "schemas", name), set()
            )

        create = example("destination_input_payload")
        update = example("destination_update_payload")
        mock = example("get_mock_payload_input")
        test_event = example("send_test_event_input")
        fake = FakeNylas(KEY)
        async with (
            FakeServer(fake) as server,
            Client(api_key=KEY, api_uri=server.url, rate_limit=None) as c,
        ):
            created = await c.webhooks.create(CreateWebhookRequest(**create))
            await c.webhooks.update(
                created.data.id, UpdateWebhookRequest(**update)
            )
            await c.webhooks.mock_payload(mock["trigger_type"])
        # The fake delivers test events to 127.0.0.1 only, so the
        # example URL goes to a stand-in that just says success.
        route = ("POST", "/v3/webhooks/send-test-event")
        async with client_for(
            {route: replying(200, {"data": "success"})}
        ) as c:
            sent = await c.webhooks.send_test_event(
                test_event["trigger_type"], test_event["webhook_url"]
            )

        assert unstructure(CreateWebhookRequest(**create)) == create
        assert update_body(UpdateWebhookRequest(**update)) == update
        assert sent.data == "success"

    def test_every_example_is_checked(self, spec: dict[str, Any]) -> None:
        """No example in the file escapes the tests above."""
        used: set[Pointer] = set()
        for param in SUCCESS:
            reply_part(spec, param.values[0], "data", used)
        for param in ERRORS:
            reply_part(spec, param.values[0], "error", used)
        media = spec["components"]["responses"]["400"]["content"]
        used |= {
            (
                "components",
                "responses",
                "400",
                "content",
                "application/json",
                "examples",
                name,
            )
            for name in media["application/json"]["examples"]
        }
        schemas = spec["components"]["schemas"]
        for name in (
            "destination_input_payload",
            "destination_update_payload",
            "get_mock_payload_input",
            "send_test_event_input",
        ):
            build(spec, schemas[name], ("components", "schemas", name), used)

        unchecked = set(all_examples(spec)) - used

        assert not unchecked, sorted(unchecked)
