"""RecipientInfos of the S/MIME core: building them for certificates, opening them with keys.

KeyAgreeRecipientInfo for ECDH P-256 (RFC 5753) and X25519 (RFC 8418),
KeyTransRecipientInfo for RSA (RSAES-OAEP, PKCS#1 v1.5). Also the cached per-certificate
facts (DER, issuer, serial, public key) the CMS code needs.

`build_recipient_info` makes the DER RecipientInfo that carries a content-encryption key
to one certificate; `parse_recipient_infos` reads a RecipientInfos SET into
`RecipientEntry` rows (one per recipient identifier); `open_entry` recovers the key
with one of our private keys. Used by cms.py.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as _serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from messenger.pki.verdict import per_object

from . import asn1
from .algorithms import BY_NAME, RSA_ENCRYPTION, AlgInfo, hash_for, lookup
from .algorithms import alg_id as _alg_id
from .asn1 import (
    BIT_STRING,
    INTEGER,
    OCTET_STRING,
    OID,
    SEQUENCE,
    children,
    ctx,
    name_to_str,
    octet_string,
    read_int,
    seq,
)
from .errors import (
    MalformedError,
    ProtectError,
    TamperedError,
    UnsupportedError,
    WeakAlgorithmError,
)
from .policy import Policy
from .report import Algorithm

__all__ = [
    "CertFacts",
    "RecipientEntry",
    "RecipientKey",
    "Rid",
    "build_recipient_info",
    "facts",
    "facts_from_der",
    "issuer_and_serial",
    "names_equal",
    "open_entry",
    "parse_recipient_infos",
    "prepare_keys",
]

_CTX0 = ctx(0)
_CTX1 = ctx(1)
WRAP_FOR_KEY_LEN = {16: "id-aes128-wrap", 24: "id-aes192-wrap", 32: "id-aes256-wrap"}
_KA_SCHEME = BY_NAME["dhSinglePass-stdDH-sha256kdf-scheme"]
_CURVE_OID = {
    "secp256r1": "1.2.840.10045.3.1.7",
    "secp384r1": "1.3.132.0.34",
    "secp521r1": "1.3.132.0.35",
}
_CURVE_BY_OID = {
    "1.2.840.10045.3.1.7": ec.SECP256R1,
    "1.3.132.0.34": ec.SECP384R1,
    "1.3.132.0.35": ec.SECP521R1,
}
_NAMED_CURVE_PARAMS = {asn1.oid(o): c.name for o, c in _CURVE_BY_OID.items()}
_CURVE_NAME = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_ID_EC_PUBLIC_KEY = asn1.oid("1.2.840.10045.2.1")
_ECDH = ec.ECDH()
_X962 = _serialization.Encoding.X962
_UNCOMPRESSED = _serialization.PublicFormat.UncompressedPoint
_ID_X25519 = asn1.oid("1.3.101.110")
_SHA256_NULL = seq(asn1.oid("2.16.840.1.101.3.4.2.1"), b"\x05\x00")
#: RSAES-OAEP-params with SHA-256 and MGF1-SHA-256 (RFC 4055 section 4.1; the digest
#: AlgorithmIdentifiers carry NULL parameters as RFC 4055's sha256Identifier does).
_OAEP_SHA256 = seq(
    asn1.oid("1.2.840.113549.1.1.7"),
    seq(
        asn1.explicit(0, _SHA256_NULL),
        asn1.explicit(1, seq(asn1.oid("1.2.840.113549.1.1.8"), _SHA256_NULL)),
    ),
)
_RSA_V15 = seq(asn1.oid("1.2.840.113549.1.1.1"), b"\x05\x00")


class CertFacts:
    """What the core needs from one certificate, computed once: DER, issuer, serial,
    public key, subject key identifier, IssuerAndSerialNumber."""

    __slots__ = (
        "_der",
        "_ess",
        "_ess_compact",
        "_ias",
        "_public_key",
        "_ski",
        "_ski_ext",
        "cert",
        "issuer",
        "serial",
    )

    def __init__(self, cert: x509.Certificate, der: bytes | None = None) -> None:
        self.cert = cert
        self._der = der
        self.issuer: bytes = cert.issuer.public_bytes()
        self.serial: int = cert.serial_number
        self._public_key: Any = None
        self._ski: bytes | None = None
        self._ias: bytes | None = None
        self._ess: bytes | None = None
        self._ess_compact: bytes | None = None
        self._ski_ext: bytes | bool | None = False  # False: not looked up yet

    @property
    def der(self) -> bytes:
        if self._der is None:
            self._der = self.cert.public_bytes(_serialization.Encoding.DER)
        return self._der

    @property
    def public_key(self) -> Any:
        if self._public_key is None:
            self._public_key = self.cert.public_key()
        return self._public_key

    @property
    def ski(self) -> bytes:
        if self._ski is None:
            self._ski = _subject_key_id(self.cert)
        return self._ski

    @property
    def ski_extension(self) -> bytes | None:
        """The subjectKeyIdentifier extension's value, or None when the certificate has
        none. Only a key identifier the certificate itself carries may name it in a
        message: a receiver that does not derive one from the key would not find it."""
        if self._ski_ext is False:
            try:
                self._ski_ext = self.cert.extensions.get_extension_for_class(
                    x509.SubjectKeyIdentifier
                ).value.digest
            except (x509.ExtensionNotFound, ValueError):
                self._ski_ext = None
        return self._ski_ext  # type: ignore[return-value]

    @property
    def issuer_and_serial(self) -> bytes:
        if self._ias is None:
            self._ias = seq(self.issuer, asn1.integer(self.serial))
        return self._ias

    @property
    def ess_attr(self) -> bytes:
        """The signingCertificateV2 attribute (RFC 5035) naming this certificate: one
        ESSCertIDv2 with its SHA-256 (the DEFAULT hashAlgorithm, so left out) and
        IssuerSerial."""
        if self._ess is None:
            ess_cert_id = seq(
                octet_string(hashlib.sha256(self.der).digest()),
                seq(seq(asn1.explicit(4, self.issuer)), asn1.integer(self.serial)),
            )
            self._ess = seq(
                asn1.oid("1.2.840.113549.1.9.16.2.47"), asn1.tlv(0x31, seq(seq(ess_cert_id)))
            )
        return self._ess

    @property
    def ess_attr_compact(self) -> bytes:
        """signingCertificateV2 with one ESSCertIDv2 holding only the certificate's
        SHA-256 (RFC 5035: issuerSerial is OPTIONAL). The hash alone binds the
        signature to this exact certificate, which is what the attribute is for; the
        issuer name and serial only help a receiver find a certificate it is not given."""
        if self._ess_compact is None:
            ess_cert_id = seq(octet_string(hashlib.sha256(self.der).digest()))
            self._ess_compact = seq(
                asn1.oid("1.2.840.113549.1.9.16.2.47"), asn1.tlv(0x31, seq(seq(ess_cert_id)))
            )
        return self._ess_compact

    def matches(self, rid: Rid) -> bool:
        """Does the recipient or signer identifier name this certificate?"""
        if rid.ski is not None:
            return bool(self.ski) and hmac.compare_digest(rid.ski, self.ski)
        return rid.serial == self.serial and names_equal(rid.issuer or b"", self.issuer)


# Bounded caches of certificate facts. Certificates are immutable and a peer's
# certificate recurs message after message, so parsing it once pays. Entries hold the
# certificate itself, so an id() key cannot be reused while its entry lives.
_CACHE_SIZE = 256
_BY_ID: dict[int, CertFacts] = {}
_BY_DER: dict[bytes, CertFacts] = {}


def _remember(cache: dict[Any, CertFacts], key: Any, value: CertFacts) -> None:
    if len(cache) >= _CACHE_SIZE:
        try:
            del cache[next(iter(cache))]
        except (KeyError, RuntimeError, StopIteration):  # a concurrent caller won
            pass
    cache[key] = value


def facts(cert: x509.Certificate) -> CertFacts:
    """The (cached) facts of a certificate object."""
    f = _BY_ID.get(id(cert))
    if f is not None and f.cert is cert:
        return f
    f = CertFacts(cert)
    _remember(_BY_ID, id(cert), f)
    return f


def facts_from_der(der: bytes) -> CertFacts:
    """Parse a DER certificate (cached by its bytes); ValueError if it is not one."""
    f = _BY_DER.get(der)
    if f is None:
        try:
            cert = x509.load_der_x509_certificate(der)
            # names are parsed lazily; an unknown string type raises KeyError later
            cert.subject, cert.issuer  # noqa: B018
        except x509.InvalidVersion as exc:
            raise ValueError(str(exc)) from None
        except KeyError as exc:
            raise ValueError(f"a name in the certificate has an unknown type ({exc})") from None
        f = CertFacts(cert, der)
        _remember(_BY_DER, der, f)
        _remember(_BY_ID, id(f.cert), f)
    return f


def issuer_and_serial(certificate: x509.Certificate) -> bytes:
    """DER IssuerAndSerialNumber of a certificate."""
    return facts(certificate).issuer_and_serial


def _subject_key_id(certificate: x509.Certificate) -> bytes:
    try:
        return certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
    except (ValueError, UnsupportedAlgorithm):
        return b""


def names_equal(a: bytes, b: bytes) -> bool:
    """Distinguished names equal byte for byte, or after RFC 5280 7.1 normalisation."""
    if a == b:
        return True
    try:
        return bool(asn1_x509.Name.load(a) == asn1_x509.Name.load(b))
    except Exception:
        return False


# --------------------------------------------------------------------------- building


@lru_cache(maxsize=64)
def _shared_info(wrap_oid: str, key_len: int, ukm: bytes | None) -> bytes:
    """DER ECC-CMS-SharedInfo (RFC 5753 7.2): keyInfo is the wrap algorithm with absent
    parameters (as OpenSSL derives it), entityUInfo the ukm if any, suppPubInfo the KEK
    length in bits as a 32-bit big-endian number."""
    return seq(
        seq(asn1.oid(wrap_oid)),
        asn1.explicit(0, octet_string(ukm)) if ukm is not None else b"",
        asn1.explicit(2, octet_string((key_len * 8).to_bytes(4, "big"))),
    )


def _kek_and_wrap(z: bytes, wrap: AlgInfo, cek: bytes, ukm: bytes | None = None) -> bytes:
    """X9.63 KDF with SHA-256 over the shared secret (RFC 5753 7.2), then AES key wrap."""
    kek = X963KDF(hashes.SHA256(), wrap.key_len, _shared_info(wrap.oid, wrap.key_len, ukm)).derive(
        z
    )
    return aes_key_wrap(kek, cek)


def _kari(originator_key: bytes, rid: bytes, wrap: AlgInfo, encrypted_key: bytes) -> bytes:
    body = b"".join(
        (
            b"\x02\x01\x03",  # version 3
            asn1.explicit(0, asn1.tlv(_CTX1, originator_key)),  # originatorKey [1] IMPLICIT
            _kari_scheme(wrap.oid),
            seq(seq(rid, octet_string(encrypted_key))),
        )
    )
    return asn1.tlv(_CTX1, body)  # RecipientInfo kari [1] IMPLICIT


@lru_cache(maxsize=8)
def _kari_scheme(wrap_oid: str) -> bytes:
    """keyEncryptionAlgorithm: the ECDH scheme with the key wrap as its parameter."""
    return seq(asn1.oid(_KA_SCHEME.oid), seq(asn1.oid(wrap_oid)))


class _EcRecipient(NamedTuple):
    """What encrypting to one EC certificate needs besides fresh keys (computed once)."""

    curve: ec.EllipticCurve
    algorithm: bytes  # the ephemeral key's AlgorithmIdentifier
    rid: bytes


@per_object
def _ec_recipient(f: CertFacts, compact: bool) -> _EcRecipient:
    """`_ec_facts` of a certificate's own key, remembered per certificate."""
    return _ec_facts(f, f.public_key, compact)


