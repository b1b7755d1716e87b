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
    InvalidNotificationError,
    InvalidWebhookIdError,
    NotFoundError,
    NylasApiError,
    NylasConnectionError,
    NylasError,
    NylasTimeoutError,
    RateLimitedError,
    RawBodyError,
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
    UpdateWebhookRequest,
    Webhook,
    WebhookDeleteResult,
    WebhookIpAddresses,
    WebhookPage,
    WebhookStatus,
    WebhookWithSecret,
)
from ._notifications import Notification, NotificationData, parse_notification
from ._receiver import NotificationCallback, WebhookReceiver, answer_challenge
from ._signature import (
    signature_from_headers,
    verify_request,
    verify_signature,
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
    "InvalidNotificationError",
    "InvalidWebhookIdError",
    "JournalError",
    "JournalRecord",
    "NotFoundError",
    "Notification",
    "NotificationCallback",
    "NotificationData",
    "NylasApiError",
    "NylasConnectionError",
    "NylasError",
    "NylasTimeoutError",
    "Outcome",
    "RateLimitedError",
    "RawBodyError",
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
    "UpdateWebhookRequest",
    "UsageError",
    "Webhook",
    "WebhookDeleteResult",
    "WebhookIpAddresses",
    "WebhookPage",
    "WebhookReceiver",
    "WebhookStatus",
    "WebhookWithSecret",
    "answer_challenge",
    "parse_notification",
    "read_journal",
    "signature_from_headers",
    "verify_request",
    "verify_signature",
]
