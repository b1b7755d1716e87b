"""Client configuration and lifecycle."""

from __future__ import annotations

import aiohttp
import pytest
from aioresponses import aioresponses

from nylas_async import (
    EU_API_URI,
    US_API_URI,
    Client,
    ClientClosedError,
    RetryPolicy,
    Timeouts,
    UsageError,
)

from .conftest import API_KEY, API_URI

ROTATE = f"{API_URI}/v3/webhooks/rotate-secret/wh1"
OK = {"request_id": "r", "data": {"id": "wh1", "webhook_secret": "s"}}


class TestConfiguration:
    def test_key_from_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without api_key the key comes from NYLAS_API_KEY."""
        monkeypatch.setenv("NYLAS_API_KEY", "from-env")

        Client()

    def test_missing_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """No key anywhere is a clear error before any request."""
        monkeypatch.delenv("NYLAS_API_KEY", raising=False)

        with pytest.raises(UsageError, match="NYLAS_API_KEY"):
            Client()

    @pytest.mark.parametrize(
        "key",
        [
            pytest.param(" padded", id="space"),
            pytest.param("two\nlines", id="newline"),
            pytest.param("car\rreturn", id="carriage-return"),
            pytest.param("nul\x00byte", id="nul"),
            pytest.param("del\x7fchar", id="del"),
            pytest.param("clé", id="non-ascii"),
        ],
    )
    def test_malformed_key(self, key: str) -> None:
        """A key that would break the header is refused."""
        with pytest.raises(UsageError):
            Client(api_key=key)

    def test_default_region(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The US region is the default address."""
        monkeypatch.delenv("NYLAS_API_URI", raising=False)

        assert Client(api_key="k").api_uri == US_API_URI

    def test_uri_from_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """NYLAS_API_URI sets the address when none is passed."""
        monkeypatch.setenv("NYLAS_API_URI", "http://127.0.0.1:9/")

        assert Client(api_key="k").api_uri == "http://127.0.0.1:9"

    def test_eu_shortcut(self) -> None:
        """region="eu" selects the EU address."""
        assert Client(api_key="k", region="eu").api_uri == EU_API_URI

    @pytest.mark.parametrize(
        "kwargs",
        [
            pytest.param({"region": "mars"}, id="unknown-region"),
            pytest.param(
                {"region": "eu", "api_uri": US_API_URI}, id="uri-and-region"
            ),
            pytest.param({"api_uri": "ftp://x"}, id="scheme"),
            pytest.param({"api_uri": "nylas"}, id="no-host"),
            pytest.param({"rate_limit": 0}, id="zero-rate"),
            pytest.param({"rate_limit": float("inf")}, id="infinite-rate"),
            pytest.param({"api_uri": "http://h/b?x=1"}, id="query"),
            pytest.param({"api_uri": "http://h/b#f"}, id="fragment"),
            pytest.param({"api_uri": "http://u:p@h"}, id="user"),
            pytest.param({"api_uri": ""}, id="empty-uri"),
            pytest.param({"region": []}, id="region-list"),
            pytest.param({"timeouts": "x"}, id="timeouts-type"),
            pytest.param({"retry": "x"}, id="retry-type"),
            pytest.param({"session": "x"}, id="session-type"),
            pytest.param({"connection_limit": 0}, id="zero-connections"),
        ],
    )
    def test_bad_options(self, kwargs: dict[str, object]) -> None:
        """Options that cannot work raise UsageError at once."""
        with pytest.raises(UsageError):
            Client(api_key="k", **kwargs)  # type: ignore[arg-type]

    def test_default_rate_limit(self) -> None:
        """Pacing defaults to a little under Nylas's 50 per second."""
        assert 40 <= Client(api_key="k").rate_limit < 50  # type: ignore[operator]

    def test_pacing_off(self) -> None:
        """rate_limit=None turns pacing off."""
        assert Client(api_key="k", rate_limit=None).rate_limit is None

    def test_repr_hides_key(self) -> None:
        """The API key appears in no repr."""
        c = Client(api_key=API_KEY)

        assert API_KEY not in repr(c)
        assert API_KEY not in repr(c.__dict__)


class TestPolicies:
    @pytest.mark.parametrize(
        ("cls", "kwargs"),
        [
            pytest.param(RetryPolicy, {"attempts": 0}, id="no-attempts"),
            pytest.param(RetryPolicy, {"attempts": True}, id="bool-attempts"),
            pytest.param(RetryPolicy, {"initial": -1}, id="negative"),
            pytest.param(RetryPolicy, {"deadline": "5"}, id="string"),
            pytest.param(RetryPolicy, {"maximum": float("nan")}, id="nan"),
            pytest.param(RetryPolicy, {"testing": "yes"}, id="flag"),
            pytest.param(Timeouts, {"connect": 0}, id="zero-timeout"),
            pytest.param(Timeouts, {"attempt": float("inf")}, id="inf"),
        ],
    )
    def test_bad_values(
        self, cls: type[object], kwargs: dict[str, object]
    ) -> None:
        """Policies refuse values that cannot work with a UsageError."""
        with pytest.raises(UsageError):
            cls(**kwargs)


class TestPerCallPolicy:
    @pytest.mark.parametrize(
        "method",
        [
            pytest.param("rotate_secret", id="rotate"),
            pytest.param("find", id="find"),
            pytest.param("create", id="create"),
        ],
    )
    async def test_wrong_type(
        self, client: Client, mocked: aioresponses, method: str
    ) -> None:
        """A per-call retry that is no RetryPolicy is a UsageError."""
        from nylas_async import CreateWebhookRequest

        arg: object = "wh1"
        if method == "create":
            arg = CreateWebhookRequest(
                trigger_types=["message.created"],
                webhook_url="https://example.com/x",
            )

        with pytest.raises(UsageError):
            await getattr(client.webhooks, method)(arg, retry="x")

        assert mocked.requests == {}


class TestLifecycle:
    async def test_aclose_twice(self) -> None:
        """Closing twice is fine."""
        c = Client(api_key="k")

        await c.aclose()
        await c.aclose()

        assert c.closed

    async def test_use_after_close(self, mocked: aioresponses) -> None:
        """A call after close raises ClientClosedError, sending nothing."""
        c = Client(api_key="k", api_uri=API_URI)
        await c.aclose()

        with pytest.raises(ClientClosedError):
            await c.webhooks.rotate_secret("wh1")

        assert mocked.requests == {}

    async def test_enter_after_close(self) -> None:
        """A closed client cannot be entered again."""
        c = Client(api_key="k")
        await c.aclose()

        with pytest.raises(ClientClosedError):
            async with c:
                pass

    async def test_closed_error_is_a_usage_error(self) -> None:
        """ClientClosedError is also a UsageError and a RuntimeError."""
        assert issubclass(ClientClosedError, UsageError)
        assert issubclass(ClientClosedError, RuntimeError)

    async def test_callers_session_stays_open(
        self, mocked: aioresponses
    ) -> None:
        """A session passed in is used and never closed by the client."""
        mocked.post(ROTATE, payload=OK)

        async with aiohttp.ClientSession() as session:
            async with Client(
                api_key="k", api_uri=API_URI, session=session
            ) as c:
                await c.webhooks.rotate_secret("wh1")

            assert not session.closed

    async def test_own_session_closed(self, mocked: aioresponses) -> None:
        """The session the client made is closed by aclose."""
        mocked.post(ROTATE, payload=OK)
        c = Client(api_key="k", api_uri=API_URI, rate_limit=None)
        await c.webhooks.rotate_secret("wh1")
        session = c._transport._session
        assert session is not None

        await c.aclose()

        assert session.closed