def _ec_facts(f: CertFacts, pub: ec.EllipticCurvePublicKey, compact: bool) -> _EcRecipient:
    curve = pub.curve
    curve_oid = _CURVE_OID.get(curve.name)
    if curve_oid is None:
        raise ProtectError(f"cannot encrypt to an EC key on curve {curve.name}")
    alg = seq(_ID_EC_PUBLIC_KEY) if compact else seq(_ID_EC_PUBLIC_KEY, asn1.oid(curve_oid))
    return _EcRecipient(curve, alg, _recipient_rid(f, compact))


def _recipient_rid(f: CertFacts, compact: bool) -> bytes:
    """A KeyAgreeRecipientInfo's recipient identifier: in the compact form, when the
    certificate carries a subject key identifier, rKeyId [0] IMPLICIT
    RecipientKeyIdentifier ::= SEQUENCE { ski }; else IssuerAndSerialNumber."""
    ski = f.ski_extension if compact else None
    if ski is not None:
        return asn1.tlv(_CTX0, octet_string(ski))
    return f.issuer_and_serial


def build_recipient_info(
    certificate: x509.Certificate,
    cek: bytes,
    *,
    rsa_oaep: bool = True,
    public_key: object | None = None,
    compact: bool = False,
) -> bytes:
    """The DER RecipientInfo that gives `cek` to the holder of `certificate`'s key.

    `compact` (for pager mode, where every byte counts against the UDP limit):
    - the recipient is named by the subject key identifier of its certificate (rKeyId,
      or KeyTransRecipientInfo v2, RFC 5652 6.2) when the certificate carries one: 22
      bytes instead of the issuer name and serial (often 60 to 150); the recipient holds
      that certificate and matches it the same way. Otherwise by issuer and serial;
    - the ephemeral EC key's algorithm parameters (the named curve) are left out, as
      OpenSSL writes them: the curve is necessarily the recipient's own, so they say
      nothing the recipient does not know (receivers, ours too, accept them absent)."""
    f = facts(certificate)
    pub = public_key if public_key is not None else f.public_key
    if isinstance(pub, ec.EllipticCurvePublicKey):
        wrap = BY_NAME[WRAP_FOR_KEY_LEN[len(cek)]]
        r = _ec_recipient(f, compact) if public_key is None else _ec_facts(f, pub, compact)
        ec_eph = ec.generate_private_key(r.curve)
        z = ec_eph.exchange(_ECDH, pub)
        point = ec_eph.public_key().public_bytes(_X962, _UNCOMPRESSED)
        originator = r.algorithm + asn1.bit_string(point)
        return _kari(originator, r.rid, wrap, _kek_and_wrap(z, wrap, cek))
    ski = f.ski_extension if compact else None
    if isinstance(pub, x25519.X25519PublicKey):
        rid = _recipient_rid(f, compact)
        wrap = BY_NAME[WRAP_FOR_KEY_LEN[len(cek)]]
        eph = x25519.X25519PrivateKey.generate()
        z = eph.exchange(pub)
        if not any(z):
            raise ProtectError("X25519 recipient key is a low-order point")
        raw = eph.public_key().public_bytes_raw()
        originator = seq(_ID_X25519) + asn1.bit_string(raw)
        return _kari(originator, rid, wrap, _kek_and_wrap(z, wrap, cek))
    if isinstance(pub, rsa.RSAPublicKey):
        if rsa_oaep:
            pad: padding.AsymmetricPadding = padding.OAEP(
                mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
            )
            alg = _OAEP_SHA256
        else:
            pad, alg = padding.PKCS1v15(), _RSA_V15
        encrypted = pub.encrypt(cek, pad)
        if ski is not None:  # subjectKeyIdentifier [0] IMPLICIT, version 2
            return seq(b"\x02\x01\x02", asn1.tlv(ctx(0, False), ski), alg, octet_string(encrypted))
        return seq(b"\x02\x01\x00", f.issuer_and_serial, alg, octet_string(encrypted))
    kind = type(pub).__name__.removesuffix("PublicKey").removeprefix("_")
    hint = ""
    if isinstance(pub, ed25519.Ed25519PublicKey):
        hint = (
            "; an Ed25519 identity is encrypted to with its separate X25519 certificate "
            "(enc-cert.pem in its folder)"
        )
    raise ProtectError(
        f"cannot encrypt to {certificate.subject.rfc4514_string()}: its {kind} key is not "
        f"an encryption key (need EC P-256, X25519 or RSA){hint}"
    )


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True, slots=True)
class Rid:
    """A recipient identifier: issuer and serial, or subject key identifier."""

    issuer: bytes | None = None
    serial: int | None = None
    ski: bytes | None = None

    def describe(self) -> str:
        """'issuer O=example.com, CN=Alice, serial b8793ec0e4c21530' (serial in hex) or
        'subject key identifier 0a1b...'."""
        return _describe_rid(self.issuer, self.serial, self.ski)


