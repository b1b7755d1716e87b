"""
Checking that a delivery comes from Nylas.

Nylas signs each notification with the destination's secret: the
``x-nylas-signature`` header holds the hex HMAC-SHA256 of the exact
body bytes, keyed with the secret as UTF-8, with no timestamp or
prefix.  Anything that re-encodes the body (a JSON parser, a text
decoder, a server that decompresses it) makes the signature useless,
so everything here insists on the raw bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import sys
import zlib
from collections.abc import Iterable, Mapping
from typing import Final, TypeAlias

from ._errors import InvalidNotificationError, RawBodyError, UsageError

#: The header that carries the signature; matched whatever its case.
SIGNATURE_HEADER: Final = "x-nylas-signature"

#: The largest body, compressed or not, that is read or inflated.
#: Nylas truncates message notifications above 1 MB, so real ones stay
#: well below this.
MAX_BODY_SIZE: Final = 4 * 1024 * 1024

Body: TypeAlias = bytes | bytearray | memoryview
Secrets: TypeAlias = str | Iterable[str]
Headers: TypeAlias = (
    Mapping[str, str]
    | Iterable[tuple[str, str]]
    | Iterable[tuple[bytes, bytes]]
)

_HEX_SIGNATURE: Final = re.compile(r"[0-9A-Fa-f]{64}")
# Longer values cannot be a signature even with surrounding blanks, so
# they are refused before any further work.
_MAX_SIGNATURE_LENGTH: Final = 256
_GZIP_MAGIC: Final = b"\x1f\x8b"
_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS


def verify_signature(
    *, body: Body, signature: str | bytes | None, secrets: Secrets
) -> bool:
    """
    Return whether *signature* signs *body* with one of *secrets*.

    Args:
        body: the request body exactly as it arrived, as bytes.  A
            ``str`` or a parsed ``dict`` raises `RawBodyError` (also a
            ``TypeError``): the signature covers the raw bytes, and
            decoded or re-serialised JSON never matches.
        signature: the ``x-nylas-signature`` header value, in hex of
            either case.  Any value that cannot be a signature (missing,
            non-ASCII, the wrong length, huge) gives ``False``; this
            never raises because of it.
        secrets: the destination's secret, or several (the new and the
            previous one during a rotation); it matches if any does.
            An empty collection raises `UsageError`.

    The comparison takes constant time for each secret.
    """
    raw = raw_bytes(body)
    keys = secret_keys(secrets)
    expected = parse_signature(signature)
    if expected is None:
        return False

    return matches(raw, expected, keys)


def verify_request(
    *,
    body: Body,
    headers: Headers,
    secrets: Secrets,
    max_size: int = MAX_BODY_SIZE,
) -> bool:
    """
    Return whether a whole request is signed with one of *secrets*.

    The signature is taken from *headers* by `signature_from_headers`,
    so a missing header or two differing ones give ``False``.

    With ``Content-Encoding: gzip``, the raw compressed bytes are
    checked first, as Nylas documents.  Because that fact is not fully
    settled, a signature over the decompressed bytes is accepted too
    (inflating at most *max_size* bytes, 4 MiB by default); both are
    signatures made with the secret, so this lets nothing unsigned in.
    A corrupt or oversized gzip body gives ``False``.

    Args:
        body: the raw request body, as for `verify_signature`.
        headers: a mapping (a dict, aiohttp's ``CIMultiDictProxy``) or
            a list of ``(name, value)`` pairs.
        secrets: one secret or several, as for `verify_signature`.
        max_size: the most bytes to inflate from a gzip body, a
            positive integer; anything else raises `UsageError`.
    """
    raw = raw_bytes(body)
    keys = secret_keys(secrets)
    check_size(max_size)
    expected = parse_signature(signature_from_headers(headers))
    if expected is None:
        return False

    gzipped = is_gzip(headers)

    return matches_delivery(raw, expected, keys, gzipped, max_size)


def signature_from_headers(
    headers: Headers,
) -> str | None:
    """
    Return the ``x-nylas-signature`` value in *headers*, stripped and
    lowercased, or ``None`` when there is none.

    The name is matched whatever its case, in a dict, a multidict such
    as aiohttp's ``CIMultiDictProxy``, or a list of ``(name, value)``
    pairs (bytes pairs too, as ASGI servers give them).  Repeats of one
    value count once; two differing values give ``None``, since either
    could be forged.
    """
    values = {
        v.strip().lower() for v in header_values(headers, SIGNATURE_HEADER)
    }
    if len(values) != 1:
        return None

    return values.pop()


def header_values(headers: Headers, name: str) -> list[str]:
    """
    Every value of the header *name* (lowercase) in *headers*.

    Bytes are read as Latin-1, as HTTP allows; values of other types
    are skipped.
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        kind = type(headers).__name__
        raise UsageError(
            f"headers must be a mapping or (name, value) pairs, not {kind}"
        )

    found = []
    for item in items:
        if not isinstance(item, tuple | list) or len(item) != 2:
            continue
        key, value = (_text(part) for part in item)
        if key is not None and value is not None and key.lower() == name:
            found.append(value)

    return found


def is_gzip(headers: Headers) -> bool:
    """Whether *headers* say the body is gzip (``Content-Encoding``)."""
    codings = ",".join(header_values(headers, "content-encoding"))
    tokens = [t.strip().lower() for t in codings.split(",") if t.strip()]

    return tokens in (["gzip"], ["x-gzip"])


def looks_gzipped(raw: bytes) -> bool:
    """Whether *raw* starts like a gzip stream."""
    return raw.startswith(_GZIP_MAGIC)


def raw_bytes(body: object) -> bytes:
    """
    *body* as ``bytes``, or `RawBodyError` for anything but raw bytes.
    """
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)

    kind = type(body).__name__
    raise RawBodyError(
        f"body must be the raw request bytes, not {kind}: the signature "
        "covers the exact bytes Nylas sent, and decoded or re-serialised "
        "JSON never matches it (in aiohttp, use await request.read())"
    )


