"""AuthEnvelopedData and EnvelopedData: our `encrypt`, checked by `decrypt` and by asn1crypto."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from asn1crypto import cms as asn1_cms

from messenger.smime import cms
from messenger.smime.errors import (
    MalformedError,
    NoRecipientKeyError,
    ProtectError,
    TamperedError,
    UnsupportedError,
    WeakAlgorithmError,
)
from messenger.smime.policy import Policy

RECIPIENTS = ["ec", "rsa", "x", "x2"]
CIPHERS = ["aes128-gcm", "aes256-gcm", "aes128-cbc", "aes256-cbc"]


def _strict_der(data: bytes) -> bool:
    return asn1_cms.ContentInfo.load(data).dump(force=True) == data


@pytest.mark.parametrize(("who", "cipher"), list(itertools.product(RECIPIENTS, CIPHERS)))
def test_round_trip(pki: Any, who: str, cipher: str, message: bytes) -> None:
    ident = getattr(pki, who)
    der = cms.encrypt(message, [ident.cert], cipher=cipher)
    assert _strict_der(der)
    gcm = cipher.endswith("gcm")
    assert cms.content_type_of(der) == ("authenticated_enveloped_data" if gcm else "enveloped_data")
    result = cms.decrypt(der, [ident.pair])
    assert result.content == message
    assert result.econtent_type == "data"
    assert result.authenticated is gcm
    assert result.algorithms[0].role == "content-encryption"
    assert (
        result.algorithms[0].name
        == {
            "aes128-gcm": "aes128-GCM",
            "aes256-gcm": "aes256-GCM",
            "aes128-cbc": "aes128-CBC",
            "aes256-cbc": "aes256-CBC",
        }[cipher]
    )
    assert result.recipients == cms.describe_recipients(der)
    assert result.recipient == result.recipients[0]


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000, 70_000])
def test_sizes(pki: Any, size: int) -> None:
    content = bytes(range(256)) * (size // 256) + bytes(size % 256)
    for cipher in ("aes128-gcm", "aes128-cbc"):
        der = cms.encrypt(content, [pki.ec.cert], cipher=cipher)
        assert cms.decrypt(der, [pki.ec.pair]).content == content


def test_auth_enveloped_structure(pki: Any, message: bytes) -> None:
    der = cms.encrypt(message, [pki.ec.cert])
    aed = cms.parse_content_info(der)["content"]
    assert aed["version"].native == "v0"
    assert aed["auth_attrs"].native is None
    alg = aed["auth_encrypted_content_info"]["content_encryption_algorithm"]
    assert alg["algorithm"].dotted == "2.16.840.1.101.3.4.1.6"
    assert len(alg["parameters"]["aes_nonce"].native) == 12
    assert alg["parameters"]["aes_icvlen"].native == 16
    assert len(aed["mac"].native) == 16
    assert len(aed["auth_encrypted_content_info"]["encrypted_content"].native) == len(message)
    kari = aed["recipient_infos"][0].chosen
    assert isinstance(kari, asn1_cms.KeyAgreeRecipientInfo)
    assert kari["version"].native == "v3"
    assert kari["ukm"].native is None
    orig = kari["originator"].chosen
    assert orig["algorithm"]["algorithm"].native == "ec"
    assert orig["algorithm"]["parameters"].chosen.native == "secp256r1"
    assert len(orig["public_key"].native) == 65
    kea = kari["key_encryption_algorithm"]
    assert kea["algorithm"].dotted == "1.3.132.1.11.1"
    assert kea["parameters"]["algorithm"].dotted == "2.16.840.1.101.3.4.1.5"
    assert kea["parameters"]["parameters"].native is None
    rek = kari["recipient_encrypted_keys"][0]
    assert rek["rid"].name == "issuer_and_serial_number"
    assert rek["rid"].chosen["serial_number"].native == pki.ec.cert.serial_number
    assert len(rek["encrypted_key"].native) == 24


def test_aes256_uses_aes256_wrap(pki: Any, message: bytes) -> None:
    der = cms.encrypt(message, [pki.ec.cert], cipher="aes256-gcm")
    kari = cms.parse_content_info(der)["content"]["recipient_infos"][0].chosen
    assert kari["key_encryption_algorithm"]["parameters"]["algorithm"].dotted == (
        "2.16.840.1.101.3.4.1.45"
    )
    names = [a.name for a in cms.decrypt(der, [pki.ec.pair]).algorithms]
    assert names == [
        "aes256-GCM",
        "dhSinglePass-stdDH-sha256kdf-scheme",
        "P-256",
        "ANSI-X9.63-KDF with SHA-256",
        "id-aes256-wrap",
    ]


def test_x25519_structure(pki: Any, message: bytes) -> None:
    der = cms.encrypt(message, [pki.x.cert])
    kari = cms.parse_content_info(der)["content"]["recipient_infos"][0].chosen
    orig = kari["originator"].chosen
    assert orig["algorithm"]["algorithm"].dotted == "1.3.101.110"
    assert orig["algorithm"]["parameters"].native is None
    assert len(orig["public_key"].native) == 32
    assert kari["key_encryption_algorithm"]["algorithm"].dotted == "1.3.132.1.11.1"
    roles = [(a.role, a.name) for a in cms.decrypt(der, [pki.x.pair]).algorithms]
    assert ("key-agreement", "X25519") in roles


@pytest.mark.parametrize("oaep", [True, False])
def test_rsa_key_transport(pki: Any, message: bytes, oaep: bool) -> None:
    der = cms.encrypt(message, [pki.rsa.cert], rsa_oaep=oaep)
    ktri = cms.parse_content_info(der)["content"]["recipient_infos"][0].chosen
    assert isinstance(ktri, asn1_cms.KeyTransRecipientInfo)
    assert ktri["version"].native == "v0"
    alg = ktri["key_encryption_algorithm"]
    if oaep:
        assert alg["algorithm"].native == "rsaes_oaep"
        assert alg["parameters"]["hash_algorithm"]["algorithm"].native == "sha256"
        assert alg["parameters"]["mask_gen_algorithm"]["parameters"]["algorithm"].native == (
            "sha256"
        )
    else:
        assert alg["algorithm"].native == "rsaes_pkcs1v15"
    result = cms.decrypt(der, [pki.rsa.pair])
    assert result.content == message
    assert [a.name for a in result.algorithms][1] == ("RSAES-OAEP" if oaep else "rsaEncryption")


def test_enveloped_data_versions(pki: Any, message: bytes) -> None:
    rsa_only = cms.parse_content_info(cms.encrypt(message, [pki.rsa.cert], cipher="aes128-cbc"))
    assert rsa_only["content"]["version"].native == "v0"
    with_kari = cms.parse_content_info(cms.encrypt(message, [pki.ec.cert], cipher="aes128-cbc"))
    assert with_kari["content"]["version"].native == "v2"
    params = with_kari["content"]["encrypted_content_info"]["content_encryption_algorithm"]
    assert len(params["parameters"].native) == 16


def test_many_recipients(pki: Any, message: bytes) -> None:
    certs = [pki.ec.cert, pki.rsa.cert, pki.x.cert, pki.ec2.cert]
    der = cms.encrypt(message, certs)
    assert len(cms.describe_recipients(der)) == 4
    for ident in (pki.ec, pki.rsa, pki.x, pki.ec2):
        result = cms.decrypt(der, [ident.pair])
        assert result.content == message
        assert f"serial {ident.cert.serial_number:x}" in result.recipient
    # Several of our keys: the first that matches opens it.
    assert cms.decrypt(der, [pki.x2.pair, pki.ec2.pair]).content == message


def test_deterministic_with_injected_randomness(pki: Any, message: bytes) -> None:
    counter = itertools.count()

    def fake_random(n: int) -> bytes:
        return bytes([next(counter) % 256]) * n

    der = cms.encrypt(message, [pki.rsa.cert], cipher="aes128-cbc", random_bytes=fake_random)
    params = cms.parse_content_info(der)["content"]["encrypted_content_info"][
        "content_encryption_algorithm"
    ]["parameters"]
    assert params.native == b"\x01" * 16
    assert cms.decrypt(der, [pki.rsa.pair]).content == message
    with pytest.raises(ProtectError):
        cms.encrypt(message, [pki.rsa.cert], random_bytes=lambda n: b"short")


def test_not_for_us(pki: Any, message: bytes) -> None:
    der = cms.encrypt(message, [pki.ec.cert, pki.rsa.cert])
    with pytest.raises(NoRecipientKeyError) as err:
        cms.decrypt(der, [pki.ec2.pair, pki.x.pair])
    text = str(err.value)
    assert f"serial {pki.ec.cert.serial_number:x}" in text
    assert f"serial {pki.rsa.cert.serial_number:x}" in text
    with pytest.raises(NoRecipientKeyError):
        cms.decrypt(der, [])


def test_mismatched_key_for_certificate(pki: Any, message: bytes) -> None:
    """A (key, certificate) pair whose key is not the certificate's: unwrap fails."""
    der = cms.encrypt(message, [pki.ec.cert])
    with pytest.raises(TamperedError):
        cms.decrypt(der, [(pki.ec2.key, pki.ec.cert)])


