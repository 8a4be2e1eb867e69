"""The DER writer, the BER reader and the asn1crypto registrations of messenger.smime.asn1."""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import algos, cms, core
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger.smime import algorithms, asn1
from messenger.smime.errors import MalformedError


@pytest.mark.parametrize(
    "dotted",
    [
        "1.2.840.113549.1.7.2",
        "1.3.132.1.11.1",
        "2.16.840.1.101.3.4.1.6",
        "1.3.101.110",
        "0.9.2342.19200300.100.1.25",
        "2.999.1",
        "1.3.133.16.840.63.0.2",
    ],
)
def test_oid_round_trip_matches_asn1crypto(dotted: str) -> None:
    der = asn1.oid(dotted)
    assert der == core.ObjectIdentifier(dotted).dump()
    assert asn1.decode_oid(der[2:]) == dotted


@pytest.mark.parametrize("bad", [b"", b"\x80\x01", b"\x2a\x86"])
def test_bad_oid_content(bad: bytes) -> None:
    with pytest.raises(MalformedError):
        asn1.decode_oid(bad)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, -1, -128, -129, 2**64, 2**159 + 7])
def test_integer_matches_asn1crypto(value: int) -> None:
    assert asn1.integer(value) == core.Integer(value).dump()


@pytest.mark.parametrize("length", [0, 1, 127, 128, 255, 256, 65535, 65536, 10**7])
def test_lengths_round_trip(length: int) -> None:
    data = asn1.hdr(0x04, length) + b"\x00" * length
    assert data == core.OctetString(b"\x00" * length).dump()
    assert asn1.read(data, 0, len(data)) == (0x04, len(data) - length, len(data), len(data))


def test_headers_for_every_identifier_and_length_form() -> None:
    def general(ident: int, length: int) -> bytes:
        if length < 0x80:
            return bytes((ident, length))
        n = (length.bit_length() + 7) // 8
        return bytes((ident, 0x80 | n)) + length.to_bytes(n, "big")

    lengths = [*range(0, 0x102), 0xFFFF, 0x10000, 0xFFFFFF, 0x1000000, 2**40 + 3]
    for ident in range(0x100):
        for length in lengths:
            assert asn1.hdr(ident, length) == general(ident, length)
    for ident, length in ((-1, 5), (0x100, 5), (0x30, -1)):
        with pytest.raises(ValueError):
            asn1.hdr(ident, length)


def test_set_of_is_der_sorted() -> None:
    parts = [asn1.seq(asn1.oid("1.2.3")), b"\x02\x01\x05", asn1.octet_string(b"zz")]
    encoded = asn1.set_of(parts)
    parsed = core.SetOf.load(encoded)
    assert parsed.dump(force=True) == encoded


def test_time_encoding() -> None:
    when = dt.datetime(2019, 1, 26, 6, 13, 54, tzinfo=dt.UTC)
    assert asn1.encode_time(when) == b"\x17\x0d190126061354Z"
    assert asn1.encode_time(dt.datetime(2050, 1, 1, tzinfo=dt.UTC)) == b"\x18\x0f20500101000000Z"
    assert asn1.encode_time(dt.datetime(1949, 12, 31, 23, 59, 59, tzinfo=dt.UTC))[0] == 0x18
    # Naive means UTC; other zones are converted.
    assert asn1.encode_time(dt.datetime(2019, 1, 26, 6, 13, 54)) == asn1.encode_time(when)
    plus_one = dt.timezone(dt.timedelta(hours=1))
    assert asn1.encode_time(when.astimezone(plus_one)) == asn1.encode_time(when)


@pytest.mark.parametrize(
    ("ident", "text", "expected"),
    [
        (0x17, b"190126061354Z", dt.datetime(2019, 1, 26, 6, 13, 54, tzinfo=dt.UTC)),
        (0x17, b"490101000000Z", dt.datetime(2049, 1, 1, tzinfo=dt.UTC)),
        (0x17, b"500101000000Z", dt.datetime(1950, 1, 1, tzinfo=dt.UTC)),
        (0x17, b"1901260613Z", dt.datetime(2019, 1, 26, 6, 13, tzinfo=dt.UTC)),
        (0x17, b"190126071354+0100", dt.datetime(2019, 1, 26, 6, 13, 54, tzinfo=dt.UTC)),
        (0x18, b"20190126061354Z", dt.datetime(2019, 1, 26, 6, 13, 54, tzinfo=dt.UTC)),
        (0x18, b"20190126061354.5Z", dt.datetime(2019, 1, 26, 6, 13, 54, 500000, tzinfo=dt.UTC)),
    ],
)
def test_time_parsing(ident: int, text: bytes, expected: dt.datetime) -> None:
    assert asn1.parse_time(ident, text) == expected


@pytest.mark.parametrize(
    ("ident", "text"),
    [
        (0x17, b"191326061354Z"),
        (0x17, b"19012606135Z"),
        (0x17, b"abcdefghijklZ"),
        (0x18, b"2019"),
        (0x04, b"190126061354Z"),
    ],
)
def test_bad_times(ident: int, text: bytes) -> None:
    with pytest.raises(MalformedError):
        asn1.parse_time(ident, text)


