"""Signed deliveries from the fake Nylas to a webhook URL on loopback."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import yarl

#: The secret Nylas signs send-test-event deliveries with, whatever the
#: destination's own secret.
TEST_EVENT_SECRET: Final = "mock-webhook-secret"

#: Nylas gives a webhook URL this many seconds to answer a delivery.
DELIVERY_TIMEOUT: Final = 10.0

_DELIVERY_HOST: Final = "127.0.0.1"


def sign(body: bytes, secret: str) -> str:
    """The ``x-nylas-signature`` Nylas sends with *body*: the lowercase
    hex HMAC-SHA256 of the bytes, keyed with *secret* as UTF-8."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def encode_delivery(
    notification: Mapping[str, Any], *, secret: str, compressed: bool
) -> tuple[bytes, dict[str, str]]:
    """
    The body and headers of a delivery of *notification*.

    The body is compact JSON, gzip-compressed when *compressed*; the
    signature covers the bytes sent, compressed or not, as Nylas
    documents it.
    """
    body = json.dumps(notification, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if compressed:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    headers["X-Nylas-Signature"] = sign(body, secret)

    return body, headers


def check_loopback(webhook_url: str) -> yarl.URL:
    """
    *webhook_url* parsed, if it is an ``http://127.0.0.1`` URL.

    Raises:
        ValueError: any other URL; the fake never sends elsewhere.
    """
    try:
        url = yarl.URL(webhook_url)
    except (TypeError, ValueError):
        raise ValueError("the fake delivers only to http URLs") from None
    if url.scheme != "http" or url.host != _DELIVERY_HOST:
        raise ValueError(
            f"the fake delivers only to http://{_DELIVERY_HOST} URLs"
        )

    return url


async def deliver(
    webhook_url: str,
    *,
    notification: Mapping[str, Any],
    secret: str,
    compressed: bool = False,
    answer_within: float = DELIVERY_TIMEOUT,
) -> int:
    """
    POST *notification* to *webhook_url* as Nylas would, signed with
    *secret*, and return the HTTP status the receiver answered.

    Raises:
        ValueError: *webhook_url* is not an ``http://127.0.0.1`` URL.
        ConnectionError: the receiver could not be reached.
        TimeoutError: no answer within *answer_within* seconds (10 by
            default, as Nylas allows).
    """
    url = check_loopback(webhook_url)
    body, headers = encode_delivery(
        notification, secret=secret, compressed=compressed
    )

    client_timeout = aiohttp.ClientTimeout(total=answer_within)
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response,
        ):
            await response.read()
            return response.status
    except TimeoutError:
        raise TimeoutError(
            f"no answer from the webhook URL within {answer_within:g} s"
        ) from None
    except aiohttp.ClientError as exc:
        raise ConnectionError(
            f"could not deliver to the webhook URL: {exc}"
        ) from exc