@lru_cache(maxsize=256)
def _describe_rid(issuer: bytes | None, serial: int | None, ski: bytes | None) -> str:
    if ski is not None:
        return f"subject key identifier {ski.hex()}"
    try:
        name = name_to_str(issuer or b"")
    except MalformedError:
        name = "(unreadable name)"
    serial = serial or 0
    text = format(serial, "x") if serial >= 0 else "-" + format(-serial, "x")
    return f"issuer {name}, serial {text}"


def _read_rid(data: bytes, ident: int, s: int, e: int, ski_tag: int) -> Rid:
    """The recipient or signer identifier whose contents are data[s:e]. A correspondent
    names the same certificate message after message: each distinct identifier is read
    once."""
    return _rid(ident, data[s:e], ski_tag)


@lru_cache(maxsize=256)
def _rid(ident: int, raw: bytes, ski_tag: int) -> Rid:
    if ident == SEQUENCE:
        ni, _, _, p = asn1.read(raw, 0, len(raw))
        si, ss, se, q = asn1.read(raw, p, len(raw))
        if ni != SEQUENCE or si != INTEGER or q != len(raw):
            raise MalformedError("malformed IssuerAndSerialNumber")
        return Rid(issuer=raw[:p], serial=read_int(raw, ss, se))
    if ident == ski_tag:
        if ski_tag & 0x20:  # RecipientKeyIdentifier: SEQUENCE { ski, date?, other? }
            parts = children(raw, 0, len(raw))
            if not parts or parts[0][0] != OCTET_STRING:
                raise MalformedError("malformed RecipientKeyIdentifier")
            return Rid(ski=raw[parts[0][1] : parts[0][2]])
        return Rid(ski=raw)
    raise MalformedError("unknown recipient identifier")


