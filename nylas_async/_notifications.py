"""
The notifications Nylas delivers to a webhook URL, and their decoding.

Nylas keeps adding trigger types and fields, so decoding asks only for
what a receiver cannot do without (``id``, ``type`` and the object in
``data``); every other field is optional, and one of an unexpected type
decodes as ``None`` rather than refusing a delivery that Nylas would
then retry for days.  The whole payload stays available as ``raw``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import attrs

from ._errors import InvalidNotificationError
from ._signature import (
    MAX_BODY_SIZE,
    Body,
    Headers,
    check_size,
    gunzip,
    is_gzip,
    looks_gzipped,
    raw_bytes,
)

T = TypeVar("T")

_TRUNCATED_SUFFIX: Final = ".truncated"


@attrs.frozen(kw_only=True)
class NotificationData:
    """
    The ``data`` of a notification.

    *object* is the object the notification is about (a message, an
    event, a grant...) as the JSON mapping Nylas sent; it is left out
    of ``repr()`` because it holds the user's data.
    """

    application_id: str | None = None
    object: Mapping[str, Any] = attrs.field(
        factory=dict, repr=False, hash=False
    )


@attrs.frozen(kw_only=True)
class Notification:
    """
    One notification, as delivered to a webhook URL.

    *type* is the trigger type as Nylas sent it, known or not
    (``message.created``, ``message.created.truncated``...).  *time* is
    an aware UTC datetime, *webhook_delivery_attempt* counts from 1.
    Optional fields are ``None`` when absent or of an unexpected type;
    *raw* holds the whole decoded payload, unknown fields included.
    """

    id: str
    type: str
    data: NotificationData
    specversion: str | None = None
    source: str | None = None
    time: dt.datetime | None = None
    webhook_delivery_attempt: int | None = None
    raw: Mapping[str, Any] = attrs.field(
        factory=dict, repr=False, eq=False, hash=False
    )

    @property
    def truncated(self) -> bool:
        """
        Whether Nylas left parts of the object out because it was over
        1 MB (a ``.truncated`` trigger type); fetch it to get it whole.
        """
        return self.type.endswith(_TRUNCATED_SUFFIX)


def parse_notification(
    *,
    body: Body,
    headers: Headers | None = None,
    max_size: int = MAX_BODY_SIZE,
) -> Notification:
    """
    Decode a delivery's body into a `Notification`.

    Check the signature first (`verify_request`): this trusts the body.
    When *headers* say ``Content-Encoding: gzip`` and the body is still
    gzip, it is inflated here, up to *max_size* bytes (4 MiB by
    default).

    Raises:
        InvalidNotificationError: corrupt gzip, a body that is not a
            JSON object, or a notification without a string ``id`` or
            ``type`` or without an object in ``data.object``; its
            *problems* name each one.
        RawBodyError: *body* is not bytes.
        UsageError: *max_size* is not a positive integer.
    """
    raw = raw_bytes(body)
    check_size(max_size)
    if headers is not None and is_gzip(headers) and looks_gzipped(raw):
        raw = gunzip(raw, max_size)

    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidNotificationError(
            "the body is not JSON", problems=[("body", "not JSON")]
        ) from None

    return decode_notification(payload)


def decode_notification(payload: object) -> Notification:
    """
    Build a `Notification` from a decoded JSON *payload*.

    Raises `InvalidNotificationError` naming every missing or unusable
    required field.
    """
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        raise InvalidNotificationError(
            "the body is not a notification",
            problems=[("body", f"expected an object, got {kind}")],
        )

    problems: list[tuple[str, str]] = []
    notification_id = _required_str(payload, "id", "id", problems)
    trigger = _required_str(payload, "type", "type", problems)
    data = payload.get("data")
    if not isinstance(data, dict):
        problems.append(("data", _wrong(data, "an object")))
        data = {}
    obj = data.get("object")
    if not isinstance(obj, dict):
        problems.append(("data.object", _wrong(obj, "an object")))
    if notification_id is None or trigger is None or not isinstance(obj, dict):
        raise InvalidNotificationError(
            "the body is not a notification", problems=problems
        )

    return Notification(
        id=notification_id,
        type=trigger,
        data=NotificationData(
            application_id=_optional(data, "application_id", str),
            object=obj,
        ),
        specversion=_optional(payload, "specversion", str),
        source=_optional(payload, "source", str),
        time=_timestamp(payload.get("time")),
        webhook_delivery_attempt=_optional(
            payload, "webhook_delivery_attempt", int
        ),
        raw=payload,
    )


def _required_str(
    payload: Mapping[str, Any],
    key: str,
    path: str,
    problems: list[tuple[str, str]],
) -> str | None:
    value = payload.get(key)
    if isinstance(value, str) and value:
        return value

    problems.append((path, _wrong(value, "a non-empty string")))
    return None


def _wrong(value: object, expected: str) -> str:
    if value is None:
        return "missing"

    return f"expected {expected}, got {type(value).__name__}"


def _optional(payload: Mapping[str, Any], key: str, kind: type[T]) -> T | None:
    value = payload.get(key)
    if isinstance(value, bool) and kind is not bool:
        return None

    return value if isinstance(value, kind) else None


def _timestamp(value: object) -> dt.datetime | None:
    """Unix seconds as an aware UTC datetime; ``None`` for anything
    else, or for a number no datetime can hold."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
