"""The algorithm policy: what we send, and what we accept on receive."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Names used throughout the core (and shown to people) for the algorithms we know.
DIGESTS = ("sha256", "sha384", "sha512", "sha1", "md5")
CONTENT_CIPHERS = (
    "aes128-gcm",
    "aes192-gcm",
    "aes256-gcm",
    "aes128-cbc",
    "aes192-cbc",
    "aes256-cbc",
    "des-ede3-cbc",
    "rc2-cbc",
)


@dataclass(frozen=True)
class Policy:
    """What the S/MIME core sends and accepts.

    Defaults follow RFC 8591 section 4 and RFC 8551: SHA-256, ECDSA P-256, AES-128-GCM
    AuthEnvelopedData, ECDH with the SHA-256 X9.63 KDF. Anything outside the accepted
    sets is reported as `weak-algorithm`, never as valid.
    """

    # Sending.
    digest: str = "sha256"
    content_cipher: str = "aes128-gcm"
    rsa_pss: bool = False
    # Receiving.
    accepted_digests: frozenset[str] = field(
        default_factory=lambda: frozenset({"sha256", "sha384", "sha512"})
    )
    accepted_ciphers: frozenset[str] = field(
        default_factory=lambda: frozenset(
            {"aes128-gcm", "aes192-gcm", "aes256-gcm", "aes128-cbc", "aes192-cbc", "aes256-cbc"}
        )
    )
    min_rsa_bits: int = 2048
    accept_sha1_kdf: bool = False
    #: Largest CMS structure we parse (bytes); bigger input is refused before parsing.
    max_input: int = 256 * 1024 * 1024

    def digest_ok(self, name: str) -> bool:
        return name in self.accepted_digests

    def cipher_ok(self, name: str) -> bool:
        return name in self.accepted_ciphers

    def rsa_ok(self, bits: int) -> bool:
        return bits >= self.min_rsa_bits


DEFAULT_POLICY = Policy()
