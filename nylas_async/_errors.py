"""
Every exception nylas-async raises, in one tree.

::

    NylasError
    ├── NylasApiError                 Nylas answered with an error status
    │   ├── AuthenticationError       401 or 403
    │   ├── NotFoundError             404, or 400 with type "70000"
    │   ├── RateLimitedError          429
    │   └── ServerError               5xx
    ├── TransportError                no usable HTTP reply
    │   ├── NylasConnectionError      connecting, sending or reading failed
    │   └── NylasTimeoutError         also a builtin TimeoutError
    ├── DecodeError                   a reply that does not fit the model
    ├── SecretStateUnknownError       a rotation may have happened unseen
    ├── JournalError                  a rotation journal cannot be used;
    │                                 also a builtin ValueError
    ├── InvalidNotificationError      a delivery that is no notification;
    │                                 also a builtin ValueError
    └── UsageError                    misuse; also a builtin ValueError
        ├── ClientClosedError         the client was closed
        ├── InvalidWebhookIdError     an id that cannot be one
        └── RawBodyError              a body that is not the raw bytes;
                                      also a builtin TypeError

Errors about an HTTP call carry the client's request id, Nylas's ids
when a reply arrived, and the history of attempts.  aiohttp, cattrs and
tenacity exceptions never escape: they are the ``__cause__`` of one of
these.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

_EXCERPT_LIMIT: Final = 200
#: The key ``webhook_secret`` as JSON may spell it, any letter escaped.
_SECRET_KEY: Final = re.compile(
    "".join(
        f"(?:{re.escape(c)}|\\\\u00{ord(c):02x})" for c in "webhook_secret"
    ),
    re.IGNORECASE,
)


@attrs.frozen(kw_only=True)
class Attempt:
    """
    What one HTTP attempt of a logical call came to.

    *outcome* is the HTTP status as a string (``"200"``, ``"503"``) or
    the failure kind (``"timeout"``, ``"connection"``).  *wait* is the
    pause chosen before the next attempt, in seconds (``None`` for the
    last attempt), and *reason* says why that attempt was retried.
    """

    number: int
    outcome: str
    elapsed: float
    nylas_request_id: str | None = None
    fastly_id: str | None = None
    wait: float | None = None
    reason: str | None = None


class NylasError(Exception):
    """The root of every exception that nylas-async raises."""


class UsageError(NylasError, ValueError):
    """The library was called in a way that cannot work."""


class ClientClosedError(UsageError, RuntimeError):
    """The client was used after ``aclose()``."""


class InvalidWebhookIdError(UsageError):
    """A webhook id that cannot be one; no request was made."""


class RawBodyError(UsageError, TypeError):
    """
    A signature check got a body that is not the raw request bytes.

    The signature covers the exact bytes Nylas sent: a ``str`` or a
    parsed ``dict`` can never match it.
    """


class InvalidNotificationError(NylasError, ValueError):
    """
    A delivery's body is not a notification that can be decoded.

    *problems* lists what is wrong as ``(path, description)`` pairs,
    such as ``("id", "missing")``; *too_large* is true when the body,
    or what it inflates to, is over the size limit.  Neither the
    message nor the attributes hold the body.
    """

    def __init__(
        self,
        message: str,
        *,
        problems: Sequence[tuple[str, str]] = (),
        too_large: bool = False,
    ) -> None:
        super().__init__(message)
        self.problems = tuple(problems)
        self.too_large = too_large

    def __str__(self) -> str:
        text = super().__str__()
        if self.problems:
            listed = "; ".join(f"{p}: {d}" for p, d in self.problems)
            text += f" ({listed})"

        return text


class CallError(NylasError):
    """
    Base for errors that came out of one logical HTTP call (internal).

    Holds the method and path, the client's request id, Nylas's ids
    when a reply arrived, and every attempt made.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        client_request_id: str,
        attempts: Sequence[Attempt] = (),
        nylas_request_id: str | None = None,
        fastly_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path
        self.client_request_id = client_request_id
        self.attempts: tuple[Attempt, ...] = tuple(attempts)
        self.nylas_request_id = nylas_request_id
        self.fastly_id = fastly_id

    @property
    def attempt_count(self) -> int:
        """How many HTTP attempts were made before giving up."""
        return len(self.attempts)

    def __str__(self) -> str:
        ids = [f"client request id {self.client_request_id}"]
        if self.nylas_request_id:
            ids.append(f"Nylas request id {self.nylas_request_id}")
        if self.fastly_id:
            ids.append(f"flow id {self.fastly_id}")
        tries = self.attempt_count
        plural = "attempt" if tries == 1 else "attempts"

        return (
            f"{self.message} ({self.method} {self.path}; "
            f"{tries} {plural}; {', '.join(ids)})"
        )


