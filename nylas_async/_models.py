"""
The values Nylas returns, as frozen attrs classes, and their decoding.

Nylas keeps adding fields, destination statuses and trigger types, and
the official SDKs broke each time because they modelled them as closed
sets.  Here unknown keys are ignored, and statuses and trigger types are
the plain strings Nylas sent, so a new value round-trips unchanged; the
enums only name the values known today.
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Final, Generic, TypeVar

import attrs
import cattrs

from ._errors import Attempt, UsageError

T = TypeVar("T")


class WebhookStatus(enum.StrEnum):
    """
    The destination statuses Nylas documents today.

    Decoded statuses are plain strings, so a status Nylas adds later
    decodes and round-trips unchanged; members compare equal to them.
    """

    ACTIVE = "active"
    PAUSE = "pause"
    FAILING = "failing"
    FAILED = "failed"


class TriggerType(enum.StrEnum):
    """
    Common trigger types, for convenience when creating destinations.

    The list is open: any string Nylas accepts may be used, and decoded
    trigger types are plain strings whatever their value.
    """

    CALENDAR_CREATED = "calendar.created"
    CALENDAR_UPDATED = "calendar.updated"
    CALENDAR_DELETED = "calendar.deleted"
    CONTACT_UPDATED = "contact.updated"
    CONTACT_DELETED = "contact.deleted"
    EVENT_CREATED = "event.created"
    EVENT_UPDATED = "event.updated"
    EVENT_DELETED = "event.deleted"
    FOLDER_CREATED = "folder.created"
    FOLDER_UPDATED = "folder.updated"
    FOLDER_DELETED = "folder.deleted"
    GRANT_CREATED = "grant.created"
    GRANT_UPDATED = "grant.updated"
    GRANT_DELETED = "grant.deleted"
    GRANT_EXPIRED = "grant.expired"
    MESSAGE_CREATED = "message.created"
    MESSAGE_UPDATED = "message.updated"
    MESSAGE_SEND_SUCCESS = "message.send_success"
    MESSAGE_SEND_FAILED = "message.send_failed"
    MESSAGE_BOUNCE_DETECTED = "message.bounce_detected"
    MESSAGE_OPENED = "message.opened"
    MESSAGE_LINK_CLICKED = "message.link_clicked"
    THREAD_REPLIED = "thread.replied"


def _to_datetime(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def _to_unix(value: dt.datetime) -> int:
    return int(value.timestamp())


@attrs.frozen(kw_only=True)
class Webhook:
    """
    A webhook destination as Nylas returns it from get, list and update.

    Every field but *id* is optional, because replies differ in what
    they carry.  Timestamps are aware UTC datetimes.
    """

    id: str
    description: str | None = None
    trigger_types: tuple[str, ...] = ()
    webhook_url: str | None = None
    status: str | None = None
    notification_email_addresses: tuple[str, ...] | None = None
    compressed_delivery: bool | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    status_updated_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class WebhookWithSecret(Webhook):
    """
    A destination with its signing secret, from create and rotate.

    *webhook_secret* is left out of ``repr()`` and ``str()`` so that it
    cannot reach a log line by accident; read the attribute to use it.
    """

    webhook_secret: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class WebhookPage:
    """
    One page of destinations, from `Webhooks.pages`.

    *next_cursor* is the ``page_token`` of the next page, or ``None``
    on the last one.
    """

    webhooks: tuple[Webhook, ...]
    next_cursor: str | None = None


@attrs.frozen(kw_only=True)
class WebhookDeleteResult:
    """
    What deleting a destination came to.

    *status* is Nylas's word for it, ``"success"``.  *already_gone* is
    true when a reply was lost and the retry found the destination
    gone: it was most likely deleted by the attempt whose reply was
    lost, and it does not exist now either way.
    """

    status: str | None = None
    already_gone: bool = False


@attrs.frozen(kw_only=True)
class WebhookIpAddresses:
    """
    The addresses Nylas sends notifications from.

    *updated_at* is when Nylas last changed the list, an aware UTC
    datetime, or ``None`` when the reply lacks it.
    """

    ip_addresses: tuple[str, ...] = ()
    updated_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class Response(Generic[T]):
    """
    A decoded reply and the ids that identify the call.

    *data* is the decoded payload.  *request_id* is Nylas's id from the
    body, or from ``x-request-id`` when the body lacks one;
    *client_request_id* is the id this client sent as ``X-Request-ID``;
    *fastly_id* is the ``x-fastly-id`` flow id that Nylas support asks
    for.  *attempts* holds every HTTP attempt the call made.
    """

    data: T
    request_id: str | None
    client_request_id: str
    fastly_id: str | None = None
    attempts: tuple[Attempt, ...] = ()


def _string_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise UsageError("expected a list of strings")
    items = tuple(value)
    if not all(isinstance(v, str) and v for v in items):
        raise UsageError("expected a list of non-empty strings")

    return items


def _optional_string_tuple(value: Any) -> tuple[str, ...] | None:
    return None if value is None else _string_tuple(value)


def _not_empty(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value:
        raise UsageError(f"{attribute.name} must not be empty")


def check_http_url(value: object) -> str:
    """Return *value* if it is an http(s) URL; raise `UsageError` if not."""
    if not isinstance(value, str) or not value.startswith(
        ("https://", "http://")
    ):
        raise UsageError("webhook_url must be an http(s) URL")

    return value


@attrs.frozen(kw_only=True)
class CreateWebhookRequest:
    """
    What a new destination should be.

    *trigger_types* and *webhook_url* are required; Nylas sends a
    challenge request to *webhook_url* and refuses the destination if
    it is not answered.  Invalid values raise `UsageError` here, before
    any request.
    """

    trigger_types: tuple[str, ...] = attrs.field(
        converter=_string_tuple, validator=_not_empty
    )
    webhook_url: str = attrs.field(converter=check_http_url)
    description: str | None = None
    notification_email_addresses: tuple[str, ...] | None = attrs.field(
        default=None, converter=_optional_string_tuple
    )
    compressed_delivery: bool | None = None


class _Unset(enum.Enum):
    """The type of `UNSET`, telling "not given" from ``None``."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: The default of every `UpdateWebhookRequest` field: leave it alone.