@dataclass(slots=True)
class RecipientEntry:
    """One recipient identifier of a RecipientInfos SET, with what is needed to open it."""

    kind: str  # ktri, kari, kekri, pwri, ori
    description: str
    rid: Rid | None = None
    encrypted_key: bytes = b""
    #: Key transport algorithm (ktri) or key agreement scheme (kari).
    alg: AlgInfo | None = None
    alg_params: bytes | None = None  # DER of the parameters (ktri)
    #: kari: originator key algorithm row, its parameters (DER or None), the key bits.
    originator_alg: AlgInfo | None = None
    originator_params: bytes | None = None
    originator_key: bytes = b""
    ukm: bytes | None = None
    wrap: AlgInfo | None = None
    wrap_params: bytes | None = None
    #: Why this entry cannot be opened even with the right key (None: it can be tried).
    problem: str | None = None


def parse_recipient_infos(data: bytes, s: int, e: int) -> list[RecipientEntry]:
    """Read the contents of a RecipientInfos SET."""
    out: list[RecipientEntry] = []
    for ident, cs, ce, _, _ in children(data, s, e):
        if ident == SEQUENCE:
            out.append(_parse_ktri(data, cs, ce))
        elif ident == ctx(1):
            out.extend(_parse_kari(data, cs, ce))
        elif ident == ctx(2):
            out.append(
                RecipientEntry("kekri", "a pre-shared key-encryption key (KEKRecipientInfo)")
            )
        elif ident == ctx(3):
            out.append(RecipientEntry("pwri", "a password (PasswordRecipientInfo)"))
        elif ident == ctx(4):
            out.append(RecipientEntry("ori", "another recipient type (OtherRecipientInfo)"))
        else:
            raise MalformedError("unknown RecipientInfo choice")
    if not out:
        raise MalformedError("RecipientInfos is empty")
    return out