class NylasApiError(CallError):
    """
    Nylas answered with an error status.

    *status* is the HTTP status; *type*, *message* and *provider_error*
    come from Nylas's error body when it had one.  For bodies that are
    not Nylas JSON (a gateway's HTML page), *body_excerpt* holds the
    first characters of the body.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str | None = None,
        provider_error: Mapping[str, Any] | None = None,
        body_excerpt: str | None = None,
        retry_after: float | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.status = status
        self.type = type
        self.provider_error = provider_error
        self.body_excerpt = body_excerpt
        self.retry_after = retry_after

    def __str__(self) -> str:
        kind = f" {self.type}" if self.type else ""
        text = f"HTTP {self.status}{kind}: {super().__str__()}"
        if self.body_excerpt:
            text += f"; body starts {self.body_excerpt!r}"

        return text


class AuthenticationError(NylasApiError):
    """The API key was refused (401) or lacks permission (403)."""


class NotFoundError(NylasApiError, LookupError):
    """The webhook does not exist: 404, or Nylas's 400 type ``70000``."""


class RateLimitedError(NylasApiError):
    """
    Nylas answered 429.

    *retry_after* is the pause Nylas asked for in seconds, when it sent
    ``Retry-After``.
    """


class ServerError(NylasApiError):
    """Nylas or a gateway in front of it answered with a 5xx status."""


class TransportError(CallError):
    """No usable HTTP reply arrived."""


class NylasConnectionError(TransportError, ConnectionError):
    """Connecting, sending the request or reading the reply failed."""


class NylasTimeoutError(TransportError, TimeoutError):
    """A connect, attempt or call deadline passed."""


class DecodeError(CallError):
    """
    A reply arrived but does not fit what Nylas documents.

    *problems* lists every bad field as ``(path, description)`` pairs,
    for example ``("data.id", "missing")``.
    """

    def __init__(
        self,
        message: str,
        *,
        problems: Sequence[tuple[str, str]] = (),
        body_excerpt: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.problems = tuple(problems)
        self.body_excerpt = body_excerpt

    def __str__(self) -> str:
        text = super().__str__()
        if self.problems:
            listed = "; ".join(f"{p}: {d}" for p, d in self.problems)
            text += f"; problems: {listed}"

        return text


class SecretStateUnknownError(CallError):
    """
    A rotation may have happened without its reply reaching us.

    The webhook's secret may have changed to a value nobody knows, and
    no endpoint returns it: rotate the webhook again to get back to a
    known secret.  ``__cause__`` is the last failure; *webhook_id* names
    the destination, or is ``None`` when a create lost its reply.
    """

    def __init__(
        self, message: str, *, webhook_id: str | None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.webhook_id = webhook_id


def excerpt(text: str) -> str:
    """
    Return the start of a reply body, short enough for a message.

    A damaged create or rotate reply may hold part of a new secret, so
    the value of any ``webhook_secret`` key is blanked out, finished or
    not.
    """
    text = hide_secrets(" ".join(text.split()))
    if len(text) <= _EXCERPT_LIMIT:
        return text

    return text[:_EXCERPT_LIMIT] + "…"


def hide_secrets(text: str) -> str:
    """
    *text* cut at the first ``webhook_secret`` key, however escaped.

    Whatever follows the key may be its value, whole or damaged, as a
    string, a list or an object; only what comes before it is kept.
    """
    found = _SECRET_KEY.search(text)
    if found is None:
        return text

    return text[: found.start()] + 'webhook_secret": "[hidden]" …'