UNSET: Final = _Unset.UNSET

_UPDATE_STATUSES: Final = ("active", "pause")


def _update_status(value: Any) -> str | _Unset:
    if isinstance(value, _Unset):
        return value
    if not isinstance(value, str) or value not in _UPDATE_STATUSES:
        raise UsageError(
            f"status must be 'active' or 'pause', not {value!r}; Nylas "
            "sets 'failing' and 'failed' itself"
        )

    return str(value)


def _update_trigger_types(value: Any) -> tuple[str, ...] | _Unset:
    if isinstance(value, _Unset):
        return value
    if value is None:
        raise UsageError("trigger_types must be a list, not None")
    items = _string_tuple(value)
    if not items:
        raise UsageError("trigger_types must not be empty")

    return items


def _update_url(value: Any) -> str | _Unset:
    if isinstance(value, _Unset):
        return value

    return check_http_url(value)


def _update_description(value: Any) -> str | _Unset | None:
    if value is None or isinstance(value, str | _Unset):
        return value
    raise UsageError("description must be a string or None")


def _update_emails(value: Any) -> tuple[str, ...] | _Unset | None:
    if isinstance(value, _Unset):
        return value

    return _optional_string_tuple(value)


def _update_flag(value: Any) -> bool | _Unset:
    if isinstance(value, bool | _Unset):
        return value
    raise UsageError("compressed_delivery must be True or False")


@attrs.frozen(kw_only=True)
class UpdateWebhookRequest:
    """
    The changes to make to a destination.

    Only the fields given are sent; the others keep their value on
    Nylas's side.  At least one field is required.  *status* may be
    ``"active"`` or ``"pause"`` only (Nylas sets ``failing`` and
    ``failed`` itself).  *description* and
    *notification_email_addresses* may be ``None``, which is sent as
    JSON ``null``.  Invalid values raise `UsageError` here, before any
    request.
    """

    description: str | _Unset | None = attrs.field(
        default=UNSET, converter=_update_description
    )
    trigger_types: tuple[str, ...] | _Unset = attrs.field(
        default=UNSET, converter=_update_trigger_types
    )
    webhook_url: str | _Unset = attrs.field(
        default=UNSET, converter=_update_url
    )
    notification_email_addresses: tuple[str, ...] | _Unset | None = (
        attrs.field(default=UNSET, converter=_update_emails)
    )
    compressed_delivery: bool | _Unset = attrs.field(
        default=UNSET, converter=_update_flag
    )
    status: str | _Unset = attrs.field(default=UNSET, converter=_update_status)

    def __attrs_post_init__(self) -> None:
        if not update_body(self):
            raise UsageError("an update needs at least one field to change")


