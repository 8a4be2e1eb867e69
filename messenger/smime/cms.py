"""CMS of the S/MIME core: sign/verify SignedData, encrypt/decrypt (Auth)EnvelopedData.

RFC 5652 SignedData, RFC 5083 AuthEnvelopedData and EnvelopedData as RFC 8591 uses
them, plus the validating asn1crypto parse for display (`parse_content_info`).

Structures are written as strict DER by the small writer in `asn1.py` and read by its
bounds-checked BER walker, so large content is hashed, encrypted and decrypted where
it lies (no re-parsing, no re-serialising, one copy for the output). `parse_content_info`
is the full asn1crypto parse (with our OIDs registered) for inspection; it is not
needed before `verify_signed` or `decrypt`, which validate what they read.

Verification here is cryptographic only (digest, signature, algorithm policy); trust in
the signer certificate is the PKI layer's. Every failure is an `errors.py` type.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from asn1crypto import cms as asn1_cms
from asn1crypto import core
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from messenger.pki.verdict import per_object

from . import asn1
from .algorithms import BY_NAME, AlgInfo, digest_display, hash_for, lookup
from .algorithms import alg_id as _alg_id
from .asn1 import (
    INTEGER,
    OCTET_STRING,
    OCTET_STRING_C,
    OID,
    SEQUENCE,
    SET,
    children,
    ctx,
    expect,
    hdr,
    octet_chunks,
    octet_string,
    read,
    read_int,
    seq,
    set_of,
    tlv,
)
from .errors import (
    MalformedError,
    NoRecipientKeyError,
    ProtectError,
    SmimeError,
    TamperedError,
    UnsupportedError,
    WeakAlgorithmError,
)
from .policy import DEFAULT_POLICY, Policy
from .recipients import (
    CertFacts,
    RecipientEntry,
    Rid,
    _read_rid,
    build_recipient_info,
    facts,
    facts_from_der,
    open_entry,
    parse_recipient_infos,
    prepare_keys,
)
from .report import Algorithm

__all__ = [
    "DecryptResult",
    "SignedResult",
    "SignerResult",
    "certs_only",
    "content_type_of",
    "data_content",
    "decrypt",
    "describe_recipients",
    "encrypt",
    "parse_content_info",
    "sign",
    "verify_signed",
]

_F = TypeVar("_F", bound=Callable[..., Any])

# OID content octets we compare against while walking.
_OID_DATA = asn1.encode_oid("1.2.840.113549.1.7.1")
_OID_SIGNED_DATA = asn1.encode_oid("1.2.840.113549.1.7.2")
_OID_ENVELOPED = asn1.encode_oid("1.2.840.113549.1.7.3")
_OID_AUTH_ENVELOPED = asn1.encode_oid("1.2.840.113549.1.9.16.1.23")
_A_CONTENT_TYPE = asn1.encode_oid("1.2.840.113549.1.9.3")
_A_MESSAGE_DIGEST = asn1.encode_oid("1.2.840.113549.1.9.4")
_A_SIGNING_TIME = asn1.encode_oid("1.2.840.113549.1.9.5")
_A_SIGNING_CERT = asn1.encode_oid("1.2.840.113549.1.9.16.2.12")
_A_SIGNING_CERT_V2 = asn1.encode_oid("1.2.840.113549.1.9.16.2.47")

#: SMIMECapabilities we announce (RFC 8551 2.5.2), in preference order.
_SMIME_CAPABILITIES_ATTR = seq(
    asn1.oid("1.2.840.113549.1.9.15"),
    tlv(
        SET,
        seq(
            *(
                seq(asn1.oid(BY_NAME[n].oid))
                for n in ("aes128-GCM", "aes256-GCM", "aes128-CBC", "aes256-CBC")
            )
        ),
    ),
)
_NULL = b"\x05\x00"
_BIG = 64 * 1024  # above this, stream instead of the one-shot AEAD calls
_SPLIT_PREFIX = 64 * 1024 + 4  # what `decrypt(split_head=...)` shows of the plaintext


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SignerResult:
    """One SignerInfo, checked cryptographically (no trust decision)."""

    certificate: x509.Certificate | None
    valid: bool
    weak: bool
    reason: str
    signing_time: datetime | None
    algorithms: tuple[Algorithm, ...]
    sid: str


@dataclass(frozen=True)
class SignedResult:
    content: bytes
    econtent_type: str
    signers: tuple[SignerResult, ...]
    certificates: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...]
    certs_only: bool


@dataclass(frozen=True)
class DecryptResult:
    content: bytes
    econtent_type: str
    authenticated: bool
    #: content-encryption; key-transport, or key-agreement (the scheme, then the curve:
    #: 'P-256' or 'X25519'), kdf and key-wrap.
    algorithms: tuple[Algorithm, ...]
    recipient: str
    recipients: tuple[str, ...]
    #: The leading bytes `decrypt(split_head=...)` split off `content` (else empty).
    head: bytes = b""


# --------------------------------------------------------------------------- helpers


_CTX0 = ctx(0)
_CTX1 = ctx(1)
_CTX2 = ctx(2)
_CTX0_PRIMITIVE = ctx(0, False)


def _boundary(fn: _F) -> _F:
    """Turn whatever a parser or primitive raises on hostile input into an SmimeError."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SmimeError:
            raise
        except UnsupportedAlgorithm as exc:
            raise UnsupportedError(f"unsupported algorithm: {exc}") from exc
        except (
            ValueError,
            TypeError,
            KeyError,
            IndexError,
            OverflowError,
            UnicodeError,
            RecursionError,
            AttributeError,
            AssertionError,
        ) as exc:
            raise MalformedError(f"malformed CMS structure: {exc}") from exc

    return wrapper  # type: ignore[return-value]


def _as_bytes(ci_or_bytes: object, policy: Policy) -> bytes:
    if isinstance(ci_or_bytes, bytes):
        data = ci_or_bytes
    elif isinstance(ci_or_bytes, asn1_cms.ContentInfo):
        source = getattr(ci_or_bytes, "_smime_source", None)
        data = source if isinstance(source, bytes) else ci_or_bytes.dump()
    elif isinstance(ci_or_bytes, (bytearray, memoryview)):
        data = bytes(ci_or_bytes)
    else:
        raise MalformedError(
            f"expected DER bytes or a ContentInfo, not {type(ci_or_bytes).__name__}"
        )
    if len(data) > policy.max_input:
        raise MalformedError(
            f"CMS input of {len(data)} bytes is over the limit of {policy.max_input} bytes"
        )
    return data


def _type_name(oid_der: bytes) -> str:
    row = lookup(oid_der)
    if row is not None and row.kind == "content-type":
        return row.name
    return asn1.decode_oid(oid_der)


@functools.lru_cache(maxsize=64)
def _type_oid(name: str) -> bytes:
    """DER OBJECT IDENTIFIER for an asn1crypto content type name or dotted OID."""
    row = BY_NAME.get(name)
    if row is not None and row.kind == "content-type":
        return asn1.oid(row.oid)
    if name and name[0].isdigit():
        return asn1.oid(name)
    raise ProtectError(f"unknown content type {name!r}")


def _outer(data: bytes) -> tuple[bytes, int, int]:
    """ContentInfo: (contentType OID octets, content start, content end)."""
    ident, s, e, nxt = read(data, 0, len(data))
    if ident != SEQUENCE:
        raise MalformedError("not a CMS ContentInfo (no SEQUENCE)")
    if nxt != len(data):
        raise MalformedError("trailing data after the ContentInfo")
    ident, os_, oe, p = read(data, s, e)
    if ident != OID:
        raise MalformedError("malformed ContentInfo")
    oid_der = data[os_:oe]
    if p == e:
        return oid_der, 0, 0
    ident, cs, ce, p = read(data, p, e)
    if ident != _CTX0:
        raise MalformedError("malformed ContentInfo content")
    if p != e:
        raise MalformedError("malformed ContentInfo")
    return oid_der, cs, ce