def _parse_ktri(data: bytes, s: int, e: int) -> RecipientEntry:
    parts = children(data, s, e)
    if (
        len(parts) != 4
        or parts[0][0] != INTEGER
        or parts[2][0] != SEQUENCE
        or parts[3][0] != OCTET_STRING
    ):
        raise MalformedError("malformed KeyTransRecipientInfo")
    version = read_int(data, parts[0][1], parts[0][2])
    rid = _read_rid(data, parts[1][0], parts[1][1], parts[1][2], ctx(0, False))
    if version not in (0, 2):
        raise MalformedError(f"KeyTransRecipientInfo version {version}")
    alg, params = _alg_id(data, parts[2][1], parts[2][2], "key-transport")
    entry = RecipientEntry(
        "ktri",
        f"{rid.describe()} (key transport, {alg.name})",
        rid=rid,
        encrypted_key=data[parts[3][1] : parts[3][2]],
        alg=alg,
        alg_params=params,
    )
    return entry


@lru_cache(maxsize=64)
def _kari_curve(o_alg: AlgInfo | None, o_params: bytes | None) -> str:
    """How a KeyAgreeRecipientInfo's originator key is named for people."""
    if o_alg is not None and o_alg.name == "X25519":
        return "X25519"
    if o_alg is not None and o_alg.name == "id-ecPublicKey":
        named = lookup(o_params[2:]) if o_params and o_params[0] == OID else None
        return f"ECDH {named.name}" if named else "ECDH"
    return o_alg.name if o_alg else "static-static key agreement"