def secret_keys(secrets: object) -> tuple[bytes, ...]:
    """
    The HMAC keys for *secrets* (one ``str`` or several), as UTF-8.

    Raises `UsageError` for an empty collection, an empty secret or a
    non-string, without ever showing a secret.
    """
    if isinstance(secrets, str):
        secrets = (secrets,)
    if isinstance(secrets, bytes | bytearray) or not isinstance(
        secrets, Iterable
    ):
        kind = type(secrets).__name__
        raise UsageError(
            f"secrets must be a str or an iterable of str, not {kind}"
        )

    keys: list[bytes] = []
    for number, secret in enumerate(secrets, 1):
        if not isinstance(secret, str) or not secret:
            raise UsageError(f"secret {number} is not a non-empty str")
        try:
            key = secret.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(
                f"secret {number} cannot be encoded as UTF-8"
            ) from None
        if key not in keys:
            keys.append(key)
    if not keys:
        raise UsageError("at least one secret is needed")

    return tuple(keys)


def check_size(value: object, name: str = "max_size") -> int:
    """
    *value* if it can bound a body: a positive integer, small enough
    for zlib to take one more.  Otherwise `UsageError`, rather than
    zlib's reading of 0 as "no limit at all".
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be a positive integer, not {value!r}")
    if value >= sys.maxsize:
        raise UsageError(f"{name} must be below {sys.maxsize}")

    return value


def parse_signature(value: object) -> bytes | None:
    """
    The digest a header value names, or ``None`` if it cannot be one.

    Surrounding blanks are ignored and hex of either case accepted;
    anything else (non-ASCII, the wrong length, not a string) is
    ``None``.
    """
    if isinstance(value, bytes | bytearray):
        value = bytes(value[: _MAX_SIGNATURE_LENGTH + 1]).decode("latin-1")
    if not isinstance(value, str) or len(value) > _MAX_SIGNATURE_LENGTH:
        return None

    value = value.strip(" \t\r\n")
    if _HEX_SIGNATURE.fullmatch(value) is None:
        return None

    return bytes.fromhex(value)


def matches(raw: bytes, expected: bytes, keys: Iterable[bytes]) -> bool:
    """Whether *expected* is the HMAC-SHA256 of *raw* with any key."""
    found = False
    for key in keys:
        digest = hmac.new(key, raw, hashlib.sha256).digest()
        found |= hmac.compare_digest(digest, expected)

    return found


def matches_delivery(
    raw: bytes,
    expected: bytes,
    keys: Iterable[bytes],
    gzipped: bool,
    max_size: int,
) -> bool:
    """
    Whether *expected* signs a delivery: its raw bytes, or for a gzip
    one (*gzipped*), its bytes once inflated up to *max_size*.
    """
    keys = tuple(keys)
    if matches(raw, expected, keys):
        return True
    if not gzipped:
        return False

    try:
        inflated = gunzip(raw, max_size)
    except InvalidNotificationError:
        return False

    return matches(inflated, expected, keys)


def gunzip(raw: bytes, max_size: int) -> bytes:
    """
    Inflate one gzip member of at most *max_size* bytes.

    Raises `InvalidNotificationError` when *raw* is not whole, valid
    gzip, has bytes after the member, or inflates past *max_size*, and
    `UsageError` when *max_size* is not a positive integer.
    """
    check_size(max_size)
    inflater = zlib.decompressobj(_GZIP_WBITS)
    try:
        inflated = inflater.decompress(raw, max_size + 1)
    except zlib.error:
        raise InvalidNotificationError(
            "the body is not valid gzip", problems=[("body", "corrupt gzip")]
        ) from None

    if len(inflated) > max_size:
        raise InvalidNotificationError(
            f"the body inflates past {max_size} bytes",
            problems=[("body", "too large once inflated")],
            too_large=True,
        )
    if not inflater.eof or inflater.unused_data:
        raise InvalidNotificationError(
            "the body is not one whole gzip stream",
            problems=[("body", "truncated gzip or trailing bytes")],
        )

    return inflated


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")

    return None
