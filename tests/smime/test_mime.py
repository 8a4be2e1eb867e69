"""MIME entities: exact bytes kept, headers parsed, multipart split by the RFC 2046 rules."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger.smime.errors import SmimeError
from messenger.smime.mime import (
    ContentType,
    MimeEntity,
    build_multipart,
    canonical_text,
    split_multipart,
)


def test_parse_keeps_body_bytes_exactly():
    body = b"\x00\x01\r\n\r\n--x\r\n\xff"
    entity = MimeEntity.parse(b"Content-Type: application/octet-stream\r\n\r\n" + body)
    assert entity.body == body
    assert entity.content_type.mime_type == "application/octet-stream"


def test_folded_header_lines_are_joined():
    entity = MimeEntity.parse(
        b"Content-Type: application/pkcs7-mime;\r\n smime-type=signed-data;\r\n"
        b"\tname=x.p7m\r\n\r\nB"
    )
    ctype = entity.content_type
    assert ctype.param("smime-type") == "signed-data"
    assert ctype.param("name") == "x.p7m"


def test_content_type_parameters_are_case_insensitive_and_unquoted():
    ctype = ContentType.parse('Application/PKCS7-MIME; Smime-Type="authEnveloped-data"; name="a;b"')
    assert ctype.mime_type == "application/pkcs7-mime"
    assert ctype.param("SMIME-TYPE") == "authEnveloped-data"
    assert ctype.param("name") == "a;b"


def test_missing_content_type_defaults_to_text_plain():
    assert MimeEntity.parse(b"\r\nhello").content_type.mime_type == "text/plain"


def test_base64_transfer_encoding_is_undone():
    raw = bytes(range(256))
    encoded = base64.encodebytes(raw)
    entity = MimeEntity.parse(
        b"Content-Type: application/pkcs7-mime\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + encoded
    )
    assert entity.decoded_body() == raw


def test_bad_base64_is_a_malformed_error():
    entity = MimeEntity.parse(b"Content-Transfer-Encoding: base64\r\n\r\n!!!")
    with pytest.raises(SmimeError):
        entity.decoded_body()


def test_multipart_round_trip_keeps_parts_byte_for_byte():
    parts = [b"Content-Type: text/plain\r\n\r\nhello\r\n", b"Content-Type: x/y\r\n\r\n\x00\r\n--"]
    entity = build_multipart("signed", parts, (("protocol", "application/pkcs7-signature"),))
    assert split_multipart(MimeEntity.parse(entity.to_bytes())) == parts


def test_boundary_never_occurs_inside_a_part():
    calls = iter([b"\x00" * 12, b"\x01" * 12])
    clash = ("smime-" + (b"\x00" * 12).hex()).encode()
    entity = build_multipart("mixed", [b"\r\n" + clash], random_bytes=lambda n: next(calls))
    assert entity.content_type.param("boundary") == "smime-" + (b"\x01" * 12).hex()


def test_canonical_text_uses_crlf_everywhere():
    assert canonical_text(b"a\nb\r\nc\rd") == b"a\r\nb\r\nc\r\nd"


def test_multipart_without_closing_boundary_is_malformed():
    entity = MimeEntity.parse(
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nX: y\r\n\r\nz'
    )
    with pytest.raises(SmimeError):
        split_multipart(entity)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_smime_errors(data):
    try:
        entity = MimeEntity.parse(data)
        entity.content_type  # noqa: B018
        entity.decoded_body()
        if entity.content_type.mime_type.startswith("multipart/"):
            split_multipart(entity)
    except SmimeError:
        pass


_VALID = (
    b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
    b'micalg=sha-256; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
    b"--b1\r\nContent-Type: application/pkcs7-signature\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b1--\r\n"
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), max_size=6),
    st.integers(0, len(_VALID)),
)
def test_mutated_multipart_raises_only_smime_errors(flips, cut):
    data = bytearray(_VALID)
    for pos, value in flips:
        data[pos] = value
    try:
        entity = MimeEntity.parse(bytes(data[:cut]))
        if entity.content_type.mime_type.startswith("multipart/"):
            for part in split_multipart(entity):
                MimeEntity.parse(part).decoded_body()
    except SmimeError:
        pass