def update_body(request: UpdateWebhookRequest) -> dict[str, Any]:
    """The JSON body of *request*: the fields given, ``None`` as null."""
    body: dict[str, Any] = {}
    for field in attrs.fields(UpdateWebhookRequest):
        value = getattr(request, field.name)
        if value is UNSET:
            continue
        body[field.name] = list(value) if isinstance(value, tuple) else value

    return body


def _strict(kind: type[Any], name: str) -> Any:
    def structure(value: Any, _: Any) -> Any:
        if type(value) is not kind and not (
            kind is float and type(value) is int
        ):
            raise TypeError(f"expected {name}, got {type(value).__name__}")
        return value

    return structure


def _structure_str_list(value: Any, _: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    bad = [i for i, v in enumerate(value) if not isinstance(v, str)]
    if bad:
        raise TypeError(f"expected strings, item {bad[0]} is not")

    return tuple(value)


def _structure_timestamp(value: Any, _: Any) -> dt.datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected Unix seconds, got {type(value).__name__}")

    return _to_datetime(value)


def _is_optional(kind: Any) -> bool:
    args = typing.get_args(kind)
    origin = typing.get_origin(kind)

    return (
        origin in (typing.Union, types.UnionType)
        and len(args) == 2
        and type(None) in args
    )


def _optional(kind: Any, conv: cattrs.Converter) -> Any:
    """
    The hook for ``X | None``: what cattrs does, with the hook of X
    looked up once instead of on every value.
    """
    inner = next(a for a in typing.get_args(kind) if a is not type(None))
    hook = conv.get_structure_hook(inner)

    def structure(value: Any, _: Any) -> Any:
        return None if value is None else hook(value, inner)

    return structure


def _make_converter(*, detailed: bool) -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=detailed)
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(bool, _strict(bool, "a boolean"))
    conv.register_structure_hook(int, _strict(int, "an integer"))
    conv.register_structure_hook_func(
        lambda t: t == tuple[str, ...], _structure_str_list
    )
    conv.register_structure_hook(dt.datetime, _structure_timestamp)
    if not detailed:
        conv.register_structure_hook_factory(
            _is_optional, lambda kind: _optional(kind, conv)
        )
    conv.register_unstructure_hook(dt.datetime, _to_unix)
    conv.register_unstructure_hook(tuple, list)

    return conv


#: Decodes quickly and reports only that something is wrong.
_FAST: Final = _make_converter(detailed=False)
#: Re-runs a failed decode to name every bad field.
_DETAILED: Final = _make_converter(detailed=True)


class ModelError(Exception):
    """Internal: a payload did not fit; *problems* names each field."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{p}: {d}" for p, d in problems))
        self.problems = problems


def structure(payload: Any, cls: type[T], *, path: str = "data") -> T:
    """
    Decode *payload* into *cls*, or raise `ModelError` naming each bad
    field by its dotted *path* (``data.trigger_types``).
    """
    if type(payload) is not dict or not attrs.has(cls):
        kind = type(payload).__name__
        if attrs.has(cls) and not isinstance(payload, Mapping):
            raise ModelError([(path, f"expected an object, got {kind}")])
        if typing.get_origin(cls) is list and not isinstance(payload, list):
            raise ModelError([(path, f"expected a list, got {kind}")])

    try:
        return _FAST.structure(payload, cls)
    except Exception:
        pass

    try:
        result = _DETAILED.structure(payload, cls)
    except Exception as exc:
        raise ModelError(_problems(exc, path)) from None

    return result


def _problems(exc: BaseException, path: str) -> list[tuple[str, str]]:
    if not isinstance(exc, cattrs.BaseValidationError):
        return [(path, _describe(exc))]

    found = []
    for line in cattrs.transform_error(
        exc, path="$", format_exception=_format
    ):
        what, _, where = line.rpartition(" @ ")
        found.append((path + where[1:], what))

    return found


def _format(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, KeyError):
        return "missing"
    return _describe(exc)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TypeError | ValueError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, AttributeError):
        return "expected an object"
    return type(exc).__name__


def unstructure(value: Any) -> Any:
    """
    Turn a model back into the JSON shape Nylas uses.

    Unknown statuses and trigger types come back exactly as they came;
    ``None`` fields are left out.  Secrets stay in the result: the
    caller asked for them.
    """
    raw = _FAST.unstructure(value)
    if isinstance(raw, Mapping):
        return {k: v for k, v in raw.items() if v is not None}

    return raw
