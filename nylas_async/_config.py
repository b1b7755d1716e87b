"""
Configuration values: timeouts, the retry policy and region addresses.
"""

from __future__ import annotations

import math
from typing import Final

import attrs

from ._errors import UsageError

US_API_URI: Final = "https://api.us.nylas.com"
EU_API_URI: Final = "https://api.eu.nylas.com"
REGIONS: Final = {"us": US_API_URI, "eu": EU_API_URI}

#: Nylas allows 50 webhook requests per second per application; staying
#: a little under leaves room for clock drift and other callers.
DEFAULT_RATE_LIMIT: Final = 48.0


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _positive(_: object, attribute: attrs.Attribute[float], v: float) -> None:
    if not (_number(v) and v > 0 and math.isfinite(v)):
        raise UsageError(f"{attribute.name} must be a positive number")


def _not_negative(
    _: object, attribute: attrs.Attribute[float], v: float
) -> None:
    if not (_number(v) and v >= 0 and math.isfinite(v)):
        raise UsageError(f"{attribute.name} must be zero or more")


def _attempts(_: object, attribute: attrs.Attribute[int], v: int) -> None:
    if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
        raise UsageError(f"{attribute.name} must be a whole number >= 1")


def _flag(_: object, attribute: attrs.Attribute[bool], v: bool) -> None:
    if not isinstance(v, bool):
        raise UsageError(f"{attribute.name} must be True or False")


@attrs.frozen(kw_only=True)
class Timeouts:
    """
    How long to wait, in seconds.

    *connect* bounds opening a connection, *attempt* bounds one whole
    HTTP attempt (send, wait, read).  The total for a call, retries and
    pauses included, is `RetryPolicy.deadline`.  Nylas itself gives up
    on a request after about 90 seconds, so a longer *attempt* only
    waits for an answer that will not come.
    """

    connect: float = attrs.field(default=10.0, validator=_positive)
    attempt: float = attrs.field(default=30.0, validator=_positive)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """
    When and how long to wait before trying a call again.

    Transient failures are retried: connection failures, timeouts and
    the statuses 408, 429, 500, 502, 503 and 504, whatever their body.
    Other statuses, cancellation and misuse are never retried.

    Args:
        attempts: HTTP attempts per call, the first one included
            (default 5; 1 turns retries off).
        initial: the upper bound of the first backoff, in seconds; each
            further one doubles it, and the wait is drawn uniformly
            below that bound ("full jitter", default 0.5).
        maximum: the cap on any single wait, in seconds (default 8).
        deadline: the most a call may take, in seconds, waits included
            (default 60); a wait that would pass it is not taken.
        max_retry_after: the longest ``Retry-After`` honoured, in
            seconds (default 30).  A longer one ends the retries, and
            the error carries the value Nylas sent.
        rotate_again: after an ambiguous failure of a rotation (its
            reply lost, so the secret may have changed), rotate again
            to reach a known secret (default).  If false, raise
            `SecretStateUnknownError` at once.
        testing: compute and record every wait but do not sleep, so
            tests of retry behaviour run instantly (default false).
    """

    attempts: int = attrs.field(default=5, validator=_attempts)
    initial: float = attrs.field(default=0.5, validator=_not_negative)
    maximum: float = attrs.field(default=8.0, validator=_not_negative)
    deadline: float = attrs.field(default=60.0, validator=_positive)
    max_retry_after: float = attrs.field(default=30.0, validator=_not_negative)
    rotate_again: bool = attrs.field(default=True, validator=_flag)
    testing: bool = attrs.field(default=False, validator=_flag)

    @classmethod
    def no_retries(cls) -> RetryPolicy:
        """Return a policy that makes exactly one attempt per call."""
        return cls(attempts=1)
