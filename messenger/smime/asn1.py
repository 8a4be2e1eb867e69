"""ASN.1 plumbing of the S/MIME core: DER writer, BER reader, structures asn1crypto lacks.

The structures asn1crypto lacks are ECC-CMS-SharedInfo, GCMParameters, ESSCertIDv2 and
the OIDs of the ECDH key agreement schemes.

Two layers live here:

* A fast path used by `cms.py` to build and read CMS without copying large content:
  `tlv`/`seq`/`set_of`... emit strict DER; `read` walks BER or DER (definite or
  indefinite lengths) over a `bytes` buffer by offsets, never trusting a length that
  goes past its parent. Every problem it finds is a `MalformedError`.
* asn1crypto definitions and OID registrations (done on import) so that
  `asn1crypto.cms.ContentInfo` parsing of our structures gives names and parsed
  parameters: dhSinglePass-stdDH-*kdf-scheme (RFC 5753, SEC 1), the HKDF schemes of
  RFC 8418, GCMParameters (RFC 5084), ECC-CMS-SharedInfo (RFC 5753 section 7.2),
  signingCertificateV2 (RFC 5035).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, ClassVar

from asn1crypto import algos, cms, core, keys

from .errors import MalformedError

__all__ = [
    "ECCCMSSharedInfo",
    "ESSCertIDv2",
    "GCMParameters",
    "SigningCertificateV2",
    "bit_string",
    "children",
    "decode_oid",
    "encode_oid",
    "encode_time",
    "expect",
    "explicit",
    "hdr",
    "integer",
    "name_to_str",
    "octet_chunks",
    "octet_string",
    "oid",
    "parse_time",
    "read",
    "read_int",
    "seq",
    "set_of",
    "tlv",
]

# Identifier octets used by CMS.
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
OCTET_STRING_C = 0x24
NULL = 0x05
OID = 0x06
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30
SET = 0x31


def ctx(n: int, constructed: bool = True) -> int:
    """The identifier octet of context tag [n] (n < 31)."""
    return 0x80 | (0x20 if constructed else 0) | n


MAX_DEPTH = 64

# --------------------------------------------------------------------------- writer


def hdr(ident: int, length: int) -> bytes:
    """Identifier and DER length octets for a value of `length` content bytes."""
    if length < 0x80:
        if length >= 0 and 0 <= ident <= 0xFF:
            return _SHORT_HDR[ident][length]
        return bytes((ident, length))  # ValueError: not an octet
    if length < 0x100:
        return bytes((ident, 0x81, length))
    if length < 0x10000:
        return bytes((ident, 0x82, length >> 8, length & 0xFF))
    n = (length.bit_length() + 7) // 8
    return bytes((ident, 0x80 | n)) + length.to_bytes(n, "big")


class _ShortHeaders(dict[int, tuple[bytes, ...]]):
    """identifier -> its two-octet headers by short-form length, each row built the first
    time the identifier is written (a message uses a dozen identifiers, not 256)."""

    def __missing__(self, ident: int) -> tuple[bytes, ...]:
        row = self[ident] = tuple(bytes((ident, n)) for n in range(0x80))
        return row


_SHORT_HDR = _ShortHeaders()


def tlv(ident: int, content: bytes) -> bytes:
    return hdr(ident, len(content)) + content


def seq(*parts: bytes) -> bytes:
    content = b"".join(parts)
    return hdr(SEQUENCE, len(content)) + content


def set_of(parts: list[bytes] | tuple[bytes, ...]) -> bytes:
    """DER SET OF: the element encodings in ascending order (X.690 11.6)."""
    content = b"".join(sorted(parts))
    return hdr(SET, len(content)) + content


def explicit(n: int, inner: bytes) -> bytes:
    return tlv(ctx(n), inner)


def octet_string(value: bytes) -> bytes:
    return hdr(OCTET_STRING, len(value)) + value


def bit_string(value: bytes) -> bytes:
    return hdr(BIT_STRING, len(value) + 1) + b"\x00" + value


def integer(value: int) -> bytes:
    n = (value if value >= 0 else ~value).bit_length() // 8 + 1  # room for the sign bit
    return tlv(INTEGER, value.to_bytes(n, "big", signed=True))


@lru_cache(maxsize=512)
def encode_oid(dotted: str) -> bytes:
    """The content octets of an OBJECT IDENTIFIER."""
    try:
        arcs = [int(a) for a in dotted.split(".")]
    except ValueError:
        raise MalformedError(f"not an OID: {dotted!r}") from None
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40) or min(arcs) < 0:
        raise MalformedError(f"not an OID: {dotted!r}")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


@lru_cache(maxsize=512)
def oid(dotted: str) -> bytes:
    """A complete DER OBJECT IDENTIFIER."""
    return tlv(OID, encode_oid(dotted))


@lru_cache(maxsize=1024)
def decode_oid(content: bytes) -> str:
    """Dotted form of OID content octets (MalformedError if they are not an OID)."""
    if not content or content[-1] & 0x80 or len(content) > 128:
        raise MalformedError("malformed object identifier")
    arcs: list[int] = []
    value = 0
    fresh = True
    for b in content:
        if fresh and b == 0x80:
            raise MalformedError("malformed object identifier")
        value = (value << 7) | (b & 0x7F)
        fresh = not b & 0x80
        if fresh:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def encode_time(when: datetime) -> bytes:
    """DER Time: UTCTime for 1950-2049, GeneralizedTime otherwise (RFC 5652 11.3)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    elif when.tzinfo is not UTC:
        when = when.astimezone(UTC)
    if 1950 <= when.year < 2050:
        # UTCTime YYMMDDHHMMSSZ: always 13 octets.
        return b"\x17\x0d%02d%02d%02d%02d%02d%02dZ" % (
            when.year % 100,
            when.month,
            when.day,
            when.hour,
            when.minute,
            when.second,
        )
    return tlv(GENERALIZED_TIME, f"{when.year:04d}{when:%m%d%H%M%S}Z".encode("ascii"))


