"""Ways for the fake Nylas server to misbehave: scripted and random."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final, Literal

import attrs

FaultKind = Literal[
    "delay", "rate_limited", "server_error", "drop", "slow", "bad_body"
]
BadBodyKind = Literal["truncated", "not_json", "text_plain_json"]

_BAD_BODY_KINDS: Final = ("truncated", "not_json", "text_plain_json")


def _non_negative(
    instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _optional_non_negative(
    instance: object,
    attribute: attrs.Attribute[float | None],
    value: float | None,
) -> None:
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class Fault:
    """
    One way for the fake server to misbehave on one request.

    Build faults with the class methods rather than the constructor. A
    fault with *after_commit* true lets the operation happen (a rotation,
    a creation, a read) before the faulty answer goes out, so the caller
    cannot tell from the reply whether the server acted.
    """

    kind: FaultKind
    seconds: float = attrs.field(default=0.0, validator=_non_negative)
    status: int = 200
    retry_after: float | None = attrs.field(
        default=None, validator=_optional_non_negative
    )
    http_date: bool = False
    html: bool = False
    after_commit: bool = False
    body_kind: BadBodyKind | None = None

    def __attrs_post_init__(self) -> None:
        if (self.kind == "bad_body") != (self.body_kind is not None):
            raise ValueError("body_kind goes with, and only with, bad_body")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait *seconds*, then run the operation and answer normally."""
        return cls(kind="delay", seconds=seconds)

    @classmethod
    def rate_limited(
        cls, retry_after: float | None = None, *, http_date: bool = False
    ) -> Fault:
        """
        Answer 429 without acting.

        Args:
            retry_after: Seconds to put in ``Retry-After``, rounded up to
                whole seconds as HTTP requires; ``None`` (the default)
                sends no ``Retry-After`` at all.
            http_date: Send ``Retry-After`` as an HTTP date that many
                seconds from now instead of a number of seconds.
        """
        if http_date and retry_after is None:
            raise ValueError("http_date needs a retry_after")

        return cls(
            kind="rate_limited", retry_after=retry_after, http_date=http_date
        )

    @classmethod
    def server_error(
        cls,
        status: int = 500,
        *,
        html: bool = False,
        after_commit: bool = False,
    ) -> Fault:
        """
        Answer a 5xx *status*.

        Args:
            status: The 5xx status, 500 by default.
            html: Send an HTML gateway page without a request id, as the
                proxies in front of Nylas do, instead of a Nylas JSON
                error.
            after_commit: Run the operation before answering the error.
        """
        if not 500 <= status <= 599:
            raise ValueError(f"status must be a 5xx status, got {status}")

        return cls(
            kind="server_error",
            status=status,
            html=html,
            after_commit=after_commit,
        )

    @classmethod
    def drop(cls, *, after_commit: bool) -> Fault:
        """
        Close the connection without any HTTP reply.

        The client sees a server disconnection. With *after_commit* the
        operation runs first.
        """
        return cls(kind="drop", after_commit=after_commit)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """
        Run the operation, then wait *seconds* before answering normally.

        Meant for replies slower than the client's timeout. The wait ends
        early, without a reply, when the server shuts down, and under
        `FakeServer` also when the client goes away.
        """
        return cls(kind="slow", seconds=seconds, after_commit=True)

    @classmethod
    def bad_body(cls, kind: BadBodyKind) -> Fault:
        """
        Run the operation, then answer with a damaged body.

        Args:
            kind: ``"truncated"`` cuts the JSON body in half,
                ``"not_json"`` sends an HTML page instead, and
                ``"text_plain_json"`` sends the right JSON labelled
                ``text/plain``. The status is the operation's own.
        """
        if kind not in _BAD_BODY_KINDS:
            raise ValueError(
                f"kind must be one of {', '.join(_BAD_BODY_KINDS)}, "
                f"got {kind!r}"
            )

        return cls(kind="bad_body", body_kind=kind, after_commit=True)

    @property
    def name(self) -> str:
        """A short stable name such as ``drop_after_commit``."""
        match self.kind:
            case "rate_limited" if self.http_date:
                return "rate_limited_http_date"
            case "rate_limited" if self.retry_after is not None:
                return "rate_limited_retry_after"
            case "server_error":
                parts = [f"server_error_{self.status}"]
                if self.html:
                    parts.append("html")
                if self.after_commit:
                    parts.append("after_commit")
                return "_".join(parts)
            case "drop":
                when = "after" if self.after_commit else "before"
                return f"drop_{when}_commit"
            case "bad_body":
                return f"bad_body_{self.body_kind}"
            case _:
                return self.kind


