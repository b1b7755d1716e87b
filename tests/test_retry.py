"""Request shape, retry rules and error mapping, against aioresponses."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import logging
import uuid
from typing import Any

import aiohttp
import pytest
import tenacity
from aioresponses import aioresponses
from yarl import URL

from nylas_async import (
    AuthenticationError,
    Client,
    DecodeError,
    InvalidWebhookIdError,
    NotFoundError,
    NylasApiError,
    NylasConnectionError,
    NylasError,
    NylasTimeoutError,
    RateLimitedError,
    RetryPolicy,
    SecretStateUnknownError,
    ServerError,
)
from nylas_async._http import parse_retry_after

from .conftest import API_KEY, API_URI

WID = "UMWjAjMeWQ4D8gYF2moonK4486"
ROTATE = f"{API_URI}/v3/webhooks/rotate-secret/{WID}"
GET = f"{API_URI}/v3/webhooks/{WID}"
SECRET = "41dD3-nXTUfebYuk81Gr"
ROTATED = {
    "request_id": "nylas-req-1",
    "data": {"id": WID, "webhook_secret": SECRET, "status": "active"},
}
FOUND = {"request_id": "nylas-req-2", "data": {"id": WID}}
HTML_502 = "<html><body><h1>502 Bad Gateway</h1></body></html>"


def calls(m: aioresponses, method: str, url: str) -> list[Any]:
    """Return the recorded calls to *url*, in order."""
    return list(m.requests.get((method, URL(url)), []))


def headers_of(m: aioresponses, method: str, url: str) -> list[Any]:
    return [c.kwargs["headers"] for c in calls(m, method, url)]


class TestRequestShape:
    async def test_rotate_request(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """Rotate is a POST to the documented path with auth and ids."""
        mocked.post(ROTATE, payload=ROTATED)

        await client.webhooks.rotate_secret(WID)

        [h] = headers_of(mocked, "POST", ROTATE)
        assert h["Authorization"] == f"Bearer {API_KEY}"
        assert h["Accept"] == "application/json"
        assert uuid.UUID(h["X-Request-ID"])
        assert h["X-Request-Attempt"] == "1"
        assert calls(mocked, "POST", ROTATE)[0].kwargs["data"] is None

    async def test_same_id_on_retries(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """Every attempt of one call sends the same X-Request-ID."""
        mocked.post(ROTATE, status=429)
        mocked.post(ROTATE, status=429)
        mocked.post(ROTATE, payload=ROTATED)

        r = await client.webhooks.rotate_secret(WID)

        sent = headers_of(mocked, "POST", ROTATE)
        assert len(sent) == 3
        assert {h["X-Request-ID"] for h in sent} == {r.client_request_id}
        assert [h["X-Request-Attempt"] for h in sent] == ["1", "2", "3"]

    async def test_new_id_per_call(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """Two calls get two different client request ids."""
        mocked.get(GET, payload=FOUND, repeat=True)

        a = await client.webhooks.find(WID)
        b = await client.webhooks.find(WID)

        assert a.client_request_id != b.client_request_id

    async def test_ids_captured(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """The body's request_id and the x-fastly-id header are kept."""
        mocked.post(ROTATE, payload=ROTATED, headers={"x-fastly-id": "flow-9"})

        r = await client.webhooks.rotate_secret(WID)

        assert r.request_id == "nylas-req-1"
        assert r.fastly_id == "flow-9"
        assert r.data.webhook_secret == SECRET

    async def test_request_id_from_header(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """Without a body request_id, x-request-id is used."""
        mocked.get(
            GET, payload={"data": {"id": WID}}, headers={"x-request-id": "h"}
        )

        r = await client.webhooks.find(WID)

        assert r.request_id == "h"

    @pytest.mark.parametrize(
        "bad",
        [
            pytest.param("", id="empty"),
            pytest.param("a/b", id="slash"),
            pytest.param("../x", id="dots"),
            pytest.param("has space", id="space"),
            pytest.param("x" * 300, id="long"),
            pytest.param(123, id="int"),
        ],
    )
    async def test_malformed_id(
        self, client: Client, mocked: aioresponses, bad: Any
    ) -> None:
        """A malformed id is refused before any request."""
        with pytest.raises(InvalidWebhookIdError):
            await client.webhooks.rotate_secret(bad)

        assert mocked.requests == {}


class TestRetryRules:
    @pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
    async def test_transient_statuses_retried(
        self, client: Client, mocked: aioresponses, status: int
    ) -> None:
        """Each transient status is retried and the call then succeeds."""
        mocked.get(GET, status=status, body="busy")
        mocked.get(GET, payload=FOUND)

        r = await client.webhooks.find(WID)

        assert len(calls(mocked, "GET", GET)) == 2
        assert [a.outcome for a in r.attempts] == [str(status), "200"]
        assert r.attempts[0].reason == f"status {status}"

    @pytest.mark.parametrize(
        ("status", "error"),
        [
            pytest.param(400, NylasApiError, id="400"),
            pytest.param(401, AuthenticationError, id="401"),
            pytest.param(403, AuthenticationError, id="403"),
            pytest.param(404, NotFoundError, id="404"),
            pytest.param(409, NylasApiError, id="409"),
            pytest.param(422, NylasApiError, id="422"),
        ],
    )
    async def test_other_4xx_not_retried(
        self,
        client: Client,
        mocked: aioresponses,
        status: int,
        error: type[NylasApiError],
    ) -> None:
        """Other client errors end the call after one attempt."""
        mocked.get(GET, status=status, payload={"error": {"type": "x"}})
        mocked.get(GET, payload=FOUND)

        with pytest.raises(error) as info:
            await client.webhooks.find(WID)

        assert info.value.status == status
        assert info.value.attempt_count == 1
        assert len(calls(mocked, "GET", GET)) == 1

    async def test_not_found_70000(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """Nylas's documented 400 with type 70000 is NotFoundError."""
        mocked.post(
            ROTATE,
            status=400,
            payload={
                "request_id": "r-404",
                "error": {
                    "type": "70000",
                    "message": "destination.id.not.found : record not found",
                },
            },
        )

        with pytest.raises(NotFoundError) as info:
            await client.webhooks.rotate_secret(WID)

        e = info.value
        assert (e.status, e.type) == (400, "70000")
        assert e.nylas_request_id == "r-404"
        assert "record not found" in str(e)
        assert isinstance(e, LookupError)

    async def test_attempts_exhausted(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """The last real error comes back with the attempt count."""
        mocked.get(GET, status=503, body="x", repeat=True)

        with pytest.raises(ServerError) as info:
            await client.webhooks.find(WID)

        assert info.value.attempt_count == client.retry.attempts
        assert len(calls(mocked, "GET", GET)) == client.retry.attempts
        assert not isinstance(info.value, tenacity.RetryError)

    async def test_backoff_grows_with_jitter(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """Waits stay under the doubling bound and the cap."""
        mocked.get(GET, status=500, body="x", repeat=True)

        with pytest.raises(ServerError) as info:
            await client.webhooks.find(WID)

        policy = client.retry
        waits = [a.wait for a in info.value.attempts[:-1]]
        for n, wait in enumerate(waits):
            assert wait is not None
            bound = min(policy.maximum, policy.initial * 2**n)
            assert 0 <= wait <= bound
        assert info.value.attempts[-1].wait is None

    async def test_single_attempt_policy(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A per-call policy of one attempt turns retries off."""
        mocked.get(GET, status=503, body="x")
        mocked.get(GET, payload=FOUND)

        with pytest.raises(ServerError):
            await client.webhooks.find(WID, retry=RetryPolicy.no_retries())

        assert len(calls(mocked, "GET", GET)) == 1

    async def test_connection_failure_retried(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A dropped connection is retried."""
        mocked.get(GET, exception=aiohttp.ServerDisconnectedError())
        mocked.get(GET, payload=FOUND)

        r = await client.webhooks.find(WID)

        assert [a.outcome for a in r.attempts] == ["connection dropped", "200"]

    async def test_timeout_error_kinds(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A timeout that persists is a NylasTimeoutError and TimeoutError."""
        mocked.get(GET, exception=TimeoutError(), repeat=True)

        with pytest.raises(NylasTimeoutError) as info:
            await client.webhooks.find(WID)

        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value.__cause__, asyncio.TimeoutError)
        assert info.value.attempt_count == client.retry.attempts

    async def test_connection_error_kind(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A connection error is a NylasConnectionError and a builtin one."""
        mocked.get(GET, exception=aiohttp.ClientOSError(), repeat=True)

        with pytest.raises(NylasConnectionError) as info:
            await client.webhooks.find(WID)

        assert isinstance(info.value, ConnectionError)


class TestRetryAfter:
    async def test_seconds(self, client: Client, mocked: aioresponses) -> None:
        """Retry-After in seconds sets the wait."""
        mocked.get(GET, status=429, headers={"Retry-After": "7"})
        mocked.get(GET, payload=FOUND)

        r = await client.webhooks.find(WID)

        assert r.attempts[0].wait == 7.0

    async def test_http_date(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """Retry-After as an HTTP date sets the wait to the time left."""
        when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=12)
        date = email.utils.format_datetime(when, usegmt=True)
        mocked.get(GET, status=429, headers={"Retry-After": date})
        mocked.get(GET, payload=FOUND)

        r = await client.webhooks.find(WID)

        wait = r.attempts[0].wait
        assert wait is not None
        assert 9 <= wait <= 12

    async def test_above_cap_ends_retries(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A Retry-After above the cap ends retries with the value."""
        mocked.get(GET, status=429, headers={"Retry-After": "3600"})
        mocked.get(GET, payload=FOUND)

        with pytest.raises(RateLimitedError) as info:
            await client.webhooks.find(WID)

        assert info.value.retry_after == 3600
        assert len(calls(mocked, "GET", GET)) == 1

    async def test_deadline_not_overrun(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A wait that would pass the call's deadline is not taken."""
        mocked.get(GET, status=429, headers={"Retry-After": "20"})
        mocked.get(GET, payload=FOUND)
        policy = RetryPolicy(testing=True, deadline=10)

        with pytest.raises(RateLimitedError):
            await client.webhooks.find(WID, retry=policy)

        assert len(calls(mocked, "GET", GET)) == 1

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            pytest.param("3", 3.0, id="int"),
            pytest.param(" 1.5 ", 1.5, id="float"),
            pytest.param("-4", 0.0, id="negative"),
            pytest.param("Wed, 21 Oct 2015 07:28:00 GMT", 0.0, id="past"),
            pytest.param("soon", None, id="garbage"),
            pytest.param("nan", None, id="nan"),
            pytest.param(None, None, id="absent"),
        ],
    )
    def test_parse(self, value: str | None, expected: float | None) -> None:
        """Both forms parse; nonsense gives None."""
        assert parse_retry_after(value) == expected


class TestHostileBodies:
    async def test_html_502(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A gateway's HTML page is a ServerError with an excerpt."""
        mocked.get(
            GET,
            status=502,
            body=HTML_502,
            content_type="text/html",
            repeat=True,
        )

        with pytest.raises(ServerError) as info:
            await client.webhooks.find(WID)

        e = info.value
        assert e.status == 502
        assert e.type is None
        assert e.body_excerpt is not None
        assert "502 Bad Gateway" in e.body_excerpt
        assert e.nylas_request_id is None

    async def test_error_without_request_id(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """An error body without request_id still maps cleanly."""
        mocked.get(
            GET,
            status=401,
            payload={"error": {"type": "api.authentication_error"}},
        )

        with pytest.raises(AuthenticationError) as info:
            await client.webhooks.find(WID)

        assert info.value.nylas_request_id is None
        assert info.value.type == "api.authentication_error"

    async def test_200_not_json(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A 200 whose body is not JSON is a DecodeError after retries."""
        mocked.get(
            GET,
            status=200,
            body="<html>oops</html>",
            content_type="text/html",
            repeat=True,
        )

        with pytest.raises(DecodeError) as info:
            await client.webhooks.find(WID)

        assert info.value.body_excerpt == "<html>oops</html>"
        assert info.value.attempt_count == client.retry.attempts

    async def test_truncated_json(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A truncated body is retried like other garbled replies."""
        mocked.get(GET, status=200, body='{"data": {"id": "ab')
        mocked.get(GET, payload=FOUND)

        r = await client.webhooks.find(WID)

        assert r.data.id == WID

    async def test_json_labelled_text(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A JSON body labelled text/plain decodes."""
        mocked.get(
            GET,
            body=json.dumps({"request_id": "t", "data": {"id": WID}}),
            content_type="text/plain",
        )

        r = await client.webhooks.find(WID)

        assert r.data.id == WID

    async def test_unknown_trigger_type(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """An unknown trigger type decodes unchanged."""
        data = {"id": WID, "trigger_types": ["notetaker.brand_new"]}
        mocked.get(GET, payload={"data": data})

        r = await client.webhooks.find(WID)

        assert r.data.trigger_types == ("notetaker.brand_new",)

    async def test_missing_optional_field(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A reply without optional fields decodes with defaults."""
        mocked.get(GET, payload={"data": {"id": WID}})

        r = await client.webhooks.find(WID)

        assert r.data.description is None
        assert r.data.created_at is None

    async def test_missing_id(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A missing id is a DecodeError naming it, with the request id."""
        mocked.get(GET, payload={"request_id": "rq", "data": {"status": 3}})

        with pytest.raises(DecodeError) as info:
            await client.webhooks.find(WID)

        e = info.value
        assert dict(e.problems) == {
            "data.id": "missing",
            "data.status": "expected a string, got int",
        }
        assert e.nylas_request_id == "rq"
        assert "data.id" in str(e)
        assert "rq" in str(e)

    async def test_missing_data(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A reply without data is a DecodeError, not retried."""
        mocked.get(GET, payload={"request_id": "rq"})

        with pytest.raises(DecodeError) as info:
            await client.webhooks.find(WID)

        assert info.value.problems == (("data", "missing"),)

    async def test_json_array_body(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A top-level array is a DecodeError, not a crash."""
        mocked.get(GET, body="[1, 2]")

        with pytest.raises(DecodeError):
            await client.webhooks.find(WID)


class TestLostRotation:
    async def test_rotates_again_after_5xx(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """After a 5xx the rotation is repeated and its secret returned."""
        mocked.post(ROTATE, status=500, payload={"error": {"type": "e"}})
        mocked.post(ROTATE, payload=ROTATED)

        r = await client.webhooks.rotate_secret(WID)

        assert r.data.webhook_secret == SECRET
        assert len(calls(mocked, "POST", ROTATE)) == 2

    async def test_unknown_after_attempts_run_out(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """Lost replies until the end raise SecretStateUnknownError."""
        mocked.post(
            ROTATE, exception=aiohttp.ServerDisconnectedError(), repeat=True
        )

        with pytest.raises(SecretStateUnknownError) as info:
            await client.webhooks.rotate_secret(WID)

        e = info.value
        assert e.webhook_id == WID
        assert "rotate it again" in str(e)
        assert e.attempt_count == client.retry.attempts
        assert isinstance(e.__cause__, NylasConnectionError)
        assert e.client_request_id != ""

    async def test_unknown_at_once_when_rotate_again_off(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """With rotate_again off, the first lost reply raises at once."""
        mocked.post(ROTATE, exception=TimeoutError())
        mocked.post(ROTATE, payload=ROTATED)
        policy = RetryPolicy(testing=True, rotate_again=False)

        with pytest.raises(SecretStateUnknownError):
            await client.webhooks.rotate_secret(WID, retry=policy)

        assert len(calls(mocked, "POST", ROTATE)) == 1

    async def test_unknown_with_a_single_attempt(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """With retries off, a lost rotation reply is still unknown."""
        mocked.post(ROTATE, exception=aiohttp.ServerDisconnectedError())

        with pytest.raises(SecretStateUnknownError):
            await client.webhooks.rotate_secret(
                WID, retry=RetryPolicy.no_retries()
            )

        assert len(calls(mocked, "POST", ROTATE)) == 1

    async def test_damaged_reply_excerpt_hides_the_secret(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A cut-off rotate reply keeps no part of the secret anywhere."""
        body = '{"data": {"id": "x", "webhook_secret": "' + SECRET[:12]
        mocked.post(ROTATE, body=body, repeat=True)

        with pytest.raises(SecretStateUnknownError) as info:
            await client.webhooks.rotate_secret(WID)

        cause = info.value.__cause__
        assert isinstance(cause, DecodeError)
        assert cause.body_excerpt is not None
        assert "webhook_secret" in cause.body_excerpt
        assert SECRET[:12] not in cause.body_excerpt
        assert SECRET[:12] not in str(cause)

    async def test_429_is_not_ambiguous(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A 429 acted on nothing, so running out of attempts is plain."""
        mocked.post(ROTATE, status=429, repeat=True)

        with pytest.raises(RateLimitedError):
            await client.webhooks.rotate_secret(WID)

    async def test_rate_limit_after_loss_stays_unknown(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A lost reply followed by 429s still ends as unknown."""
        mocked.post(ROTATE, status=502, body=HTML_502)
        mocked.post(ROTATE, status=429, repeat=True)

        with pytest.raises(SecretStateUnknownError) as info:
            await client.webhooks.rotate_secret(WID)

        assert isinstance(info.value.__cause__, RateLimitedError)

    async def test_refused_connection_retried_without_ambiguity(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A refused connection never sent the rotation: plain error."""
        from aiohttp.client_reqrep import ConnectionKey

        key = ConnectionKey("h", 1, False, True, None, None, None)
        refused = aiohttp.ClientConnectorError(key, OSError(111, "refused"))
        mocked.post(ROTATE, exception=refused, repeat=True)

        with pytest.raises(NylasConnectionError) as info:
            await client.webhooks.rotate_secret(WID)

        assert not isinstance(info.value, SecretStateUnknownError)

    async def test_reply_without_secret(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A 200 rotate reply without a secret leaves the state unknown."""
        mocked.post(ROTATE, payload={"data": {"id": WID}})

        with pytest.raises(SecretStateUnknownError) as info:
            await client.webhooks.rotate_secret(WID)

        assert isinstance(info.value.__cause__, DecodeError)

    async def test_garbled_rotate_reply_rotates_again(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """A truncated 200 to a rotation is followed by another."""
        mocked.post(ROTATE, body='{"data": {"id": "x", "webhook_se')
        mocked.post(ROTATE, payload=ROTATED)

        r = await client.webhooks.rotate_secret(WID)

        assert r.data.webhook_secret == SECRET
        assert len(calls(mocked, "POST", ROTATE)) == 2


class TestSecrecy:
    async def test_no_secret_or_key_in_logs(
        self,
        client: Client,
        mocked: aioresponses,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Neither the new secret nor the API key reaches a log record."""
        caplog.set_level(logging.DEBUG, logger="nylas_async")
        mocked.post(ROTATE, status=503, body="x")
        mocked.post(ROTATE, payload=ROTATED)

        r = await client.webhooks.rotate_secret(WID)

        text = "\n".join(
            f"{rec.getMessage()} {rec.__dict__}" for rec in caplog.records
        )
        assert SECRET not in text
        assert API_KEY not in text
        assert SECRET not in repr(r)

    async def test_one_info_per_exchange_and_warning_per_retry(
        self,
        client: Client,
        mocked: aioresponses,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Each exchange logs one INFO line, each retry one WARNING."""
        caplog.set_level(logging.INFO, logger="nylas_async")
        mocked.post(ROTATE, status=503, body="x")
        mocked.post(ROTATE, payload=ROTATED)

        r = await client.webhooks.rotate_secret(WID)

        levels = [rec.levelname for rec in caplog.records]
        assert levels == ["INFO", "WARNING", "INFO"]
        assert all(
            r.client_request_id in rec.getMessage() for rec in caplog.records
        )

    async def test_error_text_has_no_key(
        self, client: Client, mocked: aioresponses
    ) -> None:
        """Error text names the call and ids but never the key."""
        mocked.post(ROTATE, status=401, payload={"error": {"type": "a"}})

        with pytest.raises(NylasError) as info:
            await client.webhooks.rotate_secret(WID)

        assert API_KEY not in str(info.value)
        assert API_KEY not in repr(info.value)
        assert ROTATE.removeprefix(API_URI) in str(info.value)
