"""
The webhooks resource: destinations and their signing secrets.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final, TypeVar

import attrs

from ._errors import (
    DecodeError,
    InvalidWebhookIdError,
    NylasError,
    SecretStateUnknownError,
    UsageError,
)
from ._models import (
    CreateWebhookRequest,
    ModelError,
    Response,
    Webhook,
    WebhookWithSecret,
    structure,
    unstructure,
)

if TYPE_CHECKING:
    import os

    from ._batch import (
        Ids,
        ProgressHook,
        RetryBudget,
        RotationBatch,
        SecretSink,
    )
    from ._config import RetryPolicy
    from ._http import Call, Reply, Transport

T = TypeVar("T")

#: Nylas ids are opaque, but every one seen is made of these characters.
#: Anything else (a slash, a space, an empty string) would change the
#: request path, so it is refused before a request is made.
_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,255}")


def check_webhook_id(webhook_id: object) -> str:
    """
    Return *webhook_id* if it can be a Nylas webhook id.

    Raises `InvalidWebhookIdError` otherwise, before any request.
    """
    if not isinstance(webhook_id, str):
        kind = type(webhook_id).__name__
        raise InvalidWebhookIdError(
            f"a webhook id must be a string, not {kind}"
        )
    if not _ID_PATTERN.fullmatch(webhook_id):
        shown = webhook_id[:40] + ("…" if len(webhook_id) > 40 else "")
        raise InvalidWebhookIdError(
            f"malformed webhook id {shown!r}: expected letters, digits "
            "and '_.:-', starting with a letter or digit"
        )

    return webhook_id


def decode(reply: Reply, cls: type[T]) -> Response[T]:
    """
    Decode the ``data`` of *reply* into *cls*.

    Raises `DecodeError` naming every bad field, with the call's ids.
    """
    payload = reply.payload
    problems: list[tuple[str, str]]
    if "data" not in payload:
        problems = [("data", "missing")]
    else:
        try:
            data = structure(payload["data"], cls)
        except ModelError as exc:
            problems = exc.problems
        else:
            return Response(
                data=data,
                request_id=reply.request_id,
                client_request_id=reply.client_request_id,
                fastly_id=reply.fastly_id,
                attempts=reply.attempts,
            )

    raise DecodeError(
        f"the reply does not fit {cls.__name__}",
        problems=problems,
        method=reply.method,
        path=reply.path,
        client_request_id=reply.client_request_id,
        attempts=reply.attempts,
        nylas_request_id=reply.request_id,
        fastly_id=reply.fastly_id,
    )


def _secret_unknown(webhook_id: str) -> SecretStateUnknownError:
    return SecretStateUnknownError(
        f"the secret of webhook {webhook_id} may have changed without "
        "the new one reaching us; rotate it again to get a known secret",
        webhook_id=webhook_id,
        method="POST",
        path=_rotate_path(webhook_id),
        client_request_id="",
    )


def _rotate_path(webhook_id: str) -> str:
    return f"/v3/webhooks/rotate-secret/{webhook_id}"


class Webhooks:
    """
    Webhook destinations of the application, reached as
    ``client.webhooks``.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def rotate_secret(
        self, webhook_id: str, *, retry: RetryPolicy | None = None
    ) -> Response[WebhookWithSecret]:
        """
        Give the webhook *webhook_id* a new signing secret.

        Returns the destination with its new ``webhook_secret``; the
        old secret stops working at once.

        Rotation is not idempotent, and a reply that is lost (a
        timeout, a dropped connection, a 5xx) may hide a rotation that
        happened.  By default such a failure is followed by another
        rotation, so the secret returned is always the server's
        current one.  When the attempts run out after such a failure,
        or the policy's *rotate_again* is off, this raises
        `SecretStateUnknownError`: the webhook must be rotated again.

        Args:
            webhook_id: the destination's id; a malformed one raises
                `InvalidWebhookIdError` without a request.
            retry: a policy for this call instead of the client's.
        """
        path = _rotate_path(check_webhook_id(webhook_id))

        def unknown(exc: NylasError, call: Call) -> NylasError:
            error = _secret_unknown(webhook_id)
            error.client_request_id = call.client_request_id
            error.attempts = tuple(call.attempts)
            return error

        reply = await self._transport.request(
            "POST", path, on_ambiguous=unknown, retry=retry
        )
        try:
            return decode(reply, WebhookWithSecret)
        except DecodeError as exc:
            error = _secret_unknown(webhook_id)
            error.client_request_id = reply.client_request_id
            error.attempts = reply.attempts
            error.nylas_request_id = reply.request_id
            raise error from exc

    async def create(
        self,
        request: CreateWebhookRequest,
        *,
        retry: RetryPolicy | None = None,
    ) -> Response[WebhookWithSecret]:
        """
        Create a destination and return it with its signing secret.

        Creation is not idempotent either: when a reply is lost (a
        timeout, a dropped connection, a 5xx), a destination may exist
        whose secret nobody holds.  Rather than risk a duplicate, this
        raises `SecretStateUnknownError` (with no *webhook_id*) at the
        first such failure; list the destinations to find it.  Failures
        that cannot have created anything (429, refused connections)
        are retried.
        """
        if not isinstance(request, CreateWebhookRequest):
            raise UsageError("create takes a CreateWebhookRequest")

        def unknown(exc: NylasError, call: Call) -> NylasError:
            return SecretStateUnknownError(
                "a destination may have been created without its reply "
                "reaching us; list the destinations before creating "
                "again",
                webhook_id=None,
                method=call.method,
                path=call.path,
                client_request_id=call.client_request_id,
                attempts=call.attempts,
            )

        no_retry_after_loss = attrs.evolve(
            retry or self._transport.retry, rotate_again=False
        )
        reply = await self._transport.request(
            "POST",
            "/v3/webhooks",
            json_body=unstructure(request),
            on_ambiguous=unknown,
            retry=no_retry_after_loss,
        )

        return decode(reply, WebhookWithSecret)

    async def find(
        self, webhook_id: str, *, retry: RetryPolicy | None = None
    ) -> Response[Webhook]:
        """
        Return the destination *webhook_id*, without its secret.

        Raises `NotFoundError` when it does not exist.
        """
        path = f"/v3/webhooks/{check_webhook_id(webhook_id)}"
        reply = await self._transport.request("GET", path, retry=retry)

        return decode(reply, Webhook)

    async def list(
        self, *, retry: RetryPolicy | None = None
    ) -> Response[list[Webhook]]:
        """Return every destination of the application, without secrets."""
        reply = await self._transport.request(
            "GET", "/v3/webhooks", retry=retry
        )

        return decode(reply, list[Webhook])

    def rotate_secrets(
        self,
        ids: Ids,
        *,
        concurrency: int = 16,
        journal: str | os.PathLike[str] | None = None,
        resume: bool = False,
        on_rotated: SecretSink | None = None,
        on_progress: ProgressHook | None = None,
        canary: int = 0,
        retry_budget: RetryBudget | None = None,
        retry: RetryPolicy | None = None,
        grace: float = 5.0,
    ) -> RotationBatch:
        """
        Rotate the secrets of many webhooks; return the running batch.

        Iterate the `RotationBatch` (``async for``) for one
        `RotationOutcome` per distinct id as each finishes, then read
        its `BatchSummary` from ``batch.summary``.  Use it with
        ``async with``, or iterate it to the end.

        Every id ends rotated (the new secret in hand), failed (the
        secret is unchanged) or unknown (the secret may have changed:
        rotate it again); none is dropped, even when the batch is
        cancelled.

        Args:
            ids: an iterable or async iterable of ids, read lazily as
                workers free up; repeats are rotated once, and
                malformed ids fail without a request.
            concurrency: how many rotations run at once (16).  The
                client's ``rate_limit`` paces all of them together.
            journal: a JSON-lines file that receives each new secret,
                written and fsynced before the outcome is reported.
                Created with mode 0600; one open to other users is
                refused with `JournalError`.
            resume: skip the ids the journal shows rotated (reported
                as skipped) or failed for good; rotate the rest again,
                including those whose state was unknown or in flight.
            on_rotated: an async callback that stores each new secret
                (a vault, a database), called after the journal has it
                and before the outcome is reported; what it raises is
                reported as the outcome's *callback_error*.
            on_progress: called with a `BatchProgress` after each
                outcome; ``batch.progress`` gives the same at any time.
            canary: rotate this many ids first, and go on only if all
                of them are rotated (0, the default, for no canary).
            retry_budget: the retries the workers share (`RetryBudget`;
                by default 20 in reserve plus one per five successes).
            retry: a retry policy for each rotation instead of the
                client's.
            grace: seconds that requests in flight get to finish when
                the batch is stopped or cancelled (5).
        """
        from ._batch import RotationBatch

        return RotationBatch(
            self,
            ids,
            rate_limit=self._transport.rate_limit,
            concurrency=concurrency,
            journal=journal,
            resume=resume,
            on_rotated=on_rotated,
            on_progress=on_progress,
            canary=canary,
            retry_budget=retry_budget,
            retry=retry,
            grace=grace,
        )