_RandomFactory = Callable[[random.Random, float], Fault]

_RANDOM_FAULTS: Final[Mapping[str, _RandomFactory]] = {
    "rate_limited": lambda rng, slow: Fault.rate_limited(),
    "rate_limited_retry_after": lambda rng, slow: Fault.rate_limited(
        rng.randint(0, 1)
    ),
    "rate_limited_http_date": lambda rng, slow: Fault.rate_limited(
        rng.randint(0, 1), http_date=True
    ),
    "server_error_500": lambda rng, slow: Fault.server_error(500),
    "server_error_503": lambda rng, slow: Fault.server_error(503),
    "server_error_502_html": lambda rng, slow: Fault.server_error(
        502, html=True
    ),
    "server_error_500_after_commit": lambda rng, slow: Fault.server_error(
        500, after_commit=True
    ),
    "drop_before_commit": lambda rng, slow: Fault.drop(after_commit=False),
    "drop_after_commit": lambda rng, slow: Fault.drop(after_commit=True),
    "slow": lambda rng, slow: Fault.slow(slow),
    "bad_body_truncated": lambda rng, slow: Fault.bad_body("truncated"),
    "bad_body_not_json": lambda rng, slow: Fault.bad_body("not_json"),
    "bad_body_text_plain_json": lambda rng, slow: Fault.bad_body(
        "text_plain_json"
    ),
}

_DEFAULT_WEIGHTS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "rate_limited": 1.0,
        "rate_limited_retry_after": 1.0,
        "server_error_500": 1.0,
        "server_error_503": 1.0,
        "server_error_502_html": 1.0,
        "server_error_500_after_commit": 1.0,
        "drop_before_commit": 1.0,
        "drop_after_commit": 1.0,
    }
)


def _to_weights(value: Mapping[str, float] | None) -> Mapping[str, float]:
    return _DEFAULT_WEIGHTS if value is None else MappingProxyType(dict(value))


def _check_weights(
    instance: object,
    attribute: attrs.Attribute[Mapping[str, float]],
    value: Mapping[str, float],
) -> None:
    unknown = sorted(set(value) - set(_RANDOM_FAULTS))
    if unknown:
        raise ValueError(
            f"unknown fault names in weights: {', '.join(unknown)}; "
            f"known: {', '.join(_RANDOM_FAULTS)}"
        )
    if any(not (math.isfinite(w) and w >= 0) for w in value.values()):
        raise ValueError("weights must be finite and >= 0")
    if not sum(value.values()) > 0:
        raise ValueError("at least one weight must be positive")


def _check_rate(
    instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"rate must be between 0 and 1, got {value!r}")


@attrs.frozen
class RandomFaults:
    """
    Faults drawn at random for requests that have no scripted fault.

    The draws depend only on *seed* and the order of requests, so a run
    can be repeated exactly.

    Args:
        rate: The chance, from 0 to 1, that a request gets a fault.
        seed: Seeds the random generator.
        weights: Relative weights by fault name (as in `Fault.name`);
            by default an even mix of 429 with and without a
            ``Retry-After`` of 0 or 1 s, JSON 500 and 503, an HTML 502,
            a 500 after commit and drops before and after commit.
            ``slow``, ``rate_limited_http_date`` and the ``bad_body_*``
            faults are available but weigh nothing by default.
        slow_seconds: How long a ``slow`` fault holds its reply, 5 s by
            default.
    """

    rate: float = attrs.field(validator=_check_rate)
    seed: int = attrs.field(kw_only=True)
    weights: Mapping[str, float] = attrs.field(
        default=None,
        kw_only=True,
        converter=_to_weights,
        validator=_check_weights,
        hash=False,
    )
    slow_seconds: float = attrs.field(
        default=5.0, kw_only=True, validator=_non_negative
    )

    def pick(self, rng: random.Random) -> Fault | None:
        """Draw the fault for one request from *rng*, or ``None``."""
        if rng.random() >= self.rate:
            return None

        names = list(self.weights)
        name = rng.choices(names, [self.weights[n] for n in names])[0]

        return _RANDOM_FAULTS[name](rng, self.slow_seconds)