def _single(data: bytes, s: int, e: int, ident: int, what: str) -> tuple[int, int]:
    inner = children(data, s, e)
    if len(inner) != 1 or inner[0][0] != ident:
        raise MalformedError(f"malformed {what}")
    return inner[0][1], inner[0][2]


_HASH_NEW: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha224": hashlib.sha224,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


def _digest(name: str, parts: Sequence[memoryview | bytes]) -> bytes:
    new = _HASH_NEW.get(name)
    if new is not None and len(parts) == 1:
        return new(parts[0]).digest()
    if new is not None:
        h: Any = new()
    elif name == "shake256":
        h = hashlib.shake_256()
    else:
        h = hashlib.new(name)
    for part in parts:
        h.update(part)
    return h.digest(64) if name == "shake256" else h.digest()


# --------------------------------------------------------------------------- parsing


@_boundary
def parse_content_info(data: bytes, policy: Policy = DEFAULT_POLICY) -> asn1_cms.ContentInfo:
    """Parse and fully validate a CMS ContentInfo with asn1crypto (for inspection).

    Every nested field is parsed here, so lazy parse errors surface as MalformedError
    now rather than later. DER or BER; trailing data is refused. The result can be given
    to `verify_signed`/`decrypt`, which then read the exact input bytes.

    Not for the message path: it costs about 1 ms for a SignedData carrying a
    certificate, and asn1crypto copies the content once per nesting level (several
    times the message size for large content). To dispatch, use `content_type_of(bytes)`
    (reads one header) and pass the bytes to `verify_signed` or `decrypt`.
    """
    data = _as_bytes(data, policy)
    _force(asn1_cms.ContentInfo.load(data, strict=True))
    # Hand out a fresh, lazily parsed copy: forcing materialises DEFAULT values, and a
    # structure asn1crypto thinks was modified would be re-encoded by dump().
    ci = asn1_cms.ContentInfo.load(data, strict=True)
    ci._smime_source = data  # verify_signed/decrypt read these exact bytes, not a dump()
    return ci


def _force(value: Any, depth: int = 0) -> None:
    """Parse every nested field (without .native, which re-serialises mutated trees)."""
    if depth > 100:
        raise MalformedError("structure nested too deeply")
    if isinstance(value, core.Choice):
        _force(value.chosen, depth + 1)
    elif isinstance(value, core.Sequence):
        for name in value:
            _force(value[name], depth + 1)
    elif isinstance(value, core.SequenceOf):
        for child in value:
            _force(child, depth + 1)
    elif isinstance(value, core.Any):
        if value.contents is not None:
            _force(value.parsed, depth + 1)
    elif isinstance(value, core.Asn1Value):  # primitives: decode the value
        _ = value.native


@_boundary
def content_type_of(data_or_ci: bytes | asn1_cms.ContentInfo) -> str:
    """The ContentInfo's content type as asn1crypto names it ('signed_data',
    'enveloped_data', 'authenticated_enveloped_data', 'data'...), or the dotted OID.
    Cheap for bytes: only the outer header is read."""
    if isinstance(data_or_ci, asn1_cms.ContentInfo):
        return str(data_or_ci["content_type"].native)
    data = _as_bytes(data_or_ci, DEFAULT_POLICY)
    ident, s, e, _ = read(data, 0, len(data))
    if ident != SEQUENCE:
        raise MalformedError("not a CMS ContentInfo (no SEQUENCE)")
    os_, oe, _ = expect(data, s, e, OID, "ContentInfo contentType")
    return _type_name(data[os_:oe])


@_boundary
def data_content(data: bytes) -> bytes:
    """The octets of a ContentInfo of type id-data (BER chunked octets joined)."""
    data = _as_bytes(data, DEFAULT_POLICY)
    ctype, s, e = _outer(data)
    if ctype != _OID_DATA:
        raise UnsupportedError(f"expected data, got {_type_name(ctype)}")
    if s == e == 0:
        return b""
    inner = children(data, s, e)
    if len(inner) != 1 or inner[0][0] not in (OCTET_STRING, OCTET_STRING_C):
        raise MalformedError("malformed id-data content")
    return asn1.octets(data, *inner[0][:3])


# --------------------------------------------------------------------------- signing


#: Digests `sign` accepts. SHA-1 exists only so tests can make the weak-algorithm case;
#: receivers reject it under the default policy.
_SIGN_DIGESTS = ("sha256", "sha384", "sha512", "sha224", "sha1")
_SIG_ALG_ID = {
    **{("ec", d): seq(asn1.oid(BY_NAME[f"ecdsa-with-{d.upper()}"].oid)) for d in _SIGN_DIGESTS},
    **{
        ("rsa", d): seq(asn1.oid(BY_NAME[f"{d}WithRSAEncryption"].oid), _NULL)
        for d in _SIGN_DIGESTS
    },
    **{
        ("pss", d): seq(
            asn1.oid(BY_NAME["RSASSA-PSS"].oid),
            seq(
                asn1.explicit(0, seq(asn1.oid(BY_NAME[d].oid), _NULL)),
                asn1.explicit(
                    1, seq(asn1.oid(BY_NAME["id-mgf1"].oid), seq(asn1.oid(BY_NAME[d].oid), _NULL))
                ),
                asn1.explicit(2, asn1.integer(hash_for(d).digest_size)),
            ),
        )
        for d in _SIGN_DIGESTS
    },
    ("ed25519", "sha512"): seq(asn1.oid(BY_NAME["Ed25519"].oid)),
}
_ECDSA = {d: ec.ECDSA(hash_for(d)) for d in _SIGN_DIGESTS}
_DIGEST_ALG_ID = {n: seq(asn1.oid(BY_NAME[n].oid)) for n in _SIGN_DIGESTS}
_OID_SIGNING_TIME = asn1.oid("1.2.840.113549.1.9.5")
_OID_MESSAGE_DIGEST = asn1.oid("1.2.840.113549.1.9.4")
_CI_SIGNED_DATA = asn1.oid("1.2.840.113549.1.7.2")
_DATA_TYPE = asn1.oid("1.2.840.113549.1.7.1")


@per_object
def _signing(
    key: Any, f: CertFacts, digest: str, rsa_pss: bool
) -> tuple[str, bytes, Callable[[bytes], bytes]]:
    """(digest, DER signatureAlgorithm, function signing the DER signed attributes) for
    signing with `key` as the holder of the certificate `f` describes; ProtectError when
    the key is not that certificate's or cannot sign. Ed25519 always uses SHA-512.
    Remembered per key: the same identity signs message after message."""
    used = "sha512" if isinstance(key, ed25519.Ed25519PrivateKey) else digest
    if used not in _DIGEST_ALG_ID:
        raise ProtectError(f"will not sign with digest {used!r}")
    try:
        if key.public_key() != f.public_key:
            raise ProtectError("the signing key does not belong to the signer certificate")
    except (AttributeError, TypeError, UnsupportedAlgorithm):
        raise ProtectError(f"cannot sign with a {type(key).__name__} key") from None
    sig_alg, signer = _signer(key, used, rsa_pss)
    return used, sig_alg, signer