@lru_cache(maxsize=256)
def _kari_description(rid: Rid, curve: str, scheme: str) -> str:
    return f"{rid.describe()} (key agreement, {curve}, {scheme})"


def _parse_kari(data: bytes, s: int, e: int) -> list[RecipientEntry]:
    read = asn1.read
    ident, vs, ve, p = read(data, s, e)
    if ident != INTEGER or data[vs:ve] != b"\x03":
        raise MalformedError("KeyAgreeRecipientInfo version is not 3")
    # originator [0] EXPLICIT OriginatorIdentifierOrKey
    ident, os_, oe, p = read(data, p, e)
    if ident != _CTX0:
        raise MalformedError("malformed originator")
    choice, cs, ce, q = read(data, os_, oe)
    if q != oe:
        raise MalformedError("malformed originator")
    o_alg = o_params = None
    o_key = b""
    static_originator = choice != _CTX1
    if not static_originator:  # originatorKey [1] IMPLICIT OriginatorPublicKey
        ai, a_s, a_e, q = read(data, cs, ce)
        bi, b_s, b_e, q = read(data, q, ce)
        if ai != SEQUENCE or bi != BIT_STRING or q != ce or b_e == b_s or data[b_s] != 0:
            raise MalformedError("malformed OriginatorPublicKey")
        o_alg, o_params = _alg_id(data, a_s, a_e, "public-key")
        o_key = data[b_s + 1 : b_e]
    ukm = None
    ident, ks, ke, p = read(data, p, e)
    if ident == _CTX1:  # ukm [1] EXPLICIT UserKeyingMaterial
        ui, us, ue, q = read(data, ks, ke)
        if ui != OCTET_STRING or q != ke:
            raise MalformedError("malformed ukm")
        ukm = data[us:ue]
        ident, ks, ke, p = read(data, p, e)
    ri, rs, re_, p = read(data, p, e)
    if ident != SEQUENCE or ri != SEQUENCE or p != e:
        raise MalformedError("malformed KeyAgreeRecipientInfo")
    scheme, sp = _alg_id(data, ks, ke, "key-agreement")
    wrap = wrap_params = None
    if sp is not None and scheme.kind == "key-agreement":
        wid, ws, we, _ = read(sp, 0, len(sp))
        if wid != SEQUENCE:
            raise MalformedError("key wrap algorithm is not an AlgorithmIdentifier")
        wrap, wrap_params = _alg_id(sp, ws, we, "key-wrap")
    curve = _kari_curve(o_alg, o_params)
    problem = "static-static key agreement is not supported" if static_originator else None
    out = []
    pos = rs
    while pos < re_:
        ident, cs, ce, pos = read(data, pos, re_)
        if ident != SEQUENCE:
            raise MalformedError("malformed RecipientEncryptedKey")
        rid_ident, r_s, r_e, q = read(data, cs, ce)
        ki, k_s, k_e, q = read(data, q, ce)
        if ki != OCTET_STRING or q != ce:
            raise MalformedError("malformed RecipientEncryptedKey")
        rid = _read_rid(data, rid_ident, r_s, r_e, _CTX0)
        out.append(
            RecipientEntry(
                "kari",
                _kari_description(rid, curve, scheme.name),
                rid,
                data[k_s:k_e],
                scheme,
                None,
                o_alg,
                o_params,
                o_key,
                ukm,
                wrap,
                wrap_params,
                problem,
            )
        )
    if not out:
        raise MalformedError("KeyAgreeRecipientInfo has no recipient keys")
    return out