def test_reader_indefinite_lengths() -> None:
    # SEQUENCE (indefinite) { OCTET STRING (constructed, indefinite) { "ab", "cd" } }
    data = bytes.fromhex("30802480040261620402636400000000")
    ident, s, e, nxt = asn1.read(data, 0, len(data))
    assert (ident, s, e, nxt) == (0x30, 2, len(data) - 2, len(data))
    (inner,) = asn1.children(data, s, e)
    assert inner[0] == 0x24
    assert asn1.octets(data, inner[0], inner[1], inner[2]) == b"abcd"


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x30",
        b"\x30\x05\x02\x01",
        b"\x04\x80\x00\x00",
        b"\x30\x89" + b"\xff" * 9,
        b"\x30\x80\x02\x01\x00",
        b"\x30\x84\xff\xff\xff\xff",
    ],
)
def test_reader_refuses_bad_lengths(bad: bytes) -> None:
    with pytest.raises(MalformedError):
        asn1.read(bad, 0, len(bad))


def test_reader_depth_limit() -> None:
    data = b"\x30\x80" * 200 + b"\x00\x00" * 200
    with pytest.raises(MalformedError):
        asn1.read(data, 0, len(data))


def test_name_to_str() -> None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "example.com"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Alice\u202e\x07"),
        ]
    )
    assert asn1.name_to_str(name.public_bytes()) == "O=example.com, CN=Alice\\x202e\\x07"


def test_asn1crypto_knows_our_oids() -> None:
    assert cms.KeyEncryptionAlgorithmId("1.3.132.1.11.1").native == (
        "dh_single_pass_std_dh_sha256kdf_scheme"
    )
    kea = cms.KeyEncryptionAlgorithm(
        {
            "algorithm": "dh_single_pass_std_dh_sha256kdf_scheme",
            "parameters": cms.KeyEncryptionAlgorithm({"algorithm": "aes128_wrap"}),
        }
    )
    parsed = cms.KeyEncryptionAlgorithm.load(kea.dump())
    assert parsed["parameters"]["algorithm"].native == "aes128_wrap"
    gcm = algos.EncryptionAlgorithm.load(
        asn1.seq(
            asn1.oid("2.16.840.1.101.3.4.1.6"),
            asn1.seq(asn1.octet_string(b"\x01" * 12), b"\x02\x01\x10"),
        )
    )
    assert gcm["parameters"]["aes_nonce"].native == b"\x01" * 12
    assert gcm["parameters"]["aes_icvlen"].native == 16
    assert cms.CMSAttributeType("1.2.840.113549.1.9.16.2.47").native == "signing_certificate_v2"


def test_shared_info_structure() -> None:
    from messenger.smime.recipients import _shared_info

    der = _shared_info("2.16.840.1.101.3.4.1.5", 16, None)
    info = asn1.ECCCMSSharedInfo.load(der)
    assert info["key_info"]["algorithm"].dotted == "2.16.840.1.101.3.4.1.5"
    assert info["supp_pub_info"].native == (128).to_bytes(4, "big")
    assert info.dump(force=True) == der
    with_ukm = asn1.ECCCMSSharedInfo.load(_shared_info("2.16.840.1.101.3.4.1.45", 32, b"u"))
    assert with_ukm["entity_u_info"].native == b"u"
    assert with_ukm["supp_pub_info"].native == (256).to_bytes(4, "big")


def test_algorithm_table() -> None:
    assert algorithms.BY_NAME["aes128-gcm"].name == "aes128-GCM"
    assert algorithms.lookup(asn1.encode_oid("1.3.132.1.11.1")).name == (
        "dhSinglePass-stdDH-sha256kdf-scheme"
    )
    alg = algorithms.algorithm("key-wrap", "id-aes128-wrap")
    assert (alg.role, alg.oid) == ("key-wrap", "2.16.840.1.101.3.4.1.5")
    assert algorithms.digest_display("sha1") == "SHA-1"


_TLVS = st.lists(
    st.tuples(
        st.sampled_from([0x02, 0x04, 0x06, 0x30, 0x31, 0xA0, 0x80, 0x1F]), st.binary(max_size=300)
    ),
    max_size=4,
).map(lambda items: b"".join(asn1.hdr(tag, len(body)) + body for tag, body in items))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=600), _TLVS), st.binary(max_size=4), st.integers(0, 40))
def test_children_agrees_with_reading_one_element_at_a_time(
    data: bytes, tail: bytes, short: int
) -> None:
    """`children` (with its inline fast path for short and long definite lengths) gives
    exactly what `read` gives element by element, or raises MalformedError as it does."""
    data += tail
    end = max(len(data) - short, 0)
    expected: list[tuple[int, int, int, int, int]] | None = []
    pos = 0
    try:
        while pos < end:
            ident, s, e, nxt = asn1.read(data, pos, end)
            expected.append((ident, s, e, nxt, pos))
            pos = nxt
    except MalformedError:
        expected = None
    try:
        got: list[tuple[int, int, int, int, int]] | None = asn1.children(data, 0, end)
    except MalformedError:
        got = None
    assert got == expected