def _signer(key: Any, digest: str, rsa_pss: bool) -> tuple[bytes, Callable[[bytes], bytes]]:
    """(DER signatureAlgorithm, function signing the DER signed attributes)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        ecdsa = _ECDSA[digest]
        return _SIG_ALG_ID["ec", digest], lambda m: key.sign(m, ecdsa)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return _SIG_ALG_ID["ed25519", "sha512"], key.sign
    if isinstance(key, rsa.RSAPrivateKey):
        h = hash_for(digest)
        if rsa_pss:
            pss = padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
            return _SIG_ALG_ID["pss", digest], lambda m: key.sign(m, pss, h)
        return _SIG_ALG_ID["rsa", digest], lambda m: key.sign(m, padding.PKCS1v15(), h)
    raise ProtectError(
        f"cannot sign with a {type(key).__name__} key (need EC P-256, Ed25519 or RSA)"
    )


@functools.lru_cache(maxsize=16)
def _attr_content_type(ect: bytes) -> bytes:
    return seq(asn1.oid("1.2.840.113549.1.9.3"), tlv(SET, ect))


def _attr(oid_tlv: bytes, value: bytes) -> bytes:
    """Attribute ::= SEQUENCE { attrType, SET { value } } for a short value."""
    return _attr_head(oid_tlv, len(value)) + value


@functools.lru_cache(maxsize=32)
def _attr_head(oid_tlv: bytes, value_len: int) -> bytes:
    """What precedes a value of `value_len` octets in its Attribute (the same few recur)."""
    set_hdr = hdr(SET, value_len)
    return hdr(SEQUENCE, len(oid_tlv) + len(set_hdr) + value_len) + oid_tlv + set_hdr


@per_object
def _certificates_field(f: CertFacts, chain: tuple[x509.Certificate, ...]) -> bytes:
    """[0] IMPLICIT CertificateSet: the signer certificate first, then the chain.
    Remembered per signer: the same identity signs message after message."""
    ders = [f.der]
    for c in chain:
        der = facts(c).der
        if der not in ders:
            ders.append(der)
    return tlv(ctx(0), b"".join(ders))


@functools.lru_cache(maxsize=32)
def _signer_info_lead(ski: bytes | None, issuer_and_serial: bytes, digest: str) -> bytes:
    """A SignerInfo's version, signer identifier and digestAlgorithm: version 3 with the
    subjectKeyIdentifier [0] when `ski` is given, else version 1 with issuer and serial."""
    if ski is not None:
        return b"\x02\x01\x03" + tlv(_CTX0_PRIMITIVE, ski) + _DIGEST_ALG_ID[digest]
    return b"\x02\x01\x01" + issuer_and_serial + _DIGEST_ALG_ID[digest]


@functools.lru_cache(maxsize=16)
def _signed_data_head(version_1: bool, digest: str) -> bytes:
    """SignedData's version and digestAlgorithms SET."""
    return (b"\x02\x01\x01" if version_1 else b"\x02\x01\x03") + tlv(SET, _DIGEST_ALG_ID[digest])


def sign(
    content: bytes,
    *,
    key: Any,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate] = (),
    include_certificates: bool = True,
    detached: bool = False,
    signing_time: datetime,
    digest: str = "sha256",
    rsa_pss: bool = False,
    econtent_type: str = "data",
    smime_capabilities: bool = True,
    compact: bool = False,
) -> bytes:
    """DER ContentInfo(SignedData) over `content` with one SignerInfo (v1, issuer and
    serial): signed attributes contentType, signingTime, messageDigest,
    SMIMECapabilities, signingCertificateV2. `detached` leaves eContent out (for
    multipart/signed). Ed25519 always uses SHA-512 (RFC 8419). A naive `signing_time`
    is taken as UTC. The certificates field holds the signer certificate, then `chain`.

    `compact` is for a receiver that already holds the signer certificate (see
    `sign_parts`)."""
    return b"".join(
        sign_parts(
            (content,),
            key=key,
            certificate=certificate,
            chain=chain,
            include_certificates=include_certificates,
            detached=detached,
            signing_time=signing_time,
            digest=digest,
            rsa_pss=rsa_pss,
            econtent_type=econtent_type,
            smime_capabilities=smime_capabilities,
            compact=compact,
        )
    )


def sign_parts(
    content: Sequence[bytes | memoryview],
    *,
    key: Any,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate] = (),
    include_certificates: bool = True,
    detached: bool = False,
    signing_time: datetime,
    digest: str = "sha256",
    rsa_pss: bool = False,
    econtent_type: str = "data",
    smime_capabilities: bool = True,
    compact: bool = False,
) -> list[bytes | memoryview]:
    """`sign` over the concatenation of `content`, given back as the pieces whose
    concatenation is the DER: the content pieces are the very objects passed in, so a
    large message is neither joined before signing nor copied into the structure until
    the caller writes the pieces out (or encrypts them) once.

    `compact` (for a receiver known to hold the signer certificate, so that a pager-mode
    request fits UDP) leaves out what such a receiver already has:
    - the signer is named by its subject key identifier (SignerInfo v3, RFC 5652 5.3)
      instead of issuer and serial, when the certificate carries one; the receiver finds
      the certificate it holds by that identifier;
    - signingCertificateV2 names the certificate by its SHA-256 only (RFC 5035: the
      optional issuerSerial left out); the binding to the exact certificate stays;
    - no SMIMECapabilities (RFC 8551 2.5.2, a SHOULD): the receiver learnt them with our
      certificate, on first contact, where they are always sent.
    contentType, signingTime and messageDigest always stay."""
    f = facts(certificate)
    digest, sig_alg, signer = _signing(key, f, digest, rsa_pss)
    ect = _type_oid(econtent_type)
    md = _digest(digest, content)
    ski = f.ski_extension if compact else None
    attrs = [
        _attr_content_type(ect),
        _attr(_OID_SIGNING_TIME, asn1.encode_time(signing_time)),
        _attr(_OID_MESSAGE_DIGEST, octet_string(md)),
        f.ess_attr_compact if compact else f.ess_attr,
    ]
    if smime_capabilities and not compact:
        attrs.append(_SMIME_CAPABILITIES_ATTR)
    signed_attrs = set_of(attrs)
    signature = signer(signed_attrs)
    signer_info = seq(
        _signer_info_lead(ski, f.issuer_and_serial, digest),
        b"\xa0" + signed_attrs[1:],  # [0] IMPLICIT SET OF Attribute
        sig_alg,
        octet_string(signature),
    )
    certs = _certificates_field(f, tuple(chain)) if include_certificates else b""
    # RFC 5652 5.1: version 3 when a SignerInfo is v3 or the content is not id-data.
    head = _signed_data_head(ect == _DATA_TYPE and ski is None, digest)
    tail = certs + tlv(SET, signer_info)
    if detached:
        encap_head = seq(ect)
        n = 0
        content = ()
    else:
        n = sum(map(_nbytes, content))
        os_hdr = hdr(OCTET_STRING, n)
        ex_hdr = hdr(0xA0, len(os_hdr) + n)
        encap_head = b"".join(
            (hdr(SEQUENCE, len(ect) + len(ex_hdr) + len(os_hdr) + n), ect, ex_hdr, os_hdr)
        )
    sd_len = len(head) + len(encap_head) + n + len(tail)
    sd_hdr = hdr(SEQUENCE, sd_len)
    ex0 = hdr(0xA0, len(sd_hdr) + sd_len)
    ci_hdr = hdr(SEQUENCE, len(_CI_SIGNED_DATA) + len(ex0) + len(sd_hdr) + sd_len)
    prefix = b"".join((ci_hdr, _CI_SIGNED_DATA, ex0, sd_hdr, head, encap_head))
    return [prefix, *content, tail]


def _nbytes(part: bytes | memoryview) -> int:
    return part.nbytes if isinstance(part, memoryview) else len(part)


def certs_only(certificates: Sequence[x509.Certificate]) -> bytes:
    """DER ContentInfo(SignedData) with certificates only: no signers, no content
    (RFC 8551 section 3.6, the body of a 493 Undecipherable)."""
    ders = b"".join(facts(c).der for c in certificates)
    sd = seq(
        b"\x02\x01\x01",
        tlv(SET, b""),
        seq(asn1.oid("1.2.840.113549.1.7.1")),
        tlv(ctx(0), ders),
        tlv(SET, b""),
    )
    return seq(asn1.oid("1.2.840.113549.1.7.2"), asn1.explicit(0, sd))


