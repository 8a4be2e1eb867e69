"""The algorithm vocabulary of the S/MIME core: OID <-> name tables and `Algorithm` builders.

Every algorithm the core writes or reads is one `AlgInfo` row: its display name (the one
people see, e.g. 'aes128-GCM'), its dotted OID, the DER content octets of that OID (for
fast look-up while walking a structure), its role, and what it implies (digest, key
length, the name the `Policy` uses).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes

from .asn1 import OID, decode_oid, encode_oid, read
from .errors import MalformedError
from .report import Algorithm

__all__ = [
    "BY_DER",
    "BY_NAME",
    "AlgInfo",
    "alg_id",
    "algorithm",
    "digest_display",
    "hash_for",
    "lookup",
    "unknown",
]


@dataclass(frozen=True, slots=True)
class AlgInfo:
    #: Display name (RFC / OpenSSL spelling), e.g. 'sha256', 'aes128-GCM'.
    name: str
    oid: str
    #: One of digest, signature, content-encryption, key-wrap, key-agreement,
    #: key-transport, public-key, curve, mgf, attribute, content-type.
    kind: str
    #: Implied digest (signature algorithms, KDF schemes), or the digest itself.
    hash: str | None = None
    #: Key length in bytes (content ciphers and key wraps).
    key_len: int = 0
    #: The name the Policy uses ('aes128-gcm', 'des-ede3-cbc', 'sha1'...).
    policy_name: str | None = None
    #: Content ciphers: 'gcm', 'cbc'; KDF schemes: 'x963', 'hkdf'.
    mode: str | None = None

    def __hash__(self) -> int:
        # Rows are looked up by OID and used as cache keys message after message; the OID
        # alone identifies a row (equal rows have equal OIDs), and hashes much faster.
        return hash(self.oid)

    @property
    def der(self) -> bytes:
        return encode_oid(self.oid)

    def as_algorithm(self, role: str | None = None) -> Algorithm:
        key = (self.oid, role or self.kind)
        alg = _ALGORITHMS.get(key)
        if alg is None:
            alg = _ALGORITHMS[key] = Algorithm(key[1], self.name, self.oid)
        return alg


_ALGORITHMS: dict[tuple[str, str], Algorithm] = {}


_ROWS = [
    # Digests.
    AlgInfo("md5", "1.2.840.113549.2.5", "digest", "md5", policy_name="md5"),
    AlgInfo("sha1", "1.3.14.3.2.26", "digest", "sha1", policy_name="sha1"),
    AlgInfo("sha224", "2.16.840.1.101.3.4.2.4", "digest", "sha224", policy_name="sha224"),
    AlgInfo("sha256", "2.16.840.1.101.3.4.2.1", "digest", "sha256", policy_name="sha256"),
    AlgInfo("sha384", "2.16.840.1.101.3.4.2.2", "digest", "sha384", policy_name="sha384"),
    AlgInfo("sha512", "2.16.840.1.101.3.4.2.3", "digest", "sha512", policy_name="sha512"),
    AlgInfo("shake256", "2.16.840.1.101.3.4.2.12", "digest", "shake256", policy_name="shake256"),
    # Signatures.
    AlgInfo("rsaEncryption", "1.2.840.113549.1.1.1", "signature", None),
    AlgInfo("md5WithRSAEncryption", "1.2.840.113549.1.1.4", "signature", "md5"),
    AlgInfo("sha1WithRSAEncryption", "1.2.840.113549.1.1.5", "signature", "sha1"),
    AlgInfo("sha224WithRSAEncryption", "1.2.840.113549.1.1.14", "signature", "sha224"),
    AlgInfo("sha256WithRSAEncryption", "1.2.840.113549.1.1.11", "signature", "sha256"),
    AlgInfo("sha384WithRSAEncryption", "1.2.840.113549.1.1.12", "signature", "sha384"),
    AlgInfo("sha512WithRSAEncryption", "1.2.840.113549.1.1.13", "signature", "sha512"),
    AlgInfo("RSASSA-PSS", "1.2.840.113549.1.1.10", "signature", None),
    AlgInfo("ecdsa-with-SHA1", "1.2.840.10045.4.1", "signature", "sha1"),
    AlgInfo("ecdsa-with-SHA224", "1.2.840.10045.4.3.1", "signature", "sha224"),
    AlgInfo("ecdsa-with-SHA256", "1.2.840.10045.4.3.2", "signature", "sha256"),
    AlgInfo("ecdsa-with-SHA384", "1.2.840.10045.4.3.3", "signature", "sha384"),
    AlgInfo("ecdsa-with-SHA512", "1.2.840.10045.4.3.4", "signature", "sha512"),
    AlgInfo("Ed25519", "1.3.101.112", "signature", None),
    AlgInfo("Ed448", "1.3.101.113", "signature", None),
    # Public keys and curves.
    AlgInfo("id-ecPublicKey", "1.2.840.10045.2.1", "public-key"),
    AlgInfo("X25519", "1.3.101.110", "public-key"),
    AlgInfo("X448", "1.3.101.111", "public-key"),
    AlgInfo("P-256", "1.2.840.10045.3.1.7", "curve"),
    AlgInfo("P-384", "1.3.132.0.34", "curve"),
    AlgInfo("P-521", "1.3.132.0.35", "curve"),
    # Content encryption.
    AlgInfo(
        "aes128-GCM",
        "2.16.840.1.101.3.4.1.6",
        "content-encryption",
        key_len=16,
        policy_name="aes128-gcm",
        mode="gcm",
    ),
    AlgInfo(
        "aes192-GCM",
        "2.16.840.1.101.3.4.1.26",
        "content-encryption",
        key_len=24,
        policy_name="aes192-gcm",
        mode="gcm",
    ),
    AlgInfo(
        "aes256-GCM",
        "2.16.840.1.101.3.4.1.46",
        "content-encryption",
        key_len=32,
        policy_name="aes256-gcm",
        mode="gcm",
    ),
    AlgInfo(
        "aes128-CBC",
        "2.16.840.1.101.3.4.1.2",
        "content-encryption",
        key_len=16,
        policy_name="aes128-cbc",
        mode="cbc",
    ),
    AlgInfo(
        "aes192-CBC",
        "2.16.840.1.101.3.4.1.22",
        "content-encryption",
        key_len=24,
        policy_name="aes192-cbc",
        mode="cbc",
    ),
    AlgInfo(
        "aes256-CBC",
        "2.16.840.1.101.3.4.1.42",
        "content-encryption",
        key_len=32,
        policy_name="aes256-cbc",
        mode="cbc",
    ),
    AlgInfo(
        "des-ede3-cbc",
        "1.2.840.113549.3.7",
        "content-encryption",
        key_len=24,
        policy_name="des-ede3-cbc",
        mode="3des",
    ),
    AlgInfo(
        "rc2-cbc",
        "1.2.840.113549.3.2",
        "content-encryption",
        key_len=16,
        policy_name="rc2-cbc",
        mode="rc2",
    ),
    # Key wrap.
    AlgInfo("id-aes128-wrap", "2.16.840.1.101.3.4.1.5", "key-wrap", key_len=16),
    AlgInfo("id-aes192-wrap", "2.16.840.1.101.3.4.1.25", "key-wrap", key_len=24),
    AlgInfo("id-aes256-wrap", "2.16.840.1.101.3.4.1.45", "key-wrap", key_len=32),
    # Key agreement schemes (RFC 5753, RFC 8418): ECDH plus a KDF over the named digest.
    AlgInfo(
        "dhSinglePass-stdDH-sha1kdf-scheme",
        "1.3.133.16.840.63.0.2",
        "key-agreement",
        "sha1",
        mode="x963",
    ),
    AlgInfo(
        "dhSinglePass-stdDH-sha224kdf-scheme",
        "1.3.132.1.11.0",
        "key-agreement",
        "sha224",
        mode="x963",
    ),
    AlgInfo(
        "dhSinglePass-stdDH-sha256kdf-scheme",
        "1.3.132.1.11.1",
        "key-agreement",
        "sha256",
        mode="x963",
    ),
    AlgInfo(
        "dhSinglePass-stdDH-sha384kdf-scheme",
        "1.3.132.1.11.2",
        "key-agreement",
        "sha384",
        mode="x963",
    ),
    AlgInfo(
        "dhSinglePass-stdDH-sha512kdf-scheme",
        "1.3.132.1.11.3",
        "key-agreement",
        "sha512",
        mode="x963",
    ),
    # Cofactor variants: the same computation for curves of cofactor 1 (P-256 and co).
    AlgInfo(
        "dhSinglePass-cofactorDH-sha1kdf-scheme",
        "1.3.133.16.840.63.0.3",
        "key-agreement",
        "sha1",
        mode="x963",
    ),
    AlgInfo(
        "dhSinglePass-cofactorDH-sha256kdf-scheme",
        "1.3.132.1.14.1",
        "key-agreement",
        "sha256",
        mode="x963",
    ),
    AlgInfo(
        "dhSinglePass-cofactorDH-sha384kdf-scheme",
        "1.3.132.1.14.2",
        "key-agreement",
        "sha384",
        mode="x963",
    ),
    AlgInfo(
        "dhSinglePass-cofactorDH-sha512kdf-scheme",
        "1.3.132.1.14.3",
        "key-agreement",
        "sha512",
        mode="x963",
    ),
    AlgInfo(
        "dhSinglePass-stdDH-hkdf-sha256-scheme",
        "1.2.840.113549.1.9.16.3.19",
        "key-agreement",
        "sha256",
        mode="hkdf",
    ),
    AlgInfo(
        "dhSinglePass-stdDH-hkdf-sha384-scheme",
        "1.2.840.113549.1.9.16.3.20",
        "key-agreement",
        "sha384",
        mode="hkdf",
    ),
    AlgInfo(
        "dhSinglePass-stdDH-hkdf-sha512-scheme",
        "1.2.840.113549.1.9.16.3.21",
        "key-agreement",
        "sha512",
        mode="hkdf",
    ),
    # Key transport.
    AlgInfo("RSAES-OAEP", "1.2.840.113549.1.1.7", "key-transport"),
    AlgInfo("id-mgf1", "1.2.840.113549.1.1.8", "mgf"),
    AlgInfo("id-pSpecified", "1.2.840.113549.1.1.9", "mgf"),
    # Attributes.
    AlgInfo("contentType", "1.2.840.113549.1.9.3", "attribute"),
    AlgInfo("messageDigest", "1.2.840.113549.1.9.4", "attribute"),
    AlgInfo("signingTime", "1.2.840.113549.1.9.5", "attribute"),
    AlgInfo("smimeCapabilities", "1.2.840.113549.1.9.15", "attribute"),
    AlgInfo("signingCertificate", "1.2.840.113549.1.9.16.2.12", "attribute"),
    AlgInfo("signingCertificateV2", "1.2.840.113549.1.9.16.2.47", "attribute"),
    # Content types (asn1crypto names, as content_type_of reports them).
    AlgInfo("data", "1.2.840.113549.1.7.1", "content-type"),
    AlgInfo("signed_data", "1.2.840.113549.1.7.2", "content-type"),
    AlgInfo("enveloped_data", "1.2.840.113549.1.7.3", "content-type"),
    AlgInfo("signed_and_enveloped_data", "1.2.840.113549.1.7.4", "content-type"),
    AlgInfo("digested_data", "1.2.840.113549.1.7.5", "content-type"),
    AlgInfo("encrypted_data", "1.2.840.113549.1.7.6", "content-type"),
    AlgInfo("authenticated_data", "1.2.840.113549.1.9.16.1.2", "content-type"),
    AlgInfo("compressed_data", "1.2.840.113549.1.9.16.1.9", "content-type"),
    AlgInfo("authenticated_enveloped_data", "1.2.840.113549.1.9.16.1.23", "content-type"),
]

#: OID content octets -> row (the look-up used while walking a structure).
BY_DER: dict[bytes, AlgInfo] = {}
#: Display name (and, for content ciphers, policy name) -> row.
BY_NAME: dict[str, AlgInfo] = {}
for _row in _ROWS:
    BY_DER[encode_oid(_row.oid)] = _row
    BY_NAME.setdefault(_row.name, _row)
    if _row.policy_name and _row.kind == "content-encryption":
        BY_NAME.setdefault(_row.policy_name, _row)
# rsaEncryption is also the PKCS#1 v1.5 key transport algorithm.
RSA_ENCRYPTION = BY_NAME["rsaEncryption"]

_DISPLAY_DIGEST = {
    "md5": "MD5",
    "sha1": "SHA-1",
    "sha224": "SHA-224",
    "sha256": "SHA-256",
    "sha384": "SHA-384",
    "sha512": "SHA-512",
    "shake256": "SHAKE256",
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "md5": hashes.MD5,
}


def lookup(oid_der: bytes) -> AlgInfo | None:
    """The row for OID content octets, or None."""
    return BY_DER.get(oid_der)


@lru_cache(maxsize=64)
def unknown(oid_der: bytes, kind: str) -> AlgInfo:
    """A row for an OID we do not know (named by its dotted form)."""
    dotted = decode_oid(oid_der)
    return AlgInfo(dotted, dotted, kind)


def alg_id(data: bytes, s: int, e: int, kind: str) -> tuple[AlgInfo, bytes | None]:
    """Read the contents [s, e) of an AlgorithmIdentifier: (row, DER parameters or None).
    The same few identifiers recur in every message: each distinct one is read once."""
    return _alg_id_of(data[s:e], kind)


@lru_cache(maxsize=256)
def _alg_id_of(data: bytes, kind: str) -> tuple[AlgInfo, bytes | None]:
    s, e = 0, len(data)
    ident, os_, oe, p = read(data, s, e)
    if ident != OID:
        raise MalformedError("malformed AlgorithmIdentifier")
    oid_der = data[os_:oe]
    row = BY_DER.get(oid_der) or unknown(oid_der, kind)
    if p == e:
        return row, None
    if read(data, p, e)[3] != e:
        raise MalformedError("malformed AlgorithmIdentifier")
    return row, data[p:e]


def digest_display(name: str) -> str:
    """'sha1' -> 'SHA-1' (for reasons shown to people)."""
    return _DISPLAY_DIGEST.get(name, name)


def hash_for(name: str) -> hashes.HashAlgorithm:
    """The cryptography hash object for a digest name."""
    try:
        return _HASHES[name]()
    except KeyError:
        raise ValueError(f"no hash {name!r}") from None


def algorithm(role: str, name: str) -> Algorithm:
    """An `Algorithm` for the report from a display name we know."""
    row = BY_NAME[name]
    return Algorithm(role, row.name, row.oid)