_UTC_RE = re.compile(rb"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(Z|[+-]\d{4})")
_GEN_RE = re.compile(
    rb"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(?:[.,](\d{1,9}))?(Z|[+-]\d{4})?"
)


def parse_time(ident: int, content: bytes) -> datetime:
    """A UTCTime or GeneralizedTime value as an aware UTC datetime."""
    if ident == UTC_TIME and len(content) == 13 and content[12] == 0x5A and content[:12].isdigit():
        v = int(content[:12])  # the DER form YYMMDDHHMMSSZ, read as one number
        v, second = divmod(v, 100)
        v, minute = divmod(v, 100)
        v, hour = divmod(v, 100)
        v, day = divmod(v, 100)
        year, month = divmod(v, 100)
        try:
            return datetime(
                year + (2000 if year < 50 else 1900), month, day, hour, minute, second, tzinfo=UTC
            )
        except ValueError:
            raise MalformedError("time value out of range") from None
    if ident == UTC_TIME:
        m = _UTC_RE.fullmatch(content)
        if not m:
            raise MalformedError("malformed UTCTime")
        yy, mo, dd, hh, mi, ss, zone = m.groups()
        year = int(yy)
        year += 2000 if year < 50 else 1900
        frac = None
    elif ident == GENERALIZED_TIME:
        m = _GEN_RE.fullmatch(content)
        if not m:
            raise MalformedError("malformed GeneralizedTime")
        y4, mo, dd, hh, mi, ss, frac, zone = m.groups()
        year = int(y4)
    else:
        raise MalformedError("expected a UTCTime or GeneralizedTime")
    tz = UTC
    if zone and zone != b"Z":
        sign = 1 if zone[:1] == b"+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])))
    try:
        value = datetime(
            year,
            int(mo),
            int(dd),
            int(hh),
            int(mi or 0),
            int(ss or 0),
            int((frac or b"0").ljust(6, b"0")[:6]),
            tzinfo=tz,
        )
    except ValueError:
        raise MalformedError("time value out of range") from None
    return value.astimezone(UTC)


# --------------------------------------------------------------------------- reader