# --------------------------------------------------------------------------- verifying


@dataclass(slots=True)
class _SignerInfo:
    rid: Rid
    digest: AlgInfo
    sig_alg: AlgInfo
    sig_params: bytes | None
    signature: bytes
    attrs_tbs: bytes | None  # DER SET OF the signed attributes, as signed
    #: attribute type OID octets -> (values start, values end, attribute start, attribute
    #: end) for each occurrence
    attrs: dict[bytes, list[tuple[int, int, int, int]]] | None


def _parse_signer_info(data: bytes, s: int, e: int) -> _SignerInfo:
    parts = children(data, s, e)
    if not 5 <= len(parts) <= 7 or parts[0][0] != INTEGER:
        raise MalformedError("malformed SignerInfo")
    raw_version = data[parts[0][1] : parts[0][2]]
    if raw_version not in (b"\x01", b"\x03"):
        raise MalformedError(f"SignerInfo version {read_int(data, parts[0][1], parts[0][2])}")
    rid = _read_rid(data, parts[1][0], parts[1][1], parts[1][2], _CTX0_PRIMITIVE)
    if parts[2][0] != SEQUENCE:
        raise MalformedError("malformed SignerInfo digestAlgorithm")
    digest, _ = _alg_id(data, parts[2][1], parts[2][2], "digest")
    i = 3
    attrs_tbs: bytes | None = None
    attrs: dict[bytes, list[tuple[int, int, int, int]]] | None = None
    if parts[i][0] == _CTX0:
        _, as_, ae, _, _ = parts[i]
        attrs_tbs = hdr(SET, ae - as_) + data[as_:ae]
        attrs = {}
        for ident, cs, ce, nxt, at in children(data, as_, ae):
            oi, os_, oe, p = read(data, cs, ce)
            si_, ss, se, q = read(data, p, ce)
            if ident != SEQUENCE or oi != OID or si_ != SET or q != ce:
                raise MalformedError("malformed signed attribute")
            where = (ss, se, at, nxt)
            kind = data[os_:oe]
            if kind in attrs:
                attrs[kind].append(where)
            else:
                attrs[kind] = [where]
        i += 1
    if (
        i + 1 >= len(parts)
        or parts[i][0] != SEQUENCE
        or parts[i + 1][0] not in (OCTET_STRING, OCTET_STRING_C)
    ):
        raise MalformedError("malformed SignerInfo")
    sig_alg, sig_params = _alg_id(data, parts[i][1], parts[i][2], "signature")
    signature = asn1.octets(data, *parts[i + 1][:3])
    i += 2
    if i < len(parts) and parts[i][0] != _CTX1:
        raise MalformedError("malformed SignerInfo unsignedAttrs")
    if i + 1 < len(parts):
        raise MalformedError("trailing fields in SignerInfo")
    return _SignerInfo(rid, digest, sig_alg, sig_params, signature, attrs_tbs, attrs)


def _pss_params(params: bytes | None) -> tuple[str, str, int]:
    """(hash, mgf1 hash, salt length) of RSASSA-PSS-params (RFC 4055; defaults SHA-1, 20)."""
    hash_name, mgf_hash, salt = "sha1", "sha1", 20
    if params is None:
        raise MalformedError("RSASSA-PSS without parameters")
    ident, s, e, _ = read(params, 0, len(params))
    if ident != SEQUENCE:
        raise MalformedError("malformed RSASSA-PSS parameters")
    for tag, cs, ce, _, _ in children(params, s, e):
        if tag == ctx(2):
            salt = read_int(params, *_single(params, cs, ce, INTEGER, "PSS salt length"))
            continue
        if tag == ctx(3):
            if read_int(params, *_single(params, cs, ce, INTEGER, "PSS trailer")) != 1:
                raise UnsupportedError("unsupported PSS trailer field")
            continue
        ps, pe = _single(params, cs, ce, SEQUENCE, "PSS parameters")
        row, p = _alg_id(params, ps, pe, "digest")
        if tag == ctx(0):
            hash_name = row.name
        elif tag == ctx(1):
            if row.name != "id-mgf1" or p is None:
                raise UnsupportedError(f"unsupported PSS mask generation {row.name}")
            _, ms, me, _ = read(p, 0, len(p))
            mgf_hash = _alg_id(p, ms, me, "digest")[0].name
        else:
            raise MalformedError("malformed RSASSA-PSS parameters")
    if salt < 0:
        raise MalformedError("negative PSS salt length")
    return hash_name, mgf_hash, salt