def _flip(data: bytes, at: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[at] ^= mask
    return bytes(out)


@pytest.mark.parametrize("who", ["ec", "rsa", "x"])
def test_flipped_ciphertext_bit_is_tampering(pki: Any, who: str, message: bytes) -> None:
    ident = getattr(pki, who)
    der = cms.encrypt(message, [ident.cert])
    start = len(der) - 18 - len(message)  # encryptedContent, then the 18-byte mac field
    for at in (start, start + len(message) // 2, len(der) - 1):
        with pytest.raises(TamperedError):
            cms.decrypt(_flip(der, at), [ident.pair])


def test_flipped_wrapped_key_is_tampering(pki: Any, message: bytes) -> None:
    der = cms.encrypt(message, [pki.ec.cert])
    kari = cms.parse_content_info(der)["content"]["recipient_infos"][0].chosen
    wrapped = kari["recipient_encrypted_keys"][0]["encrypted_key"].native
    at = der.index(wrapped) + 3
    with pytest.raises(TamperedError):
        cms.decrypt(_flip(der, at), [pki.ec.pair])


@pytest.mark.parametrize("oaep", [True, False])
def test_flipped_rsa_key_is_tampering(pki: Any, message: bytes, oaep: bool) -> None:
    """PKCS#1 v1.5 included: a bad padding must not be told apart from a bad tag
    (Bleichenbacher), so both show as TamperedError from the content layer."""
    der = cms.encrypt(message, [pki.rsa.cert], rsa_oaep=oaep)
    ktri = cms.parse_content_info(der)["content"]["recipient_infos"][0].chosen
    at = der.index(ktri["encrypted_key"].native) + 100
    for mask in (0x01, 0x80):
        with pytest.raises(TamperedError):
            cms.decrypt(_flip(der, at, mask), [pki.rsa.pair])


def test_cbc_padding_tampering(pki: Any, message: bytes) -> None:
    der = cms.encrypt(message, [pki.ec.cert], cipher="aes128-cbc")
    # The last byte of the second-to-last block sets the padding byte of the last one.
    with pytest.raises(TamperedError):
        cms.decrypt(_flip(der, len(der) - 17, 0x80), [pki.ec.pair])
    # CBC is malleable: a flip in the first block garbles it without any error. This is
    # why RFC 8591 sends AES-GCM.
    ct_start = len(der) - (len(message) // 16 + 1) * 16
    garbled = cms.decrypt(_flip(der, ct_start + 20), [pki.ec.pair])
    assert garbled.content != message and not garbled.authenticated


def test_unusable_recipient(pki: Any, message: bytes) -> None:
    with pytest.raises(ProtectError, match="Ed25519"):
        cms.encrypt(message, [pki.ed.cert])
    with pytest.raises(ProtectError):
        cms.encrypt(message, [])
    with pytest.raises(ProtectError):
        cms.encrypt(message, [pki.ec.cert], cipher="des-ede3-cbc")


def test_policy_refuses_cipher(pki: Any, message: bytes) -> None:
    der = cms.encrypt(message, [pki.ec.cert], cipher="aes128-cbc")
    gcm_only = Policy(accepted_ciphers=frozenset({"aes128-gcm"}))
    with pytest.raises(WeakAlgorithmError):
        cms.decrypt(der, [pki.ec.pair], policy=gcm_only)


def test_decrypt_refuses_signed_data(pki: Any, message: bytes, signing_time: Any) -> None:
    signed = cms.sign(message, key=pki.ec.key, certificate=pki.ec.cert, signing_time=signing_time)
    with pytest.raises(UnsupportedError):
        cms.decrypt(signed, [pki.ec.pair])
    with pytest.raises(UnsupportedError):
        cms.describe_recipients(signed)
    with pytest.raises(MalformedError):
        cms.decrypt(b"\x30\x00", [pki.ec.pair])


def test_sign_then_encrypt(pki: Any, message: bytes, signing_time: Any) -> None:
    signed = cms.sign(message, key=pki.ec.key, certificate=pki.ec.cert, signing_time=signing_time)
    env = cms.encrypt(signed, [pki.ec2.cert, pki.rsa.cert])
    inner = cms.decrypt(cms.parse_content_info(env), [pki.rsa.pair])
    assert inner.content == signed
    result = cms.verify_signed(inner.content)
    assert result.signers[0].valid and result.content == message


def test_auth_attributes_are_authenticated(pki: Any, message: bytes) -> None:
    """AuthEnvelopedData with authAttrs: the GCM AAD is their DER encoding as a SET OF
    (RFC 5083 section 2.2). Built by hand around a known key and nonce."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    stream = iter([b"K" * 16, b"N" * 12])
    der = cms.encrypt(message, [pki.ec.cert], random_bytes=lambda n: next(stream))
    ci = asn1_cms.ContentInfo.load(der)
    aed = ci["content"]
    attrs = asn1_cms.CMSAttributes([{"type": "content_type", "values": ["data"]}])
    aad = attrs.dump()  # a SET OF: tag 0x31
    sealed = AESGCM(b"K" * 16).encrypt(b"N" * 12, message, aad)
    aed["auth_encrypted_content_info"]["encrypted_content"] = sealed[:-16]
    aed["auth_attrs"] = attrs
    aed["mac"] = sealed[-16:]
    rebuilt = ci.dump(force=True)
    at = rebuilt.index(b"\xa1" + aad[1:])  # authAttrs, [1] IMPLICIT SET OF
    assert cms.decrypt(rebuilt, [pki.ec.pair]).content == message
    # Changing the authenticated attribute (id-data -> id-signedData) breaks the tag.
    tampered = bytearray(rebuilt)
    tampered[at + len(aad) - 1] ^= 0x03
    with pytest.raises(TamperedError):
        cms.decrypt(bytes(tampered), [pki.ec.pair])
