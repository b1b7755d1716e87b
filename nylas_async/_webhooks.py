"""
The webhooks resource: destinations and their signing secrets.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs

from ._errors import (
    Attempt,
    DecodeError,
    InvalidWebhookIdError,
    NotFoundError,
    NylasError,
    SecretStateUnknownError,
    UsageError,
)
from ._models import (
    CreateWebhookRequest,
    ModelError,
    Response,
    UpdateWebhookRequest,
    Webhook,
    WebhookDeleteResult,
    WebhookIpAddresses,
    WebhookPage,
    WebhookWithSecret,
    check_http_url,
    structure,
    unstructure,
    update_body,
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
#: The most pages `Webhooks.list` and `Webhooks.iter_all` follow.  The
#: documented API has no pages at all, so a cursor still set after this
#: many is a server fault, not a big application.
MAX_PAGES: Final = 1000


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
            return _respond(reply, data)

    raise DecodeError(
        f"the reply does not fit {cls.__name__}",
        problems=problems,
        **_call_ids(reply),
    )


def _call_ids(reply: Reply) -> dict[str, Any]:
    """What identifies the call of *reply*, as an error's arguments."""
    return {
        "method": reply.method,
        "path": reply.path,
        "client_request_id": reply.client_request_id,
        "attempts": reply.attempts,
        "nylas_request_id": reply.request_id,
        "fastly_id": reply.fastly_id,
    }


def _reply_error(reply: Reply, problem: str, field: str) -> DecodeError:
    return DecodeError(
        f"the reply's {field} is unusable",
        problems=[(field, problem)],
        **_call_ids(reply),
    )


def _respond(reply: Reply, data: T) -> Response[T]:
    return Response(
        data=data,
        request_id=reply.request_id,
        client_request_id=reply.client_request_id,
        fastly_id=reply.fastly_id,
        attempts=reply.attempts,
    )


def _next_cursor(reply: Reply) -> str | None:
    """The ``next_cursor`` of a list reply; ``None`` on the last page."""
    cursor = reply.payload.get("next_cursor")
    if cursor is None or cursor == "":
        return None
    if not isinstance(cursor, str):
        kind = type(cursor).__name__
        raise _reply_error(
            reply, f"expected a string, got {kind}", "next_cursor"
        )

    return cursor


def decode_mock_payload(reply: Reply) -> Response[dict[str, Any]]:
    """
    Return the example notification in a mock-payload reply.

    Nylas's schema nests it as ``data.data`` while other readings put
    it right in ``data``; a ``data`` holding nothing but a ``data``
    object is taken as the first, anything else as the second, since a
    notification always has more than one key.
    """
    data = reply.payload.get("data")
    if isinstance(data, dict) and set(data) == {"data"}:
        data = data["data"]
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise _reply_error(reply, f"expected an object, got {kind}", "data")

    return _respond(reply, data)


def _check_trigger_type(trigger_type: object) -> str:
    if not isinstance(trigger_type, str) or not trigger_type.strip():
        raise UsageError("trigger_type must be a non-empty string")

    return str(trigger_type)


