"""
An asyncio client for the Nylas v3 webhooks API that never loses a
rotated secret.
"""

from importlib.metadata import version as _version

from ._batch import (
    BatchProgress,
    BatchSummary,
    Outcome,
    RetryBudget,
    RotationBatch,
    RotationOutcome,
    SecretSink,
    StopReason,
)
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
from ._journal import JournalError, JournalRecord, read_journal
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
    "BatchProgress",
    "BatchSummary",
    "Client",
    "ClientClosedError",
    "CreateWebhookRequest",
    "DecodeError",
    "InvalidWebhookIdError",
    "JournalError",
    "JournalRecord",
    "NotFoundError",
    "NylasApiError",
    "NylasConnectionError",
    "NylasError",
    "NylasTimeoutError",
    "Outcome",
    "RateLimitedError",
    "Response",
    "RetryBudget",
    "RetryPolicy",
    "RotationBatch",
    "RotationOutcome",
    "SecretSink",
    "SecretStateUnknownError",
    "ServerError",
    "StopReason",
    "Timeouts",
    "TransportError",
    "TriggerType",
    "UsageError",
    "Webhook",
    "WebhookStatus",
    "WebhookWithSecret",
    "read_journal",
]