def read(data: bytes, pos: int, end: int, depth: int = 0) -> tuple[int, int, int, int]:
    """Read one BER element of `data` starting at `pos`, which must end by `end`.

    Returns (ident, contents_start, contents_end, next_pos). `ident` is the identifier
    octet for low tag numbers; high tag numbers give a value above 0xFF that matches no
    CMS tag. For indefinite lengths `contents_end` excludes the end-of-contents octets.
    """
    # Fast path: low tag number, definite length of up to 0xFFFF.
    if pos + 2 <= end:
        ident = data[pos]
        lb = data[pos + 1]
        if ident & 0x1F != 0x1F:
            if lb < 0x80:
                s = pos + 2
                e = s + lb
                if e <= end:
                    return ident, s, e, e
            elif lb == 0x81 and pos + 3 <= end:
                s = pos + 3
                e = s + data[pos + 2]
                if e <= end:
                    return ident, s, e, e
            elif lb == 0x82 and pos + 4 <= end:
                s = pos + 4
                e = s + (data[pos + 2] << 8 | data[pos + 3])
                if e <= end:
                    return ident, s, e, e
    return _read_general(data, pos, end, depth)


def _read_general(data: bytes, pos: int, end: int, depth: int) -> tuple[int, int, int, int]:
    if pos >= end:
        raise MalformedError("truncated structure")
    ident = data[pos]
    pos += 1
    if ident & 0x1F == 0x1F:
        number = 0
        while True:
            if pos >= end:
                raise MalformedError("truncated tag")
            b = data[pos]
            pos += 1
            number = (number << 7) | (b & 0x7F)
            if not b & 0x80:
                break
            if number > 0xFFFFFF:
                raise MalformedError("tag number too large")
        ident = (ident << 24) | number | 0x100
    if pos >= end:
        raise MalformedError("truncated length")
    lb = data[pos]
    pos += 1
    if lb < 0x80:
        cend = pos + lb
    elif lb == 0x80:
        if not (ident & 0x20 if ident < 0x100 else ident & 0x20000000):
            raise MalformedError("indefinite length on a primitive value")
        if depth >= MAX_DEPTH:
            raise MalformedError("structure nested too deeply")
        p = pos
        while True:
            if p + 1 < end and data[p] == 0 and data[p + 1] == 0:
                return ident, pos, p, p + 2
            p = read(data, p, end, depth + 1)[3]
    else:
        n = lb & 0x7F
        if n > 8 or pos + n > end:
            raise MalformedError("bad length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
        cend = pos + length
    if cend > end:
        raise MalformedError("length runs past the end of its container")
    return ident, pos, cend, cend


def expect(data: bytes, pos: int, end: int, ident: int, what: str) -> tuple[int, int, int]:
    """Read an element that must have identifier `ident`: (start, contents_end, next)."""
    got, s, e, nxt = read(data, pos, end)
    if got != ident:
        raise MalformedError(f"{what}: unexpected tag 0x{got:02x}")
    return s, e, nxt


def children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int, int]]:
    """The elements inside [start, end): (ident, contents_start, contents_end, next, at)."""
    out: list[tuple[int, int, int, int, int]] = []
    append = out.append
    pos = start
    while pos < end:
        # Inline fast path: low tag number and a definite length of up to 0xFFFF (the
        # same cases as `read`'s fast path, without the call).
        if pos + 2 <= end:
            ident = data[pos]
            lb = data[pos + 1]
            if ident & 0x1F != 0x1F:
                if lb < 0x80:
                    s = pos + 2
                    e = s + lb
                elif lb == 0x81 and pos + 3 <= end:
                    s = pos + 3
                    e = s + data[pos + 2]
                elif lb == 0x82 and pos + 4 <= end:
                    s = pos + 4
                    e = s + (data[pos + 2] << 8 | data[pos + 3])
                else:
                    e = end + 1
                if e <= end:
                    append((ident, s, e, e, pos))
                    pos = e
                    continue
        ident, s, e, nxt = read(data, pos, end)
        append((ident, s, e, nxt, pos))
        pos = nxt
    return out


def read_int(data: bytes, s: int, e: int) -> int:
    if s >= e:
        raise MalformedError("empty INTEGER")
    return int.from_bytes(data[s:e], "big", signed=True)


def octet_chunks(data: bytes, ident: int, s: int, e: int, depth: int = 0) -> list[tuple[int, int]]:
    """The (start, end) ranges holding an OCTET STRING's value, primitive or constructed
    (BER chunked); `ident` is the element's identifier, which may be an implicit tag."""
    if not ident & 0x20:
        return [(s, e)]
    if depth > 8:
        raise MalformedError("constructed OCTET STRING nested too deeply")
    out: list[tuple[int, int]] = []
    for cid, cs, ce, _, _ in children(data, s, e):
        if cid not in (OCTET_STRING, OCTET_STRING_C):
            raise MalformedError("constructed OCTET STRING holds something else")
        out.extend(octet_chunks(data, cid, cs, ce, depth + 1))
    return out


