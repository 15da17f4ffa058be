"""The token gate's base64url decoding agrees with the standard library's, strictly.

``strict.b64u_decode_checked`` decodes through msgspec (faster than ``binascii``); whatever
the text, it must return the bytes ``base64.urlsafe_b64decode`` returns, and refuse every
text that is not the canonical unpadded encoding of its bytes.
"""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sessionstore._jose import strict

_URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _unpadded(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@given(st.binary(max_size=600))
def test_the_encoding_of_any_bytes_decodes_to_them(data: bytes) -> None:
    assert strict.b64u_decode_checked(_unpadded(data)) == data


@given(st.text(_URL_ALPHABET, max_size=200))
def test_any_text_of_the_alphabet_decodes_only_when_canonical(text: str) -> None:
    segment = text.encode("ascii")
    try:
        decoded = strict.b64u_decode_checked(segment)
    except ValueError:
        # Refused: the text is not the canonical encoding of any bytes.
        padded = segment + b"=" * (-len(segment) % 4)
        if len(segment) % 4 != 1:
            assert _unpadded(base64.urlsafe_b64decode(padded)) != segment
        return
    assert _unpadded(decoded) == segment


@pytest.mark.parametrize(
    "segment", [b"A", b"AB", b"AAB"], ids=["length 1 mod 4", "4 padding bits", "2 padding bits"]
)
def test_non_canonical_texts_are_refused(segment: bytes) -> None:
    with pytest.raises(ValueError):
        strict.b64u_decode_checked(segment)


@given(st.binary(max_size=100))
@example(b"\x00\x01\x02\x03")  # msgspec: malformed JSON
@example(b'AB"C')  # msgspec: a string that ends early
@example(b"AB\\C")  # msgspec: an escape
def test_bytes_outside_the_charset_never_raise_anything_but_value_error(segment: bytes) -> None:
    # Callers check the charset first; even without that, nothing but a ValueError comes out.
    with contextlib.suppress(ValueError):
        strict.b64u_decode_checked(segment)