# --------------------------------------------------------------------------- opening


@dataclass(slots=True)
class RecipientKey:
    """One of our decryption keys with its certificate's facts."""

    private_key: Any
    facts: CertFacts

    def matches(self, rid: Rid) -> bool:
        return self.facts.matches(rid)


def prepare_keys(keys: Iterable[tuple[Any, x509.Certificate]]) -> list[RecipientKey]:
    out = []
    for item in keys:
        try:
            private_key, certificate = item
        except (TypeError, ValueError):
            raise TypeError("keys must be (private_key, certificate) pairs") from None
        out.append(RecipientKey(private_key, facts(certificate)))
    return out


def _oaep_padding(params: bytes | None) -> tuple[padding.OAEP, str]:
    """The OAEP padding described by RSAES-OAEP-params (RFC 8017 A.2.1; defaults SHA-1)."""
    hash_name, mgf_hash, label = "sha1", "sha1", None
    if params is not None and params != b"\x05\x00":
        ident, s, e, _ = asn1.read(params, 0, len(params))
        if ident != SEQUENCE:
            raise MalformedError("malformed RSAES-OAEP parameters")
        for tag, cs, ce, _, _ in children(params, s, e):
            inner = children(params, cs, ce)
            if len(inner) != 1 or inner[0][0] != SEQUENCE:
                raise MalformedError("malformed RSAES-OAEP parameters")
            row, p = _alg_id(params, inner[0][1], inner[0][2], "digest")
            if tag == ctx(0):
                hash_name = row.name
            elif tag == ctx(1):
                if row.name != "id-mgf1" or p is None:
                    raise UnsupportedError(f"unsupported OAEP mask generation {row.name}")
                _, ms, me, _ = asn1.read(p, 0, len(p))
                mgf_hash = _alg_id(p, ms, me, "digest")[0].name
            elif tag == ctx(2):
                if row.name != "id-pSpecified" or p is None or p[:1] != bytes((OCTET_STRING,)):
                    raise UnsupportedError("unsupported OAEP label source")
                _, ls, le, _ = asn1.read(p, 0, len(p))
                label = p[ls:le] or None
            else:
                raise MalformedError("malformed RSAES-OAEP parameters")
    try:
        pad = padding.OAEP(
            mgf=padding.MGF1(hash_for(mgf_hash)), algorithm=hash_for(hash_name), label=label
        )
    except ValueError:
        raise UnsupportedError(f"unsupported OAEP digest {hash_name}/{mgf_hash}") from None
    return pad, hash_name


def _curve_of(entry: RecipientEntry, private_key: ec.EllipticCurvePrivateKey) -> ec.EllipticCurve:
    """Our key's curve, after checking the originator key agrees with it."""
    curve = private_key.curve
    p = entry.originator_params
    if p is None or p == b"\x05\x00":
        return curve
    if _NAMED_CURVE_PARAMS.get(p) == curve.name:
        return curve
    raise MalformedError("originator key is not on the recipient's curve")


def _kdf(entry: RecipientEntry, z: bytes, policy: Policy) -> bytes:
    scheme, wrap = entry.alg, entry.wrap
    assert scheme is not None
    if wrap is None or wrap.kind != "key-wrap":
        name = wrap.name if wrap else "(absent)"
        raise UnsupportedError(f"unsupported key wrap algorithm {name}")
    if entry.wrap_params not in (None, b"\x05\x00"):
        raise MalformedError("AES key wrap parameters must be absent")
    if scheme.hash == "sha1" and not policy.accept_sha1_kdf:
        raise WeakAlgorithmError(f"{scheme.name} (SHA-1 KDF) rejected by policy")
    shared_info = _shared_info(wrap.oid, wrap.key_len, entry.ukm)
    h = hash_for(scheme.hash or "sha256")
    if scheme.mode == "hkdf":
        kek = HKDF(h, wrap.key_len, salt=None, info=shared_info).derive(z)
    else:
        kek = X963KDF(h, wrap.key_len, shared_info).derive(z)
    try:
        return aes_key_unwrap(kek, entry.encrypted_key)
    except (InvalidUnwrap, ValueError):
        raise TamperedError("key unwrap failed: the wrapped key was altered") from None