def octets(data: bytes, ident: int, s: int, e: int) -> bytes:
    """An OCTET STRING value (joined if constructed)."""
    if not ident & 0x20:
        return data[s:e]
    return b"".join(data[a:b] for a, b in octet_chunks(data, ident, s, e))


def definite(data: bytes, ident: int, s: int, e: int) -> bytes:
    """The element re-headed with a definite length (same contents octets)."""
    return hdr(ident, e - s) + data[s:e]


# --------------------------------------------------------------------------- names

_NAME_KEYS = {
    "2.5.4.3": "CN",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "STREET",
    "2.5.4.5": "serialNumber",
    "2.5.4.12": "title",
    "2.5.4.42": "GN",
    "2.5.4.4": "SN",
    "2.5.4.46": "dnQualifier",
    "2.5.4.97": "organizationIdentifier",
    "1.2.840.113549.1.9.1": "emailAddress",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
_STRING_CODECS = {
    0x0C: "utf-8",
    0x13: "latin-1",
    0x16: "latin-1",
    0x14: "latin-1",
    0x12: "latin-1",
    0x1A: "latin-1",
    0x1E: "utf-16-be",
    0x1C: "utf-32-be",
}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def _safe(text: str) -> str:
    """Escape control and bidi characters so a name cannot spoof what is around it."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


@lru_cache(maxsize=256)
def name_to_str(der: bytes) -> str:
    """A DER Name for people, in encoded order: 'O=example.com, CN=Alice'."""
    s, e, _ = expect(der, 0, len(der), SEQUENCE, "Name")
    rdns = []
    for rid, rs, re_, _, _ in children(der, s, e):
        if rid != SET:
            raise MalformedError("Name: RDN is not a SET")
        atvs = []
        for aid, a_s, a_e, _, _ in children(der, rs, re_):
            if aid != SEQUENCE:
                raise MalformedError("Name: attribute is not a SEQUENCE")
            parts = children(der, a_s, a_e)
            if len(parts) != 2 or parts[0][0] != OID:
                raise MalformedError("Name: malformed attribute")
            dotted = decode_oid(der[parts[0][1] : parts[0][2]])
            vid, vs, ve = parts[1][0], parts[1][1], parts[1][2]
            codec = _STRING_CODECS.get(vid)
            try:
                value = der[vs:ve].decode(codec) if codec else "#" + der[vs:ve].hex()
            except UnicodeDecodeError:
                value = "#" + der[vs:ve].hex()
            atvs.append(f"{_NAME_KEYS.get(dotted, dotted)}={_safe(value)}")
        rdns.append("+".join(atvs))
    return ", ".join(rdns)


# --------------------------------------------------------------------------- asn1crypto


class GCMParameters(core.Sequence):
    """RFC 5084 section 3.2: GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING,
    aes-ICVlen AES-GCM-ICVlen DEFAULT 12 }."""

    _fields: ClassVar[list[Any]] = [
        ("aes_nonce", core.OctetString),
        ("aes_icvlen", core.Integer, {"default": 12}),
    ]


class ECCCMSSharedInfo(core.Sequence):
    """RFC 5753 section 7.2: the KDF input alongside the shared secret."""

    _fields: ClassVar[list[Any]] = [
        ("key_info", cms.KeyEncryptionAlgorithm),
        ("entity_u_info", core.OctetString, {"explicit": 0, "optional": True}),
        ("supp_pub_info", core.OctetString, {"explicit": 2}),
    ]


class ESSCertIDv2(core.Sequence):
    """RFC 5035: ESSCertIDv2 (hashAlgorithm DEFAULT sha256)."""

    _fields: ClassVar[list[Any]] = [
        ("hash_algorithm", algos.DigestAlgorithm, {"default": {"algorithm": "sha256"}}),
        ("cert_hash", core.OctetString),
        ("issuer_serial", cms.IssuerSerial, {"optional": True}),
    ]


class ESSCertIDv2s(core.SequenceOf):
    _child_spec = ESSCertIDv2


class SigningCertificateV2(core.Sequence):
    _fields: ClassVar[list[Any]] = [
        ("certs", ESSCertIDv2s),
        ("policies", core.Any, {"optional": True}),
    ]


class SetOfSigningCertificateV2(core.SetOf):
    _child_spec = SigningCertificateV2


class ESSCertID(core.Sequence):
    _fields: ClassVar[list[Any]] = [
        ("cert_hash", core.OctetString),
        ("issuer_serial", cms.IssuerSerial, {"optional": True}),
    ]


class ESSCertIDs(core.SequenceOf):
    _child_spec = ESSCertID


class SigningCertificate(core.Sequence):
    _fields: ClassVar[list[Any]] = [
        ("certs", ESSCertIDs),
        ("policies", core.Any, {"optional": True}),
    ]


class SetOfSigningCertificate(core.SetOf):
    _child_spec = SigningCertificate


#: Key agreement schemes (KeyEncryptionAlgorithm OIDs) with their asn1crypto names.
KEY_AGREEMENT_SCHEMES = {
    "1.3.133.16.840.63.0.2": "dh_single_pass_std_dh_sha1kdf_scheme",
    "1.3.132.1.11.0": "dh_single_pass_std_dh_sha224kdf_scheme",
    "1.3.132.1.11.1": "dh_single_pass_std_dh_sha256kdf_scheme",
    "1.3.132.1.11.2": "dh_single_pass_std_dh_sha384kdf_scheme",
    "1.3.132.1.11.3": "dh_single_pass_std_dh_sha512kdf_scheme",
    "1.3.133.16.840.63.0.3": "dh_single_pass_cofactor_dh_sha1kdf_scheme",
    "1.3.132.1.14.1": "dh_single_pass_cofactor_dh_sha256kdf_scheme",
    "1.3.132.1.14.2": "dh_single_pass_cofactor_dh_sha384kdf_scheme",
    "1.3.132.1.14.3": "dh_single_pass_cofactor_dh_sha512kdf_scheme",
    "1.2.840.113549.1.9.16.3.19": "dh_single_pass_std_dh_hkdf_sha256_scheme",
    "1.2.840.113549.1.9.16.3.20": "dh_single_pass_std_dh_hkdf_sha384_scheme",
    "1.2.840.113549.1.9.16.3.21": "dh_single_pass_std_dh_hkdf_sha512_scheme",
}


def _register() -> None:
    """Teach asn1crypto our OIDs and parameter structures (idempotent)."""
    for dotted, name in KEY_AGREEMENT_SCHEMES.items():
        cms.KeyEncryptionAlgorithmId._map[dotted] = name
        cms.KeyEncryptionAlgorithmId._reverse_map[name] = dotted
        # The parameters of a key agreement scheme are the KeyWrapAlgorithm.
        cms.KeyEncryptionAlgorithm._oid_specs[name] = cms.KeyEncryptionAlgorithm
    for name in ("aes128_gcm", "aes192_gcm", "aes256_gcm"):
        algos.EncryptionAlgorithm._oid_specs[name] = GCMParameters
    cms.CMSAttributeType._map["1.2.840.113549.1.9.16.2.47"] = "signing_certificate_v2"
    cms.CMSAttributeType._map["1.2.840.113549.1.9.16.2.12"] = "signing_certificate"
    for m in (cms.CMSAttributeType,):
        if m._reverse_map is not None:
            m._reverse_map["signing_certificate_v2"] = "1.2.840.113549.1.9.16.2.47"
            m._reverse_map["signing_certificate"] = "1.2.840.113549.1.9.16.2.12"
    cms.CMSAttribute._oid_specs["signing_certificate_v2"] = SetOfSigningCertificateV2
    cms.CMSAttribute._oid_specs["signing_certificate"] = SetOfSigningCertificate
    # id-X25519 / id-X448 public keys (RFC 8410) carry the raw key in the BIT STRING,
    # parameters absent; asn1crypto knows the OIDs but not what the bits are.
    keys.PublicKeyAlgorithmId._map.setdefault("1.3.101.110", "x25519")
    keys.PublicKeyAlgorithmId._map.setdefault("1.3.101.111", "x448")


_register()