class _Invalid(Exception):
    """A signer check failed: (reason, weak)."""

    def __init__(self, reason: str, weak: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.weak = weak


def _one_value(
    data: bytes, si: _SignerInfo, oid_der: bytes, what: str
) -> tuple[int, int, int, int, int] | None:
    assert si.attrs is not None
    found = si.attrs.get(oid_der)
    if not found:
        return None
    if len(found) == 1 and found[0][0] < found[0][1]:
        ident, s, e, nxt = read(data, found[0][0], found[0][1])
        if nxt == found[0][1]:  # the one value
            return ident, s, e, nxt, found[0][0]
    values = children(data, found[0][0], found[0][1]) if len(found) == 1 else ()
    if len(values) != 1:
        raise _Invalid(f"the {what} attribute must appear once with one value")
    return values[0]


class _Verifier:
    """State shared by the signers of one SignedData (digests and certificates computed once)."""

    def __init__(
        self,
        data: bytes,
        parts: list[memoryview] | None,
        econtent_type: bytes,
        certificates: list[CertFacts],
        policy: Policy,
    ) -> None:
        self.data = data
        self.parts = parts
        self.econtent_type = econtent_type
        self.certificates = certificates
        self.policy = policy
        self._digests: dict[str, bytes] = {}
        self._joined: bytes | None = None

    def digest(self, name: str) -> bytes:
        d = self._digests.get(name)
        if d is None:
            assert self.parts is not None
            d = self._digests[name] = _digest(name, self.parts)
        return d

    def content(self) -> bytes:
        if self._joined is None:
            assert self.parts is not None
            self._joined = b"".join(self.parts)
        return self._joined

    def find_certificate(self, rid: Rid, si: _SignerInfo | None = None) -> CertFacts | None:
        """The certificate `rid` names. A subject key identifier names a key, which may be
        in several certificates (a renewal that kept the key): the one the signed
        signingCertificate(V2) attribute names is preferred, else the first."""
        found = None
        for f in self.certificates:
            if f.matches(rid):
                if found is None:
                    found = f
                    if rid.ski is None or si is None or si.attrs is None:
                        return f
                elif f is not found and f.der != found.der:
                    try:
                        self._check_signing_certificate(si, found)  # type: ignore[arg-type]
                        return found
                    except _Invalid:
                        found = f
        return found

    def check(self, si: _SignerInfo) -> SignerResult:
        algs = (si.digest.as_algorithm("digest"), si.sig_alg.as_algorithm("signature"))
        cert: CertFacts | None = None
        signing_time = None
        try:
            if si.attrs is not None:
                st = _one_value(self.data, si, _A_SIGNING_TIME, "signing time")
                if st is not None:
                    try:
                        signing_time = asn1.parse_time(st[0], self.data[st[1] : st[2]])
                    except MalformedError:
                        raise _Invalid("the signing time attribute is malformed") from None
            cert = self.find_certificate(si.rid, si)
            self._check(si, cert)
        except (UnsupportedError, UnsupportedAlgorithm) as exc:
            bad = _Invalid(f"unsupported: {exc}")
            return SignerResult(
                cert.cert if cert else None,
                False,
                False,
                bad.reason,
                signing_time,
                algs,
                si.rid.describe(),
            )
        except _Invalid as bad:
            return SignerResult(
                cert.cert if cert else None,
                False,
                bad.weak,
                bad.reason,
                signing_time,
                algs,
                si.rid.describe(),
            )
        assert cert is not None
        return SignerResult(
            cert.cert, True, False, "signature valid", signing_time, algs, si.rid.describe()
        )

    def _check(self, si: _SignerInfo, cert: CertFacts | None) -> None:
        policy = self.policy
        digest, sig_alg = si.digest, si.sig_alg
        if digest.kind != "digest":
            raise _Invalid(f"unsupported digest algorithm {digest.name}")
        if not policy.digest_ok(digest.name):
            raise _Invalid(f"{digest_display(digest.name)} rejected by policy", weak=True)
        # The signature algorithm and the hash it signs with.
        name = sig_alg.name
        if name == "RSASSA-PSS":
            sig_hash, mgf_hash, _ = _pss_params(si.sig_params)
            for h in (sig_hash, mgf_hash):
                if not policy.digest_ok(h):
                    raise _Invalid(f"{digest_display(h)} rejected by policy", weak=True)
        elif name in ("Ed25519", "Ed448"):
            sig_hash = ""
        elif sig_alg.kind == "signature" or name == "id-ecPublicKey":
            sig_hash = sig_alg.hash or digest.name
            if not policy.digest_ok(sig_hash):
                raise _Invalid(f"{digest_display(sig_hash)} rejected by policy", weak=True)
        else:
            raise _Invalid(f"unsupported signature algorithm {name}")
        if cert is None:
            raise _Invalid("signer certificate not found")
        pub = cert.public_key
        if isinstance(pub, rsa.RSAPublicKey) and not policy.rsa_ok(pub.key_size):
            raise _Invalid(
                f"RSA key of {pub.key_size} bits rejected by policy "
                f"(minimum {policy.min_rsa_bits})",
                weak=True,
            )
        if self.parts is None:
            raise _Invalid("signed content not supplied (detached signature)")
        md = self.digest(digest.name)
        if si.attrs is not None:
            ct = _one_value(self.data, si, _A_CONTENT_TYPE, "content type")
            mdv = _one_value(self.data, si, _A_MESSAGE_DIGEST, "message digest")
            if ct is None or mdv is None:
                raise _Invalid("signed attributes lack the content type or message digest")
            if ct[0] != OID or self.data[ct[1] : ct[2]] != self.econtent_type:
                raise _Invalid(
                    "the content type attribute does not match the encapsulated content type"
                )
            if mdv[0] != OCTET_STRING or not hmac.compare_digest(self.data[mdv[1] : mdv[2]], md):
                raise _Invalid("message digest does not match the content")
            self._check_signing_certificate(si, cert)
            message: bytes | None = si.attrs_tbs
            prehashed = None
        else:
            if self.econtent_type != _OID_DATA:
                raise _Invalid("signed attributes are required for this content type")
            message, prehashed = None, md
        try:
            self._verify(pub, name, sig_hash, si, message, prehashed)
        except InvalidSignature:
            raise _Invalid("signature does not verify") from None
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise _Invalid("signature does not verify") from None

    def _verify(
        self,
        pub: Any,
        name: str,
        sig_hash: str,
        si: _SignerInfo,
        message: bytes | None,
        prehashed: bytes | None,
    ) -> None:
        sig = si.signature
        if name in ("Ed25519", "Ed448"):
            want = ed25519.Ed25519PublicKey if name == "Ed25519" else ed448.Ed448PublicKey
            if not isinstance(pub, want):
                raise _Invalid("the signer key does not fit the signature algorithm")
            pub.verify(sig, message if message is not None else self.content())
            return
        if message is not None and name.startswith("ecdsa") and sig_hash in _ECDSA:
            if not isinstance(pub, ec.EllipticCurvePublicKey):
                raise _Invalid("the signer key does not fit the signature algorithm")
            pub.verify(sig, message, _ECDSA[sig_hash])  # the common case
            return
        h: hashes.HashAlgorithm = hash_for(sig_hash)
        if prehashed is not None:
            if sig_hash != si.digest.name:
                prehashed = self.digest(sig_hash)
            h, data = utils.Prehashed(h), prehashed  # type: ignore[assignment]
        else:
            assert message is not None
            data = message
        if name.startswith("ecdsa") or name == "id-ecPublicKey":
            if not isinstance(pub, ec.EllipticCurvePublicKey):
                raise _Invalid("the signer key does not fit the signature algorithm")
            pub.verify(sig, data, ec.ECDSA(h))
        elif name == "RSASSA-PSS":
            if not isinstance(pub, rsa.RSAPublicKey):
                raise _Invalid("the signer key does not fit the signature algorithm")
            _, mgf_hash, salt = _pss_params(si.sig_params)
            pub.verify(
                sig, data, padding.PSS(mgf=padding.MGF1(hash_for(mgf_hash)), salt_length=salt), h
            )
        elif name == "rsaEncryption" or name.endswith("WithRSAEncryption"):
            if not isinstance(pub, rsa.RSAPublicKey):
                raise _Invalid("the signer key does not fit the signature algorithm")
            pub.verify(sig, data, padding.PKCS1v15(), h)
        else:
            raise _Invalid(f"unsupported signature algorithm {name}")

    def _check_signing_certificate(self, si: _SignerInfo, cert: CertFacts) -> None:
        """RFC 5035: when present, the first ESSCertID(v2) must name the signer cert."""
        for oid_der, v2 in ((_A_SIGNING_CERT_V2, True), (_A_SIGNING_CERT, False)):
            val = _one_value(self.data, si, oid_der, "signing certificate")
            if val is None:
                continue
            data = self.data
            assert si.attrs is not None
            _, _, a_s, a_e = si.attrs[oid_der][0]
            if v2 and data[a_s:a_e] == cert.ess_attr:  # the exact attribute we would write
                continue
            if val[0] != SEQUENCE:
                raise _Invalid("the signing certificate attribute is malformed")
            try:
                cs, ce = children(data, val[1], val[2])[0][1:3]  # certs SEQUENCE OF
                ids = children(data, cs, ce)
                if not ids:
                    raise MalformedError("empty")
                fields = children(data, ids[0][1], ids[0][2])
                hash_name = "sha256" if v2 else "sha1"
                if fields[0][0] == SEQUENCE:
                    hash_name = _alg_id(data, fields[0][1], fields[0][2], "digest")[0].name
                    fields = fields[1:]
                if fields[0][0] != OCTET_STRING:
                    raise MalformedError("no certHash")
                want = data[fields[0][1] : fields[0][2]]
            except (MalformedError, IndexError):
                raise _Invalid("the signing certificate attribute is malformed") from None
            if hash_name not in ("sha1", "sha256", "sha384", "sha512"):
                continue
            got = hashlib.new(hash_name, cert.der).digest()
            if not hmac.compare_digest(got, want):
                raise _Invalid(
                    "the signing certificate attribute does not match the signer certificate"
                )


@_boundary
def verify_signed(
    ci_or_bytes: bytes | asn1_cms.ContentInfo,
    *,
    detached_content: bytes | None = None,
    extra_certificates: Sequence[x509.Certificate] = (),
    policy: Policy = DEFAULT_POLICY,
    content_view: bool = False,
) -> SignedResult:
    """Check every SignerInfo of a SignedData cryptographically (no trust decision).

    The signer certificate is looked up by issuer and serial or subject key identifier
    among the certificates field and `extra_certificates`. A bad signature is
    `valid=False` with a reason, never an exception; a digest or RSA key size the
    policy rejects is `weak=True` (and never valid). MalformedError for structure
    problems, UnsupportedError when the input is not SignedData.

    With `content_view`, an encapsulated content in one piece comes back as a read-only
    memoryview of the input instead of a copy (for large messages).
    """
    data = _as_bytes(ci_or_bytes, policy)
    ctype, s, e = _outer(data)
    if ctype != _OID_SIGNED_DATA:
        raise UnsupportedError(f"expected signed-data, got {_type_name(ctype)}")
    s, e, _ = expect(data, s, e, SEQUENCE, "SignedData")
    parts = children(data, s, e)
    if len(parts) < 4 or parts[0][0] != INTEGER or parts[1][0] != SET or parts[2][0] != SEQUENCE:
        raise MalformedError("malformed SignedData")
    version = read_int(data, parts[0][1], parts[0][2])
    if not 1 <= version <= 5:
        raise MalformedError(f"SignedData version {version}")
    # encapContentInfo
    encap = children(data, parts[2][1], parts[2][2])
    if not encap or encap[0][0] != OID or len(encap) > 2:
        raise MalformedError("malformed encapContentInfo")
    econtent_type = data[encap[0][1] : encap[0][2]]
    content_parts: list[memoryview] | None = None
    if len(encap) == 2:
        if encap[1][0] != _CTX0:
            raise MalformedError("malformed eContent")
        inner = children(data, encap[1][1], encap[1][2])
        if len(inner) != 1:
            raise MalformedError("malformed eContent")
        if inner[0][0] not in (OCTET_STRING, OCTET_STRING_C):
            raise UnsupportedError("PKCS#7 content that is not an OCTET STRING")
        mv = memoryview(data)
        content_parts = [mv[a:b] for a, b in octet_chunks(data, *inner[0][:3])]
    elif detached_content is not None:
        content_parts = [memoryview(detached_content)]
    idx = 3
    certificates: list[CertFacts] = []
    crls: list[x509.CertificateRevocationList] = []
    if idx < len(parts) and parts[idx][0] == _CTX0:
        for ident, _, _, nxt, at in children(data, parts[idx][1], parts[idx][2]):
            if ident == SEQUENCE:
                try:
                    certificates.append(facts_from_der(data[at:nxt]))
                except ValueError as exc:
                    raise MalformedError(f"unreadable certificate in SignedData: {exc}") from None
        idx += 1
    if idx < len(parts) and parts[idx][0] == _CTX1:
        for ident, _, _, nxt, at in children(data, parts[idx][1], parts[idx][2]):
            if ident == SEQUENCE:
                try:
                    crls.append(x509.load_der_x509_crl(data[at:nxt]))
                except ValueError as exc:
                    raise MalformedError(f"unreadable CRL in SignedData: {exc}") from None
        idx += 1
    if idx != len(parts) - 1 or parts[idx][0] != SET:
        raise MalformedError("malformed SignedData signerInfos")
    signer_infos = []
    for ident, cs, ce, _, _ in children(data, parts[idx][1], parts[idx][2]):
        if ident != SEQUENCE:
            raise MalformedError("malformed SignerInfo")
        signer_infos.append(_parse_signer_info(data, cs, ce))
    known = (
        certificates + [facts(c) for c in extra_certificates]
        if extra_certificates
        else certificates
    )
    verifier = _Verifier(data, content_parts, econtent_type, known, policy)
    signers = tuple([verifier.check(si) for si in signer_infos])
    if len(encap) == 2:
        assert content_parts is not None
        if len(content_parts) != 1:
            content = verifier.content()
        elif content_view:
            content = content_parts[0].toreadonly()  # type: ignore[assignment]
        else:
            content = bytes(content_parts[0])
    elif detached_content is not None:
        content = bytes(detached_content)
    else:
        content = b""
    return SignedResult(
        content=content,
        econtent_type=_type_name(econtent_type),
        signers=signers,
        certificates=tuple([f.cert for f in certificates]),
        crls=tuple(crls),
        certs_only=not signer_infos and len(encap) == 1,
    )


# --------------------------------------------------------------------------- encrypting


def _out_buffer(total: int) -> tuple[io.BytesIO, memoryview]:
    """A zero-filled output buffer of `total` bytes whose getvalue() does not copy."""
    bio = io.BytesIO()
    bio.seek(total - 1)
    bio.write(b"\x00")
    return bio, bio.getbuffer()


def encrypt(
    content: bytes,
    recipients: Sequence[x509.Certificate],
    *,
    cipher: str = "aes128-gcm",
    rsa_oaep: bool = True,
    random_bytes: Callable[[int], bytes] = os.urandom,
    content_type: str = "data",
    compact: bool = False,
) -> bytes:
    """DER ContentInfo encrypting `content` to every certificate in `recipients`.

    GCM ciphers give AuthEnvelopedData v0 (RFC 5083, GCMParameters with a 12-byte nonce
    and a 16-byte ICV); CBC ciphers give EnvelopedData. Each recipient gets a
    RecipientInfo chosen by its key: EC P-256 and X25519 -> KeyAgreeRecipientInfo
    (ephemeral-static ECDH, X9.63 KDF with SHA-256, AES key wrap), RSA ->
    KeyTransRecipientInfo (RSAES-OAEP SHA-256 unless `rsa_oaep` is False).
    """
    return encrypt_parts(
        (content,),
        recipients,
        cipher=cipher,
        rsa_oaep=rsa_oaep,
        random_bytes=random_bytes,
        content_type=content_type,
        compact=compact,
    )


def encrypt_parts(
    content: Sequence[bytes | memoryview],
    recipients: Sequence[x509.Certificate],
    *,
    cipher: str = "aes128-gcm",
    rsa_oaep: bool = True,
    random_bytes: Callable[[int], bytes] = os.urandom,
    content_type: str = "data",
    compact: bool = False,
) -> bytes:
    """`encrypt` over the concatenation of the `content` pieces, which are encrypted one
    after the other straight into the output (they are never joined).

    `compact`: each RecipientInfo in its compact form (see `build_recipient_info`)."""
    row = BY_NAME.get(cipher) or BY_NAME.get(cipher.lower())
    if row is None or row.kind != "content-encryption" or row.mode not in ("gcm", "cbc"):
        raise ProtectError(
            f"cannot encrypt with {cipher!r} (use aes128-gcm, aes256-gcm, aes128-cbc or aes256-cbc)"
        )
    if not recipients:
        raise ProtectError("no recipients to encrypt to")
    cek = random_bytes(row.key_len)
    iv = random_bytes(12 if row.mode == "gcm" else 16)
    if len(cek) != row.key_len or len(iv) != (12 if row.mode == "gcm" else 16):
        raise ProtectError("random_bytes returned the wrong number of bytes")
    infos = [build_recipient_info(c, cek, rsa_oaep=rsa_oaep, compact=compact) for c in recipients]
    ris = set_of(infos)
    n = sum(map(_nbytes, content))
    gcm = row.mode == "gcm"
    if gcm:
        alg = _gcm_algorithm_head(row.oid) + iv + b"\x02\x01\x10"  # GCMParameters, ICV 16
        ct_len = n
        version = b"\x02\x01\x00"
        ci_oid = _CI_AUTH_ENVELOPED
        trailer_len = 18  # mac OCTET STRING (16)
    else:
        alg = seq(asn1.oid(row.oid), octet_string(iv))
        ct_len = (n // 16 + 1) * 16
        # RFC 5652 6.1: version 0 when every RecipientInfo is a v0 KeyTransRecipientInfo.
        all_v0 = all(info[0] == SEQUENCE and _version_of(info) == 0 for info in infos)
        version = b"\x02\x01\x00" if all_v0 else b"\x02\x01\x02"
        ci_oid = asn1.oid("1.2.840.113549.1.7.3")
        trailer_len = 0
    eci_head = _type_oid(content_type) + alg + hdr(0x80, ct_len)
    eci_hdr = hdr(SEQUENCE, len(eci_head) + ct_len)
    body_len = len(version) + len(ris) + len(eci_hdr) + len(eci_head) + ct_len + trailer_len
    body_hdr = hdr(SEQUENCE, body_len)
    ex0 = hdr(_CTX0, len(body_hdr) + body_len)
    ci_hdr = hdr(SEQUENCE, len(ci_oid) + len(ex0) + len(body_hdr) + body_len)
    prefix = b"".join([ci_hdr, ci_oid, ex0, body_hdr, version, ris, eci_hdr, eci_head])
    if gcm and n <= _BIG:
        # Small: sealed at once and joined (the pieces are a few kilobytes at most).
        one = content[0] if len(content) == 1 else b"".join(content)
        sealed = memoryview(AESGCM(cek).encrypt(iv, one, None))
        return b"".join((prefix, sealed[:n], b"\x04\x10", sealed[n:]))
    p = len(prefix)
    total = p + ct_len + trailer_len
    bio, out = _out_buffer(total)
    try:
        out[:p] = prefix
        if gcm and len(content) == 1:
            one = content[0]
            AESGCM(cek).encrypt_into(iv, one, None, out[p : p + n + 16])
            tag = bytes(out[p + n : p + n + 16])
            out[p + n : p + n + 2] = b"\x04\x10"
            out[p + n + 2 :] = tag
        elif gcm:
            enc = Cipher(algorithms.AES(cek), modes.GCM(iv)).encryptor()
            pos = p
            for part in content:
                pos += enc.update_into(part, out[pos:])
            enc.finalize()
            out[pos : pos + 2] = b"\x04\x10"
            out[pos + 2 :] = enc.tag
        else:
            if len(content) != 1:  # legacy CBC: rare enough to join the pieces
                content = (b"".join(content),)
            content = content[0]
            enc = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
            full = n - n % 16
            if full:
                enc.update_into(memoryview(content)[:full], out[p : p + full + 15])
            pad = 16 - n % 16
            last = bytes(content[full:]) + bytes((pad,)) * pad
            out[p + full :] = enc.update(last) + enc.finalize()
    finally:
        out.release()
    return bio.getvalue()


_CI_AUTH_ENVELOPED = asn1.oid("1.2.840.113549.1.9.16.1.23")


@functools.lru_cache(maxsize=8)
def _gcm_algorithm_head(cipher_oid: str) -> bytes:
    """A GCM AlgorithmIdentifier up to its 12-byte nonce: SEQUENCE { OID, GCMParameters
    SEQUENCE { OCTET STRING (12) ..., the ICV length follows the nonce."""
    oid = asn1.oid(cipher_oid)
    return hdr(SEQUENCE, len(oid) + 19) + oid + b"\x30\x11\x04\x0c"


def _version_of(info: bytes) -> int:
    """The leading INTEGER of a DER SEQUENCE (a KeyTransRecipientInfo's version)."""
    _, s, e, _ = read(info, 0, len(info))
    vs, ve, _ = expect(info, s, e, INTEGER, "RecipientInfo version")
    return read_int(info, vs, ve)


# --------------------------------------------------------------------------- decrypting


@dataclass(slots=True)
class _Enveloped:
    auth: bool
    entries: list[RecipientEntry]
    econtent_type: bytes
    cipher: AlgInfo
    cipher_params: bytes | None
    chunks: list[tuple[int, int]] | None
    mac: bytes
    aad: bytes | None


def _parse_enveloped(data: bytes) -> _Enveloped:
    ctype, s, e = _outer(data)
    if ctype == _OID_AUTH_ENVELOPED:
        auth = True
    elif ctype == _OID_ENVELOPED:
        auth = False
    else:
        raise UnsupportedError(f"expected enveloped data, got {_type_name(ctype)}")
    s, e, _ = expect(data, s, e, SEQUENCE, "EnvelopedData")
    ident, vs, ve, p = read(data, s, e)
    if ident != INTEGER:
        raise MalformedError("malformed EnvelopedData")
    version = read_int(data, vs, ve)
    if (auth and version != 0) or not 0 <= version <= 4:
        raise MalformedError(f"unexpected version {version}")
    if p >= e:
        raise MalformedError("malformed EnvelopedData")
    ident, rs, re_, p = read(data, p, e)
    if ident == _CTX0:  # originatorInfo: certificates for static-static ECDH only
        if p >= e:
            raise MalformedError("malformed EnvelopedData")
        ident, rs, re_, p = read(data, p, e)
    if ident != SET or p >= e:
        raise MalformedError("malformed EnvelopedData")
    ident, es, ee, p = read(data, p, e)
    if ident != SEQUENCE:
        raise MalformedError("malformed EnvelopedData")
    entries = parse_recipient_infos(data, rs, re_)
    eci = children(data, es, ee)
    if not 2 <= len(eci) <= 3 or eci[0][0] != OID or eci[1][0] != SEQUENCE:
        raise MalformedError("malformed EncryptedContentInfo")
    cipher, cparams = _alg_id(data, eci[1][1], eci[1][2], "content-encryption")
    chunks = None
    if len(eci) == 3:
        if eci[2][0] not in (_CTX0_PRIMITIVE, _CTX0):
            raise MalformedError("malformed encryptedContent")
        chunks = octet_chunks(data, *eci[2][:3])
    # What follows the EncryptedContentInfo, in order.
    rest = children(data, p, e) if p < e else []
    i = 0
    mac, aad = b"", None
    if auth:
        if i < len(rest) and rest[i][0] == _CTX1:
            aad = hdr(SET, rest[i][2] - rest[i][1]) + data[rest[i][1] : rest[i][2]]
            i += 1
        if i >= len(rest) or rest[i][0] != OCTET_STRING:
            raise MalformedError("AuthEnvelopedData without a mac")
        mac = data[rest[i][1] : rest[i][2]]
        i += 1
        if i < len(rest) and rest[i][0] == _CTX2:
            i += 1
    elif i < len(rest) and rest[i][0] == _CTX1:
        i += 1
    if i != len(rest):
        raise MalformedError("trailing fields in EnvelopedData")
    return _Enveloped(auth, entries, data[eci[0][1] : eci[0][2]], cipher, cparams, chunks, mac, aad)


@_boundary
def describe_recipients(ci: bytes | asn1_cms.ContentInfo) -> tuple[str, ...]:
    """Who an EnvelopedData or AuthEnvelopedData is for, one phrase per recipient."""
    env = _parse_enveloped(_as_bytes(ci, DEFAULT_POLICY))
    return tuple(entry.description for entry in env.entries)


def _gcm_params(params: bytes | None) -> tuple[bytes, int]:
    if params is None:
        raise MalformedError("GCM without parameters")
    if len(params) == 19 and params[:4] == b"\x30\x11\x04\x0c" and params[16:] == b"\x02\x01\x10":
        return params[4:16], 16  # the usual encoding: a 12-byte nonce and a 16-byte ICV
    ident, s, e, nxt = read(params, 0, len(params))
    parts = children(params, s, e) if ident == SEQUENCE else []
    if nxt != len(params) or not 1 <= len(parts) <= 2 or parts[0][0] != OCTET_STRING:
        raise MalformedError("malformed GCMParameters")
    nonce = params[parts[0][1] : parts[0][2]]
    icv = 12
    if len(parts) == 2:
        if parts[1][0] != INTEGER:
            raise MalformedError("malformed GCMParameters")
        icv = read_int(params, parts[1][1], parts[1][2])
    if icv not in (12, 13, 14, 15, 16):
        raise MalformedError(f"GCM ICV length {icv}")
    if not 8 <= len(nonce) <= 128:
        raise MalformedError(f"GCM nonce of {len(nonce)} bytes")
    return nonce, icv


def _cbc_iv(params: bytes | None, block: int, cipher: AlgInfo) -> tuple[bytes, int | None]:
    if params is None:
        raise MalformedError("CBC without an IV")
    ident, s, e, nxt = read(params, 0, len(params))
    rc2_bits = None
    if cipher.mode == "rc2" and ident == SEQUENCE:  # RC2-CBC-Parameter {version?, iv}
        parts = children(params, s, e)
        if parts and parts[0][0] == INTEGER:
            rc2_bits = read_int(params, parts[0][1], parts[0][2])
            parts = parts[1:]
        if len(parts) != 1 or parts[0][0] != OCTET_STRING:
            raise MalformedError("malformed RC2 parameters")
        ident, s, e = parts[0][0], parts[0][1], parts[0][2]
    if ident != OCTET_STRING or e - s != block or nxt != len(params):
        raise MalformedError("malformed CBC IV")
    return params[s:e], rc2_bits


def _gcm_split(
    dec: Any, parts: list[memoryview], size: int, split_head: Callable[[bytes], int]
) -> tuple[bytes, bytes]:
    """Decrypt `parts` as (head, rest): the first bytes are decrypted alone, `split_head`
    says how many of them are a header, and the rest is decrypted straight into a buffer
    of its exact size (no copy of the plaintext to cut the header off)."""
    need = min(size, _SPLIT_PREFIX)
    pieces: list[bytes] = []
    rest: list[memoryview] = []
    for part in parts:
        take = min(need, len(part))
        if take:
            pieces.append(dec.update(part[:take]))
            need -= take
        if take < len(part):
            rest.append(part[take:])
    first = b"".join(pieces)
    h = split_head(first)
    h = h if 0 < h <= len(first) else 0
    bio, out = _out_buffer(size - h)
    try:
        k = len(first) - h
        out[:k] = memoryview(first)[h:]
        pos = k
        for part in rest:
            pos += dec.update_into(part, out[pos:])
    finally:
        out.release()
    dec.finalize()
    return first[:h], bio.getvalue()


def _decrypt_content(
    env: _Enveloped,
    data: bytes,
    cek: bytes,
    split_head: Callable[[bytes], int] | None = None,
) -> tuple[bytes, bytes]:
    """(head, content): head is empty unless `split_head` split a large plaintext."""
    chunks = env.chunks
    if chunks is None:
        raise UnsupportedError("the encrypted content is not included (detached)")
    cipher = env.cipher
    if cipher.mode == "gcm":
        nonce, icv = _gcm_params(env.cipher_params)
        if len(env.mac) != icv:
            raise TamperedError("the GCM tag has the wrong length")
        small = len(chunks) == 1 and chunks[0][1] - chunks[0][0] <= _BIG
        if small and icv == 16 and len(nonce) == 12:  # in one piece: decrypted at once
            a, b = chunks[0]
            try:
                return b"", AESGCM(cek).decrypt(nonce, data[a:b] + env.mac, env.aad)
            except InvalidTag:
                raise TamperedError("GCM authentication failed: the message was altered") from None
    mv = memoryview(data)
    parts = [mv[a:b] for a, b in chunks]
    size = sum(len(p) for p in parts)
    if cipher.mode == "gcm":
        try:
            dec = Cipher(
                algorithms.AES(cek), modes.GCM(nonce, env.mac, min_tag_length=icv)
            ).decryptor()
            if env.aad is not None:
                dec.authenticate_additional_data(env.aad)
            if split_head is not None and size > _BIG:
                return _gcm_split(dec, parts, size, split_head)
            out = [dec.update(p) for p in parts]
            dec.finalize()
        except InvalidTag:
            raise TamperedError("GCM authentication failed: the message was altered") from None
        return b"", out[0] if len(out) == 1 else b"".join(out)
    algo: Any
    if cipher.mode == "cbc":
        block, algo = 16, algorithms.AES(cek)
    elif cipher.mode == "3des":
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES

        block, algo = 8, TripleDES(cek)
    elif cipher.mode == "rc2":
        from cryptography.hazmat.decrepit.ciphers.algorithms import RC2

        block, algo = 8, RC2(cek)
    else:
        raise UnsupportedError(f"unsupported content encryption {cipher.name}")
    iv, _ = _cbc_iv(env.cipher_params, block, cipher)
    if size == 0 or size % block:
        raise TamperedError("the ciphertext is not a whole number of blocks")
    cbc = Cipher(algo, modes.CBC(iv)).decryptor()
    pt = b"".join(cbc.update(p) for p in parts) + cbc.finalize()
    pad = pt[-1]
    if not 1 <= pad <= block or not hmac.compare_digest(pt[-pad:], bytes((pad,)) * pad):
        raise TamperedError("CBC padding is wrong: wrong key or altered message")
    return b"", pt[:-pad]


@_boundary
def decrypt(
    ci_or_bytes: bytes | asn1_cms.ContentInfo,
    keys: Sequence[tuple[Any, x509.Certificate]],
    *,
    policy: Policy = DEFAULT_POLICY,
    split_head: Callable[[bytes], int] | None = None,
) -> DecryptResult:
    """Decrypt an AuthEnvelopedData (AES-GCM) or EnvelopedData (AES-CBC; 3DES and RC2
    only when the policy accepts them) with whichever of `keys` a RecipientInfo names.

    NoRecipientKeyError when none does (the message lists who it was for);
    TamperedError when key unwrap, the GCM tag or the CBC padding fails;
    WeakAlgorithmError for a cipher or KDF the policy rejects.

    `split_head`, for large content: called with the first decrypted bytes (up to
    64 KiB + 4), it returns how many of them form a header (a MIME header section), which
    then comes back as `head`, apart from `content`; so the content after the header needs
    no copy of its own. It may not be called at all (small content): `head` is then empty.
    """
    data = _as_bytes(ci_or_bytes, policy)
    env = _parse_enveloped(data)
    cipher = env.cipher
    if cipher.kind != "content-encryption" or cipher.policy_name is None:
        raise UnsupportedError(f"unsupported content encryption {cipher.name}")
    if not policy.cipher_ok(cipher.policy_name):
        raise WeakAlgorithmError(f"{cipher.name} rejected by policy")
    if (cipher.mode == "gcm") != env.auth:
        raise MalformedError(f"{cipher.name} in the wrong envelope type")
    descriptions = tuple(entry.description for entry in env.entries)
    ours = prepare_keys(keys)
    candidates = [
        (entry, key)
        for entry in env.entries
        for key in ours
        if entry.rid is not None and key.matches(entry.rid)
    ]
    if not candidates:
        err = NoRecipientKeyError(
            "encrypted for " + "; ".join(descriptions) + " - we hold none of these keys"
        )
        err.recipients = descriptions  # type: ignore[attr-defined]
        raise err
    errors: list[SmimeError] = []
    for entry, key in candidates:
        try:
            cek, key_algs = open_entry(entry, key, cipher.key_len, policy)
            head, content = _decrypt_content(env, data, cek, split_head)
        except (TamperedError, WeakAlgorithmError, UnsupportedError, MalformedError) as exc:
            errors.append(exc)
            continue
        return DecryptResult(
            content=content,
            econtent_type=_type_name(env.econtent_type),
            authenticated=env.auth,
            algorithms=(cipher.as_algorithm("content-encryption"), *key_algs),
            recipient=entry.description,
            recipients=descriptions,
            head=head,
        )
    for kind in (WeakAlgorithmError, TamperedError, UnsupportedError):
        for failure in errors:
            if isinstance(failure, kind):
                raise failure
    raise errors[0]
