"""verify_signature, verify_request and signature_from_headers."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from nylas_async import (
    RawBodyError,
    UsageError,
    signature_from_headers,
    verify_request,
    verify_signature,
)

SECRET = "whsec-current-0123456789"
OLD = "whsec-previous-9876543210"
BODY = b'{"id":"n1","type":"message.created","data":{"object":{}}}'


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class TestVerifySignature:
    def test_known_vector(self) -> None:
        """A published HMAC-SHA256 test vector verifies."""
        digest = (
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        )
        body = b"The quick brown fox jumps over the lazy dog"

        assert verify_signature(body=body, signature=digest, secrets="key")

    def test_valid(self) -> None:
        """The lowercase hex HMAC of the body with the secret matches."""
        assert verify_signature(
            body=BODY, signature=sign(BODY), secrets=SECRET
        )

    @pytest.mark.parametrize(
        "transform",
        [
            pytest.param(str.upper, id="uppercase"),
            pytest.param(lambda s: f"  {s}\t", id="surrounding-blanks"),
            pytest.param(lambda s: s.encode(), id="bytes"),
        ],
    )
    def test_tolerated_forms(self, transform: Any) -> None:
        """Hex case, blanks around the value and a bytes header match."""
        signature = transform(sign(BODY))

        assert verify_signature(body=BODY, signature=signature, secrets=SECRET)

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(bytearray(BODY), id="bytearray"),
            pytest.param(memoryview(BODY), id="memoryview"),
        ],
    )
    def test_bytes_like_body(self, body: bytearray | memoryview) -> None:
        """A bytearray or memoryview body is as good as bytes."""
        assert verify_signature(
            body=body, signature=sign(BODY), secrets=SECRET
        )

    def test_utf8_secret(self) -> None:
        """The secret is the key as UTF-8."""
        secret = "clé-secrète-ü"

        assert verify_signature(
            body=BODY, signature=sign(BODY, secret), secrets=secret
        )

    def test_wrong_secret(self) -> None:
        """A signature made with another secret does not match."""
        assert not verify_signature(
            body=BODY, signature=sign(BODY, OLD), secrets=SECRET
        )

    @pytest.mark.parametrize(
        "secrets",
        [
            pytest.param([SECRET, OLD], id="list"),
            pytest.param((OLD, SECRET), id="tuple-reversed"),
            pytest.param(iter([OLD, SECRET]), id="iterator"),
            pytest.param({SECRET}, id="set"),
        ],
    )
    def test_several_secrets(self, secrets: Any) -> None:
        """Any one of several secrets may match, as during a cut-over."""
        assert verify_signature(
            body=BODY, signature=sign(BODY), secrets=secrets
        )

    def test_several_secrets_none_matches(self) -> None:
        """With several secrets, a signature by none of them fails."""
        assert not verify_signature(
            body=BODY, signature=sign(BODY, "other"), secrets=[SECRET, OLD]
        )

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(BODY.decode(), id="str"),
            pytest.param(json.loads(BODY), id="dict"),
            pytest.param(None, id="none"),
        ],
    )
    def test_body_not_bytes(self, body: Any) -> None:
        """A decoded body raises a TypeError that says why."""
        with pytest.raises(TypeError, match="raw request bytes") as info:
            verify_signature(body=body, signature=sign(BODY), secrets=SECRET)

        assert isinstance(info.value, RawBodyError)
        assert "re-serialised" in str(info.value)

    @pytest.mark.parametrize(
        "secrets",
        [
            pytest.param([], id="empty-list"),
            pytest.param((), id="empty-tuple"),
            pytest.param("", id="empty-string"),
            pytest.param([SECRET, ""], id="one-empty"),
            pytest.param([SECRET, 5], id="not-a-string"),
            pytest.param(SECRET.encode(), id="bytes"),
            pytest.param(None, id="none"),
            pytest.param(["\udcff"], id="not-utf8"),
        ],
    )
    def test_bad_secrets(self, secrets: Any) -> None:
        """Secrets that cannot work raise UsageError, a ValueError,
        without showing any secret."""
        with pytest.raises(UsageError) as info:
            verify_signature(body=BODY, signature=sign(BODY), secrets=secrets)

        assert isinstance(info.value, ValueError)
        assert SECRET not in str(info.value)

    def test_misuse_raises_even_with_a_hostile_signature(self) -> None:
        """A bad body raises whatever the signature, so misuse shows up
        in tests that send no signature."""
        with pytest.raises(RawBodyError):
            verify_signature(body="text", signature=None, secrets=SECRET)

    def test_keyword_only(self) -> None:
        """Positional arguments are refused, so they cannot be swapped."""
        with pytest.raises(TypeError):
            verify_signature(BODY, sign(BODY), SECRET)  # type: ignore[misc]

    @pytest.mark.parametrize(
        "signature",
        [
            pytest.param(None, id="none"),
            pytest.param("", id="empty"),
            pytest.param("   ", id="blank"),
            pytest.param(sign(BODY)[:-1], id="short"),
            pytest.param(sign(BODY) + "0", id="long"),
            pytest.param(sign(BODY)[:32] + " " + sign(BODY)[32:], id="inner"),
            pytest.param("é" * 64, id="non-ascii"),
            pytest.param("g" * 64, id="not-hex"),
            pytest.param("\x00" * 64, id="nul"),
            pytest.param("a" * 10_000_000, id="huge"),
            pytest.param(b"\xff" * 64, id="bytes-not-ascii"),
            pytest.param(b"a" * 10_000_000, id="bytes-huge"),
            pytest.param("sha256=" + sign(BODY), id="prefixed"),
            pytest.param(12345, id="int"),
            pytest.param([sign(BODY)], id="list"),
        ],
    )
    def test_hostile_signature(self, signature: Any) -> None:
        """A header value that cannot be the signature gives False."""
        assert (
            verify_signature(body=BODY, signature=signature, secrets=SECRET)
            is False
        )

    @given(body=st.binary(max_size=2048), secret=st.text(min_size=1))
    def test_property_round_trip(self, body: bytes, secret: str) -> None:
        """Any body signed with any secret verifies with that secret."""
        try:
            signature = sign(body, secret)
        except UnicodeEncodeError:
            return

        assert verify_signature(
            body=body, signature=signature, secrets=[secret]
        )

    @given(
        body=st.binary(min_size=1, max_size=512),
        index=st.integers(min_value=0),
        flip=st.integers(min_value=1, max_value=255),
    )
    def test_property_tampered_body(
        self, body: bytes, index: int, flip: int
    ) -> None:
        """Changing any byte of the body makes the signature fail."""
        signature = sign(body)
        position = index % len(body)
        tampered = bytearray(body)
        tampered[position] ^= flip

        assert not verify_signature(
            body=bytes(tampered), signature=signature, secrets=SECRET
        )

    @given(body=st.binary(max_size=512), extra=st.binary(min_size=1))
    def test_property_extended_body(self, body: bytes, extra: bytes) -> None:
        """Appending bytes to the body makes the signature fail."""
        assert not verify_signature(
            body=body + extra, signature=sign(body), secrets=SECRET
        )

    @given(body=st.binary(max_size=64), index=st.integers(0, 63))
    def test_property_tampered_signature(
        self, body: bytes, index: int
    ) -> None:
        """Changing any hex digit of the signature makes it fail."""
        signature = sign(body)
        digit = "0" if signature[index] != "0" else "1"
        tampered = signature[:index] + digit + signature[index + 1 :]

        assert not verify_signature(
            body=body, signature=tampered, secrets=SECRET
        )

    @given(
        signature=st.one_of(
            st.none(), st.text(), st.binary(), st.integers(), st.floats()
        )
    )
    def test_property_hostile_never_raises(self, signature: Any) -> None:
        """Any header value gives a bool and never raises."""
        result = verify_signature(
            body=BODY, signature=signature, secrets=SECRET
        )

        assert result is False or signature.strip().lower() == sign(BODY)


class TestSignatureFromHeaders:
    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({"x-nylas-signature": "abc"}, id="lowercase"),
            pytest.param({"X-Nylas-Signature": "abc"}, id="title-case"),
            pytest.param({"X-NYLAS-SIGNATURE": "ABC"}, id="upper"),
            pytest.param([("X-Nylas-Signature", "abc")], id="pairs"),
            pytest.param([(b"x-nylas-signature", b"abc")], id="bytes-pairs"),
            pytest.param(
                CIMultiDictProxy(CIMultiDict([("X-Nylas-Signature", "abc")])),
                id="multidict",
            ),
            pytest.param(
                CIMultiDict(
                    [
                        ("x-nylas-signature", "abc"),
                        ("X-Nylas-Signature", "ABC"),
                    ]
                ),
                id="multidict-repeated-same",
            ),
            pytest.param(
                {"x-nylas-signature": "abc", "X-NYLAS-signature": "abc"},
                id="dict-repeated-same",
            ),
        ],
    )
    def test_found(self, headers: Any) -> None:
        """The header is found whatever its case and container."""
        assert signature_from_headers(headers) == "abc"

    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({}, id="empty"),
            pytest.param({"x-nylas-signatures": "abc"}, id="other-name"),
            pytest.param(
                CIMultiDict(
                    [("x-nylas-signature", "abc"), ("x-nylas-signature", "d")]
                ),
                id="multidict-differing",
            ),
            pytest.param(
                {"x-nylas-signature": "abc", "X-Nylas-Signature": "def"},
                id="dict-differing",
            ),
            pytest.param(
                [("x-nylas-signature", "abc"), ("X-Nylas-Signature", "d")],
                id="pairs-differing",
            ),
            pytest.param({"x-nylas-signature": 5}, id="not-text"),
            pytest.param([("x-nylas-signature",)], id="not-a-pair"),
        ],
    )
    def test_absent_or_ambiguous(self, headers: Any) -> None:
        """No header, or two differing ones, give None."""
        assert signature_from_headers(headers) is None

    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param(None, id="none"),
            pytest.param("x-nylas-signature: abc", id="str"),
            pytest.param(5, id="int"),
        ],
    )
    def test_not_headers(self, headers: Any) -> None:
        """Something that holds no headers is a UsageError."""
        with pytest.raises(UsageError):
            signature_from_headers(headers)


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


class TestVerifyRequest:
    def test_plain(self) -> None:
        """An uncompressed delivery verifies from its headers."""
        headers = {"X-Nylas-Signature": sign(BODY)}

        assert verify_request(body=BODY, headers=headers, secrets=SECRET)

    def test_missing_header(self) -> None:
        """A delivery without the header fails."""
        assert not verify_request(body=BODY, headers={}, secrets=SECRET)

    def test_differing_headers(self) -> None:
        """Two differing signature headers fail even if one is right."""
        headers = [
            ("x-nylas-signature", sign(BODY)),
            ("x-nylas-signature", sign(BODY, OLD)),
        ]

        assert not verify_request(body=BODY, headers=headers, secrets=SECRET)

    def test_gzip_signed_compressed(self) -> None:
        """A gzip delivery signed over its compressed bytes verifies."""
        packed = _gzip(BODY)
        headers = {
            "Content-Encoding": "gzip",
            "X-Nylas-Signature": sign(packed),
        }

        assert verify_request(body=packed, headers=headers, secrets=SECRET)

    def test_gzip_signed_inflated(self) -> None:
        """A gzip delivery signed over its inflated bytes verifies too."""
        headers = {"content-encoding": "GZIP", "x-nylas-signature": sign(BODY)}

        assert verify_request(
            body=_gzip(BODY), headers=headers, secrets=SECRET
        )

    def test_inflated_signature_needs_the_header(self) -> None:
        """Without Content-Encoding: gzip, only the raw bytes count."""
        headers = {"x-nylas-signature": sign(BODY)}

        assert not verify_request(
            body=_gzip(BODY), headers=headers, secrets=SECRET
        )

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(b"\x1f\x8bnot really gzip", id="bad-header"),
            pytest.param(_gzip(BODY)[:-6], id="truncated"),
            pytest.param(_gzip(BODY) + b"junk", id="trailing"),
            pytest.param(b"", id="empty"),
        ],
    )
    def test_corrupt_gzip(self, body: bytes) -> None:
        """Corrupt gzip is a clean False, never a zlib error."""
        headers = {"content-encoding": "gzip", "x-nylas-signature": sign(BODY)}

        assert not verify_request(body=body, headers=headers, secrets=SECRET)

    def test_gzip_bomb(self) -> None:
        """A body inflating past max_size is not inflated whole."""
        big = b"0" * 100_000
        headers = {"content-encoding": "gzip", "x-nylas-signature": sign(big)}

        assert not verify_request(
            body=_gzip(big), headers=headers, secrets=SECRET, max_size=1000
        )
        assert verify_request(
            body=_gzip(big), headers=headers, secrets=SECRET, max_size=100_000
        )

    @pytest.mark.parametrize(
        "max_size",
        [
            pytest.param(-1, id="minus-one"),
            pytest.param(-5, id="negative"),
            pytest.param(0, id="zero"),
            pytest.param(1.5, id="float"),
            pytest.param("4096", id="str"),
            pytest.param(True, id="bool"),
            pytest.param(None, id="none"),
            pytest.param(sys.maxsize, id="too-large-for-zlib"),
        ],
    )
    @pytest.mark.parametrize("gzipped", [False, True])
    def test_bad_max_size(self, max_size: Any, gzipped: bool) -> None:
        """A max_size that cannot bound a body raises UsageError."""
        body = _gzip(BODY) if gzipped else BODY
        headers = {"x-nylas-signature": sign(body)}
        if gzipped:
            headers["content-encoding"] = "gzip"

        with pytest.raises(UsageError, match="max_size"):
            verify_request(
                body=body, headers=headers, secrets=SECRET, max_size=max_size
            )

    def test_minus_one_keeps_the_inflate_cap(self) -> None:
        """max_size=-1 is refused before a bomb is inflated at all."""
        bomb = _gzip(b"0" * 50_000_000)
        headers = {"content-encoding": "gzip", "x-nylas-signature": "0" * 64}

        with pytest.raises(UsageError):
            verify_request(
                body=bomb, headers=headers, secrets=SECRET, max_size=-1
            )

    def test_misuse(self) -> None:
        """A str body and missing secrets raise as for verify_signature."""
        headers = {"x-nylas-signature": sign(BODY)}

        with pytest.raises(RawBodyError):
            verify_request(body=BODY.decode(), headers=headers, secrets=SECRET)  # type: ignore[arg-type]
        with pytest.raises(UsageError):
            verify_request(body=BODY, headers=headers, secrets=[])