def _check_count(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be a positive integer or None")

    return value


def _webhook_path(webhook_id: str) -> str:
    return f"/v3/webhooks/{check_webhook_id(webhook_id)}"


def _with_secret(
    reply: Reply, webhook_id: str | None = None
) -> Response[WebhookWithSecret]:
    """
    Decode a create or rotate reply, insisting on a usable secret.

    An empty or blank secret, one that cannot be encoded, or a reply
    about another destination than *webhook_id* is no secret in hand,
    so it raises `DecodeError` like a malformed reply.
    """
    response = decode(reply, WebhookWithSecret)
    secret = response.data.webhook_secret
    if not _usable(secret):
        raise _reply_error(reply, "empty, blank or not text", _SECRET_FIELD)
    if webhook_id is not None and response.data.id != webhook_id:
        raise _reply_error(reply, "names another destination", "data.id")

    return response


_SECRET_FIELD: Final = "data.webhook_secret"


def _usable(secret: str) -> bool:
    if not secret or secret != secret.strip() or not secret.isprintable():
        return False
    try:
        secret.encode("utf-8")
    except UnicodeEncodeError:
        return False

    return True


def _secret_unknown(webhook_id: str, **ids: Any) -> SecretStateUnknownError:
    return SecretStateUnknownError(
        f"the secret of webhook {webhook_id} may have changed without "
        "the new one reaching us; rotate it again to get a known secret",
        webhook_id=webhook_id,
        **ids,
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
            return _secret_unknown(
                webhook_id,
                method=call.method,
                path=call.path,
                client_request_id=call.client_request_id,
                attempts=call.attempts,
            )

        reply = await self._transport.request(
            "POST", path, on_ambiguous=unknown, retry=retry
        )
        try:
            return _with_secret(reply, webhook_id)
        except DecodeError as exc:
            raise _secret_unknown(webhook_id, **_call_ids(reply)) from exc

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
            self._transport.policy(retry), rotate_again=False
        )
        reply = await self._transport.request(
            "POST",
            "/v3/webhooks",
            json_body=unstructure(request),
            on_ambiguous=unknown,
            retry=no_retry_after_loss,
        )
        try:
            return _with_secret(reply)
        except DecodeError as exc:
            raise SecretStateUnknownError(
                "a destination was most likely created, but its reply "
                "does not hold a usable secret; list the destinations "
                "before creating again",
                webhook_id=None,
                **_call_ids(reply),
            ) from exc

    async def find(
        self, webhook_id: str, *, retry: RetryPolicy | None = None
    ) -> Response[Webhook]:
        """
        Return the destination *webhook_id*, without its secret.

        Raises `NotFoundError` when it does not exist.
        """
        path = _webhook_path(webhook_id)
        reply = await self._transport.request("GET", path, retry=retry)

        return decode(reply, Webhook)

    async def update(
        self,
        webhook_id: str,
        request: UpdateWebhookRequest,
        *,
        retry: RetryPolicy | None = None,
    ) -> Response[Webhook]:
        """
        Change the destination *webhook_id*; return it without its secret.

        Only the fields set in *request* change.  An update can be
        repeated safely, so every transient failure is retried.  Raises
        `NotFoundError` when the destination does not exist, and
        `UsageError` (before any request) for a malformed id or a
        *request* that is not an `UpdateWebhookRequest`.
        """
        path = _webhook_path(webhook_id)
        if not isinstance(request, UpdateWebhookRequest):
            raise UsageError("update takes an UpdateWebhookRequest")

        reply = await self._transport.request(
            "PUT", path, json_body=update_body(request), retry=retry
        )

        return decode(reply, Webhook)

    async def destroy(
        self, webhook_id: str, *, retry: RetryPolicy | None = None
    ) -> Response[WebhookDeleteResult]:
        """
        Delete the destination *webhook_id*.

        Returns Nylas's ``{"status": "success"}`` as a
        `WebhookDeleteResult`.  When an attempt's reply is lost and the
        retry then finds no such destination, the lost attempt most
        likely deleted it: that is reported as a result with
        *already_gone* set rather than as `NotFoundError`, which is
        raised only when the destination was missing from the start.
        """
        path = _webhook_path(webhook_id)
        lost = False

        def note_loss(exc: NylasError, call: Call) -> NylasError:
            nonlocal lost
            lost = True
            return exc

        # rotate_again governs every call that may act unseen: a delete
        # is safe to repeat, so it always tries again.
        policy = attrs.evolve(self._transport.policy(retry), rotate_again=True)
        try:
            reply = await self._transport.request(
                "DELETE", path, on_ambiguous=note_loss, retry=policy
            )
        except NotFoundError as exc:
            if not lost:
                raise
            return Response(
                data=WebhookDeleteResult(already_gone=True),
                request_id=exc.nylas_request_id,
                client_request_id=exc.client_request_id,
                fastly_id=exc.fastly_id,
                attempts=exc.attempts,
            )

        return decode(reply, WebhookDeleteResult)

    async def mock_payload(
        self, trigger_type: str, *, retry: RetryPolicy | None = None
    ) -> Response[dict[str, Any]]:
        """
        Return an example notification of *trigger_type* from Nylas.

        The notification is the JSON object Nylas would deliver, as a
        dict, whichever way Nylas nests it in the reply.  Nothing is
        delivered anywhere.
        """
        body = {"trigger_type": _check_trigger_type(trigger_type)}
        reply = await self._transport.request(
            "POST", "/v3/webhooks/mock-payload", json_body=body, retry=retry
        )

        return decode_mock_payload(reply)

    async def send_test_event(
        self,
        trigger_type: str,
        webhook_url: str,
        *,
        retry: RetryPolicy | None = None,
    ) -> Response[str]:
        """
        Have Nylas deliver a test notification to *webhook_url*.

        Returns what Nylas answers, such as ``"success"``.  The test
        notification is signed with the literal secret
        ``mock-webhook-secret``, not the destination's.  A retry after
        a lost reply may deliver a second test notification.
        """
        body = {
            "trigger_type": _check_trigger_type(trigger_type),
            "webhook_url": check_http_url(webhook_url),
        }
        reply = await self._transport.request(
            "POST",
            "/v3/webhooks/send-test-event",
            json_body=body,
            retry=retry,
        )

        return decode(reply, str)

    async def ip_addresses(
        self, *, retry: RetryPolicy | None = None
    ) -> Response[WebhookIpAddresses]:
        """
        Return the IP addresses Nylas sends notifications from.

        The official SDKs call ``GET /v3/webhooks/ip-addresses``, which
        the current API reference does not list: if Nylas answers 404,
        this raises `NotFoundError`.
        """
        reply = await self._transport.request(
            "GET", "/v3/webhooks/ip-addresses", retry=retry
        )

        return decode(reply, WebhookIpAddresses)

    async def pages(
        self,
        *,
        limit: int | None = None,
        page_token: str | None = None,
        max_pages: int = MAX_PAGES,
        retry: RetryPolicy | None = None,
    ) -> AsyncGenerator[Response[WebhookPage], None]:
        """
        Yield the destinations page by page, without secrets.

        Nylas documents no pages for webhooks and answers every
        destination at once; this follows ``next_cursor`` should a reply
        ever carry one, sending it back as ``page_token`` along with
        *limit*.  It stops after *max_pages* pages (1000 by default):
        the last page's *next_cursor* then says whether more remain.
        A cursor seen before raises `DecodeError` instead of going
        round in circles.  To stop early, iterate inside
        ``contextlib.aclosing``.

        Args:
            limit: the most destinations per page, sent as ``limit``;
                by default none is sent.
            page_token: the cursor of the page to start from.
            max_pages: the most pages to fetch.
            retry: a policy for each page instead of the client's.
        """
        limit = _check_count("limit", limit)
        max_pages = _check_count("max_pages", max_pages) or MAX_PAGES
        if page_token is not None and (
            not isinstance(page_token, str) or not page_token
        ):
            raise UsageError("page_token must be a non-empty string")

        walk = self._walk(limit, page_token, max_pages, retry, complete=False)
        async with aclosing(walk) as pages:
            async for page in pages:
                yield page

    async def iter_all(
        self,
        *,
        limit: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> AsyncGenerator[Webhook, None]:
        """
        Yield every destination, fetching pages as needed.

        *limit* is the page size asked for (see `pages`).  Raises
        `DecodeError` if the cursors repeat or still go on after
        `MAX_PAGES` pages, rather than end early in silence.
        """
        limit = _check_count("limit", limit)
        async with aclosing(
            self._walk(limit, None, MAX_PAGES, retry)
        ) as pages:
            async for page in pages:
                for webhook in page.data.webhooks:
                    yield webhook

    async def list(
        self, *, retry: RetryPolicy | None = None
    ) -> Response[list[Webhook]]:
        """
        Return every destination of the application, without secrets.

        That is one request, as Nylas documents it.  Should a reply
        carry ``next_cursor``, the pages are followed as `iter_all`
        does, and the response holds every destination, the ids of the
        last request and the attempts of all of them.
        """
        webhooks: list[Webhook] = []
        attempts: list[Attempt] = []
        last: Response[WebhookPage] | None = None
        async with aclosing(self._walk(None, None, MAX_PAGES, retry)) as pages:
            async for last in pages:
                webhooks.extend(last.data.webhooks)
                attempts.extend(last.attempts)
        assert last is not None

        return Response(
            data=webhooks,
            request_id=last.request_id,
            client_request_id=last.client_request_id,
            fastly_id=last.fastly_id,
            attempts=tuple(attempts),
        )

    async def _walk(
        self,
        limit: int | None,
        token: str | None,
        max_pages: int,
        retry: RetryPolicy | None,
        *,
        complete: bool = True,
    ) -> AsyncGenerator[Response[WebhookPage], None]:
        """
        Yield up to *max_pages* pages from *token* on; with *complete*,
        raise `DecodeError` if a cursor is still set after the last.
        """
        seen = {token}
        for _ in range(max_pages):
            params = {"limit": str(limit)} if limit is not None else {}
            if token is not None:
                params["page_token"] = token
            reply = await self._transport.request(
                "GET", "/v3/webhooks", params=params or None, retry=retry
            )
            listed = decode(reply, list[Webhook])
            cursor = _next_cursor(reply)
            page = WebhookPage(webhooks=tuple(listed.data), next_cursor=cursor)
            yield _respond(reply, page)
            token = cursor
            if token is None:
                return
            if token in seen:
                raise _reply_error(
                    reply, "repeats an earlier cursor", "next_cursor"
                )
            seen.add(token)

        if complete:
            raise _reply_error(
                reply, f"still set after {max_pages} pages", "next_cursor"
            )

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

        self._transport.check_open()
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
