"""
An asyncio client for the Nylas v3 webhooks API that never loses a
rotated secret.
"""

from importlib.metadata import version as _version

from ._client import Client
from ._config import EU_API_URI, US_API_URI, RetryPolicy, Timeouts
from ._errors import (
    Attempt,
    AuthenticationError,
    ClientClosedError,
    DecodeError,
    InvalidWebhookIdError,
    NotFoundError,
    NylasApiError,
    NylasConnectionError,
    NylasError,
    NylasTimeoutError,
    RateLimitedError,
    SecretStateUnknownError,
    ServerError,
    TransportError,
    UsageError,
)
from ._models import (
    CreateWebhookRequest,
    Response,
    TriggerType,
    Webhook,
    WebhookStatus,
    WebhookWithSecret,
)

__version__ = _version("nylas-async")

__all__ = [
    "EU_API_URI",
    "US_API_URI",
    "Attempt",
    "AuthenticationError",
    "Client",
    "ClientClosedError",
    "CreateWebhookRequest",
    "DecodeError",
    "InvalidWebhookIdError",
    "NotFoundError",
    "NylasApiError",
    "NylasConnectionError",
    "NylasError",
    "NylasTimeoutError",
    "RateLimitedError",
    "Response",
    "RetryPolicy",
    "SecretStateUnknownError",
    "ServerError",
    "Timeouts",
    "TransportError",
    "TriggerType",
    "UsageError",
    "Webhook",
    "WebhookStatus",
    "WebhookWithSecret",
]