@lru_cache(maxsize=64)
def _kari_algorithms(
    scheme: AlgInfo, wrap: AlgInfo, curve_name: str, curve_oid: str
) -> tuple[Algorithm, ...]:
    kdf_name = (
        "HKDF" if scheme.mode == "hkdf" else "ANSI-X9.63-KDF"
    ) + f" with {(scheme.hash or '').upper().replace('SHA', 'SHA-')}"
    h = BY_NAME[scheme.hash or "sha256"]
    return (
        Algorithm("key-agreement", scheme.name, scheme.oid),
        Algorithm("key-agreement", curve_name, curve_oid),
        Algorithm("kdf", kdf_name, h.oid),
        Algorithm("key-wrap", wrap.name, wrap.oid),
    )


def open_entry(
    entry: RecipientEntry,
    key: RecipientKey,
    cek_len: int,
    policy: Policy,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> tuple[bytes, tuple[Algorithm, ...]]:
    """The content-encryption key from one RecipientInfo with our key, and the algorithms.

    Raises TamperedError (unwrap failed), WeakAlgorithmError, UnsupportedError or
    MalformedError. For RSA PKCS#1 v1.5 a failed decryption yields a random key instead
    of an error (Bleichenbacher): the failure shows at the content layer.
    """
    if entry.problem:
        raise UnsupportedError(entry.problem)
    priv = key.private_key
    if entry.kind == "ktri":
        if not isinstance(priv, rsa.RSAPrivateKey):
            raise UnsupportedError("key transport needs an RSA key")
        alg = entry.alg
        assert alg is not None
        if alg.oid == RSA_ENCRYPTION.oid:
            try:
                cek: bytes | None = priv.decrypt(entry.encrypted_key, padding.PKCS1v15())
            except ValueError:
                cek = None
            if cek is None or len(cek) != cek_len:
                cek = random_bytes(cek_len)
            return cek, (Algorithm("key-transport", "rsaEncryption", alg.oid),)
        if alg.name == "RSAES-OAEP":
            pad, _ = _oaep_padding(entry.alg_params)
            try:
                cek = priv.decrypt(entry.encrypted_key, pad)
            except ValueError:
                raise TamperedError("RSA-OAEP decryption of the content key failed") from None
            if len(cek) != cek_len:
                raise TamperedError("content key has the wrong length")
            return cek, (Algorithm("key-transport", "RSAES-OAEP", alg.oid),)
        raise UnsupportedError(f"unsupported key transport algorithm {alg.name}")
    if entry.kind != "kari":
        raise UnsupportedError(f"unsupported recipient type {entry.kind}")
    scheme = entry.alg
    assert scheme is not None
    if scheme.kind != "key-agreement":
        raise UnsupportedError(f"unsupported key agreement algorithm {scheme.name}")
    o_alg = entry.originator_alg
    if isinstance(priv, ec.EllipticCurvePrivateKey):
        if o_alg is None or o_alg.name != "id-ecPublicKey":
            raise MalformedError("originator key is not an EC key")
        curve = _curve_of(entry, priv)
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(curve, entry.originator_key)
        except ValueError:
            raise MalformedError("originator EC point is invalid") from None
        z = priv.exchange(ec.ECDH(), peer)
        cname = _CURVE_NAME.get(curve.name, curve.name)
        algs = (cname, _CURVE_OID.get(curve.name, ""))
        if scheme.mode != "x963":
            raise UnsupportedError(f"{scheme.name} is not defined for NIST curves")
    elif isinstance(priv, x25519.X25519PrivateKey):
        if o_alg is None or o_alg.name != "X25519" or entry.originator_params is not None:
            raise MalformedError("originator key is not an X25519 key")
        try:
            peer_x = x25519.X25519PublicKey.from_public_bytes(entry.originator_key)
            z = priv.exchange(peer_x)
        except ValueError:
            raise MalformedError("originator X25519 key is invalid") from None
        algs = ("X25519", "1.3.101.110")
    else:
        raise UnsupportedError("key agreement needs an EC or X25519 key")
    cek = _kdf(entry, z, policy)
    if len(cek) != cek_len:
        raise TamperedError("content key has the wrong length")
    assert entry.wrap is not None
    return cek, _kari_algorithms(scheme, entry.wrap, algs[0], algs[1])
