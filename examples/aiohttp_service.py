"""
A small aiohttp.web service that receives Nylas notifications and
rotates its own destination's secret on request.

It shares one `Client` across requests (opened on startup, closed on
cleanup), mounts a `WebhookReceiver` at ``/webhooks/nylas``, and offers
``POST /admin/rotate-secret``: the receiver then accepts the new and
the previous secret for a short cut-over, then only the new one.

Settings come from the environment:

- ``NYLAS_API_KEY``: the application's API key;
- ``NYLAS_API_URI``: the API address (the US region by default);
- ``NYLAS_WEBHOOK_ID``: the destination this service receives for;
- ``NYLAS_WEBHOOK_SECRET``: that destination's current secret;
- ``SERVICE_ADMIN_TOKEN``: the bearer token the rotate endpoint asks
  for;
- ``PORT``: where to listen on 127.0.0.1, 8080 by default.

Run it with ``python examples/aiohttp_service.py``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Final

import attrs
from aiohttp import web

from nylas_async import (
    Client,
    Notification,
    NotificationCallback,
    NylasError,
    SecretStateUnknownError,
    WebhookReceiver,
)

log = logging.getLogger("aiohttp_service")

WEBHOOK_PATH: Final = "/webhooks/nylas"
ROTATE_PATH: Final = "/admin/rotate-secret"

#: Somewhere durable to keep a new secret: a vault, a database.
StoreSecret = Callable[[str, str], Awaitable[None]]


@attrs.frozen(kw_only=True)
class Settings:
    """
    What the service needs to run; secrets stay out of ``repr()``.

    *cut_over* is how long, in seconds, deliveries signed with the
    previous secret are still accepted after a rotation.  Nylas stops
    using it at once, so this only covers deliveries already on their
    way.
    """

    api_key: str = attrs.field(repr=False)
    api_uri: str | None = None
    webhook_id: str
    webhook_secret: str = attrs.field(repr=False)
    admin_token: str = attrs.field(repr=False)
    cut_over: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """
        Read the settings from *environ*; `KeyError` names any missing
        variable.
        """
        missing = [
            name
            for name in (
                "NYLAS_API_KEY",
                "NYLAS_WEBHOOK_ID",
                "NYLAS_WEBHOOK_SECRET",
                "SERVICE_ADMIN_TOKEN",
            )
            if not environ.get(name)
        ]
        if missing:
            raise KeyError(f"set {', '.join(missing)} in the environment")

        return cls(
            api_key=environ["NYLAS_API_KEY"],
            api_uri=environ.get("NYLAS_API_URI") or None,
            webhook_id=environ["NYLAS_WEBHOOK_ID"],
            webhook_secret=environ["NYLAS_WEBHOOK_SECRET"],
            admin_token=environ["SERVICE_ADMIN_TOKEN"],
        )


SETTINGS: Final = web.AppKey("settings", Settings)
CLIENT: Final = web.AppKey("client", Client)
RECEIVER: Final = web.AppKey("receiver", WebhookReceiver)
STORE_SECRET: Final[web.AppKey[StoreSecret]] = web.AppKey("store_secret")
ROTATING: Final = web.AppKey("rotating", asyncio.Lock)
CUT_OVERS: Final = web.AppKey("cut_overs", list[asyncio.TimerHandle])


async def log_notification(notification: Notification) -> None:
    """The default work on a notification: note that it came."""
    log.info("notification %s: %s", notification.id, notification.type)


async def keep_in_memory(webhook_id: str, secret: str) -> None:
    """The default secret store, which stores nothing."""
    log.warning(
        "the new secret of %s is held in memory only; a restart needs it "
        "in NYLAS_WEBHOOK_SECRET",
        webhook_id,
    )


def make_app(
    settings: Settings,
    *,
    on_notification: NotificationCallback = log_notification,
    store_secret: StoreSecret = keep_in_memory,
) -> web.Application:
    """The service, ready for `web.run_app` or an `AppRunner`."""
    app = web.Application()
    app[SETTINGS] = settings
    app[STORE_SECRET] = store_secret
    app[ROTATING] = asyncio.Lock()
    app[CUT_OVERS] = []
    app[RECEIVER] = WebhookReceiver(
        secrets=settings.webhook_secret, on_notification=on_notification
    )

    app[RECEIVER].add_routes(app, WEBHOOK_PATH)
    app.router.add_post(ROTATE_PATH, rotate_secret)
    app.cleanup_ctx.append(client_context)
    app.on_cleanup.append(cancel_cut_overs)

    return app


async def client_context(app: web.Application) -> AsyncIterator[None]:
    """One client for every request, closed when the service stops."""
    settings = app[SETTINGS]
    async with Client(
        api_key=settings.api_key, api_uri=settings.api_uri
    ) as client:
        app[CLIENT] = client
        yield


async def cancel_cut_overs(app: web.Application) -> None:
    for handle in app[CUT_OVERS]:
        handle.cancel()


async def rotate_secret(request: web.Request) -> web.Response:
    """
    Rotate the destination's secret and swap the one deliveries are
    checked against.  Answers JSON without the secret.
    """
    app = request.app
    settings = app[SETTINGS]
    if not _authorized(request, settings.admin_token):
        return web.json_response({"error": "unauthorized"}, status=401)

    # One rotation at a time: two at once would each cut the other's
    # secret out of the receiver.
    async with app[ROTATING]:
        try:
            reply = await app[CLIENT].webhooks.rotate_secret(
                settings.webhook_id
            )
        except SecretStateUnknownError:
            log.exception("the secret may have changed unseen")
            return web.json_response(
                {"error": "secret state unknown; rotate again"}, status=503
            )
        except NylasError as exc:
            log.error("rotation failed: %s", exc)
            return web.json_response({"error": "rotation failed"}, status=502)

        new = reply.data.webhook_secret
        receiver = app[RECEIVER]
        receiver.secrets = [new, *receiver.secrets]
        await app[STORE_SECRET](settings.webhook_id, new)
        handle = asyncio.get_running_loop().call_later(
            settings.cut_over, _end_cut_over, receiver, new
        )
        app[CUT_OVERS].append(handle)

    return web.json_response(
        {"webhook_id": settings.webhook_id, "cut_over": settings.cut_over}
    )


def _end_cut_over(receiver: WebhookReceiver, new: str) -> None:
    # A later rotation owns the secrets now; leave its cut-over alone.
    if receiver.secrets[0] == new:
        receiver.secrets = new


def _authorized(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")

    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    settings = Settings.from_env()
    port = int(os.environ.get("PORT", "8080"))

    # Nylas signs the gzip bytes of compressed deliveries: leave them
    # as sent, so that the receiver can check them.
    web.run_app(
        make_app(settings),
        host="127.0.0.1",
        port=port,
        auto_decompress=False,
    )


if __name__ == "__main__":
    main()
