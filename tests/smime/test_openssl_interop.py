"""Interoperability with OpenSSL's `cms` command (the independent CMS implementation), both
directions: our output checked by OpenSSL, OpenSSL's output checked by us."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from messenger.pki.identity import Identity
from messenger.pki.verdict import Authenticity
from messenger.smime import cms
from messenger.smime.errors import TamperedError, WeakAlgorithmError
from messenger.smime.mime import MimeEntity
from messenger.smime.policy import DEFAULT_POLICY, Policy
from messenger.smime.protect import unprotect
from messenger.smime.report import Confidentiality

pytestmark = pytest.mark.interop


# --------------------------------------------------------------------------- we sign


@pytest.mark.parametrize(("who", "pss"), [("ec", False), ("rsa", False), ("rsa", True)])
@pytest.mark.parametrize("detached", [False, True])
def test_openssl_verifies_our_signature(
    openssl: Any,
    pki: Any,
    message: bytes,
    signing_time: dt.datetime,
    who: str,
    pss: bool,
    detached: bool,
) -> None:
    ident = getattr(pki, who)
    der = cms.sign(
        message,
        key=ident.key,
        certificate=ident.cert,
        chain=[pki.ca.cert],
        signing_time=signing_time,
        detached=detached,
        rsa_pss=pss,
    )
    rc, out, err = openssl.cms_verify(pki.ca_path, der, content=message if detached else None)
    assert rc == 0, err + openssl.dump(openssl.write(der, ".der"))
    assert out == message


#: What OpenSSL 3.0 lacks for Ed25519 in CMS (fixed in later releases): its CMS code hands
#: the SignerInfo digest (SHA-512, as RFC 8419 section 3 requires with signed attributes) to
#: EVP_DigestSignInit/EVP_DigestVerifyInit, and its EdDSA provider refuses every digest.
_OPENSSL_NO_CMS_EDDSA = (
    "cms cannot sign or verify Ed25519 SignerInfos: CMS passes the SHA-512 digest to its "
    "EdDSA provider, which refuses any digest (eddsa_digest_signverify_init: invalid "
    "digest); the signature is checked with `openssl pkeyutl -rawin` instead"
)


def test_openssl_verifies_our_ed25519_signature(
    openssl: Any, pki: Any, message: bytes, signing_time: dt.datetime
) -> None:
    der = cms.sign(message, key=pki.ed.key, certificate=pki.ed.cert, signing_time=signing_time)
    rc, out, err = openssl.cms_verify(pki.ca_path, der)
    if rc != 0 and "invalid digest" in err:
        pytest.skip(f"{openssl.version} {_OPENSSL_NO_CMS_EDDSA}")
    assert rc == 0, err
    assert out == message


def _signer_info(der: bytes) -> Any:
    return asn1_cms.ContentInfo.load(der)["content"]["signer_infos"][0]


def _attr(signer_info: Any, name: str) -> Any:
    return next(a["values"][0] for a in signer_info["signed_attrs"] if a["type"].native == name)


def test_openssl_pkeyutl_verifies_our_ed25519_signed_attributes(
    openssl: Any, pki: Any, message: bytes, signing_time: dt.datetime
) -> None:
    """Our Ed25519 SignerInfo checked by OpenSSL piece by piece (RFC 8419): SHA-512 as the
    digest algorithm, messageDigest = SHA-512 of the content, and a PureEdDSA signature
    over the DER SET OF signed attributes that `openssl pkeyutl` verifies."""
    der = cms.sign(message, key=pki.ed.key, certificate=pki.ed.cert, signing_time=signing_time)
    printed = openssl.dump(openssl.write(der, ".der"))
    assert "algorithm: sha512" in printed and "algorithm: ED25519" in printed, printed
    si = _signer_info(der)
    digest = openssl.run("dgst", "-sha512", "-binary", openssl.write(message, ".txt")).stdout
    assert _attr(si, "message_digest").native == digest
    signed_attrs = b"\x31" + si["signed_attrs"].dump()[1:]  # [0] IMPLICIT -> SET OF
    pub = openssl.write(
        pki.ed.cert.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    args = ["pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin"]
    proc = openssl.run(
        *args,
        "-in",
        openssl.write(signed_attrs),
        "-sigfile",
        openssl.write(si["signature"].native),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert b"Signature Verified Successfully" in proc.stdout
    altered = signed_attrs.replace(digest, bytes(64))  # what a changed content would give
    proc = openssl.run(
        *args,
        "-in",
        openssl.write(altered),
        "-sigfile",
        openssl.write(si["signature"].native),
        check=False,
    )
    assert proc.returncode != 0


def test_openssl_signs_ed25519_cms(openssl: Any, pki: Any, message: bytes) -> None:
    out = openssl.path(".der")
    proc = openssl.run(
        "cms",
        "-sign",
        "-binary",
        "-nodetach",
        "-md",
        "sha512",
        "-in",
        openssl.write(message, ".txt"),
        "-signer",
        pki.ed.cert_path,
        "-inkey",
        pki.ed.key_path,
        "-outform",
        "DER",
        "-out",
        out,
        check=False,
    )
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0 and ("invalid digest" in err or "no default digest" in err):
        pytest.skip(f"{openssl.version} {_OPENSSL_NO_CMS_EDDSA}")
    assert proc.returncode == 0, err
    result = cms.verify_signed(out.read_bytes())
    assert result.signers[0].valid and result.content == message


def test_we_verify_ed25519_signed_attributes_signed_by_openssl(
    openssl: Any, pki: Any, message: bytes, signing_time: dt.datetime
) -> None:
    """A SignedData whose Ed25519 signature OpenSSL made (`openssl pkeyutl -sign -rawin`
    over signed attributes assembled with asn1crypto) verifies with our reader."""
    digest = openssl.run("dgst", "-sha512", "-binary", openssl.write(message, ".txt")).stdout
    attrs = asn1_cms.CMSAttributes(
        [
            {"type": "content_type", "values": ["data"]},
            {"type": "signing_time", "values": [asn1_cms.Time({"utc_time": signing_time})]},
            {"type": "message_digest", "values": [digest]},
        ]
    )
    tbs = attrs.dump()
    sig = openssl.run(
        "pkeyutl", "-sign", "-inkey", pki.ed.key_path, "-rawin", "-in", openssl.write(tbs)
    ).stdout
    assert len(sig) == 64

    def signed_data(signature: bytes) -> bytes:
        cert = asn1_x509.Certificate.load(pki.ed.cert.public_bytes(Encoding.DER))
        signer = asn1_cms.SignerInfo(
            {
                "version": "v1",
                "sid": asn1_cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": cert.issuer,
                            "serial_number": cert.serial_number,
                        }
                    }
                ),
                "digest_algorithm": {"algorithm": "sha512"},
                "signed_attrs": asn1_cms.CMSAttributes.load(tbs),
                "signature_algorithm": {"algorithm": "ed25519"},
                "signature": signature,
            }
        )
        sd = asn1_cms.SignedData(
            {
                "version": "v1",
                "digest_algorithms": [{"algorithm": "sha512"}],
                "encap_content_info": {"content_type": "data", "content": message},
                "certificates": [cert],
                "signer_infos": [signer],
            }
        )
        return asn1_cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()

    result = cms.verify_signed(signed_data(sig))
    signer = result.signers[0]
    assert signer.valid, signer.reason
    assert result.content == message and signer.signing_time == signing_time
    assert {a.name for a in signer.algorithms} >= {"Ed25519", "sha512"}
    bad = cms.verify_signed(signed_data(sig[:-1] + bytes([sig[-1] ^ 1]))).signers[0]
    assert not bad.valid and bad.reason == "signature does not verify"


def test_openssl_rejects_our_tampered_signature(
    openssl: Any, pki: Any, message: bytes, signing_time: dt.datetime
) -> None:
    der = cms.sign(message, key=pki.ec.key, certificate=pki.ec.cert, signing_time=signing_time)
    bad = der.replace(message, message.replace(b"Watson", b"Wats0n"))
    assert openssl.cms_verify(pki.ca_path, bad)[0] != 0


def test_openssl_reads_our_certs_only(openssl: Any, pki: Any) -> None:
    der = openssl.write(cms.certs_only([pki.ec.cert, pki.ca.cert]), ".der")
    out = openssl.path(".pem")
    openssl.run("pkcs7", "-inform", "DER", "-in", der, "-print_certs", "-out", out)
    text = out.read_text()
    assert text.count("BEGIN CERTIFICATE") == 2
    assert "CN=Bob" in text or "CN = Bob" in text


# --------------------------------------------------------------------------- OpenSSL signs


def _openssl_sign(openssl: Any, ident: Any, message: bytes, *extra: Any) -> bytes:
    out = openssl.path(".der")
    openssl.run(
        "cms",
        "-sign",
        "-binary",
        "-in",
        openssl.write(message, ".txt"),
        "-signer",
        ident.cert_path,
        "-inkey",
        ident.key_path,
        "-outform",
        "DER",
        "-out",
        out,
        *extra,
    )
    return out.read_bytes()


@pytest.mark.parametrize("who", ["ec", "rsa"])
@pytest.mark.parametrize("detached", [False, True])
def test_we_verify_openssl_signature(
    openssl: Any, pki: Any, message: bytes, who: str, detached: bool
) -> None:
    ident = getattr(pki, who)
    extra = ["-md", "sha256"] + ([] if detached else ["-nodetach"])
    der = _openssl_sign(openssl, ident, message, *extra)
    result = cms.verify_signed(der, detached_content=message if detached else None)
    (signer,) = result.signers
    assert signer.valid, signer.reason
    assert signer.certificate == ident.cert
    assert signer.signing_time is not None
    assert result.content == message
    assert ident.cert in result.certificates


@pytest.mark.parametrize("who", ["ec", "rsa"])
def test_openssl_sha1_signature_is_weak(openssl: Any, pki: Any, message: bytes, who: str) -> None:
    der = _openssl_sign(openssl, getattr(pki, who), message, "-nodetach", "-md", "sha1")
    (signer,) = cms.verify_signed(der).signers
    assert signer.weak and not signer.valid
    assert signer.reason == "SHA-1 rejected by policy"
    allow = dataclasses.replace(DEFAULT_POLICY, accepted_digests=frozenset({"sha1"}))
    assert cms.verify_signed(der, policy=allow).signers[0].valid


def test_openssl_ber_indefinite_signed_data(openssl: Any, pki: Any, message: bytes) -> None:
    der = _openssl_sign(openssl, pki.ec, message, "-nodetach", "-md", "sha256", "-stream")
    assert der[:2] == b"\x30\x80", "expected an indefinite-length (BER) encoding"
    result = cms.verify_signed(der)
    assert result.signers[0].valid, result.signers[0].reason
    assert result.content == message
    # And through the validating asn1crypto parse.
    assert cms.verify_signed(cms.parse_content_info(der)).content == message
    big = bytes(range(256)) * 64
    der = _openssl_sign(openssl, pki.ec, big, "-nodetach", "-md", "sha256", "-stream")
    result = cms.verify_signed(der)
    assert result.signers[0].valid and result.content == big


def test_openssl_signature_by_key_identifier(openssl: Any, pki: Any, message: bytes) -> None:
    der = _openssl_sign(openssl, pki.ec, message, "-nodetach", "-md", "sha256", "-keyid")
    (signer,) = cms.verify_signed(der).signers
    assert signer.valid, signer.reason
    assert signer.sid.startswith("subject key identifier ")


def test_openssl_two_signers(openssl: Any, pki: Any, message: bytes) -> None:
    der = _openssl_sign(
        openssl,
        pki.ec,
        message,
        "-nodetach",
        "-md",
        "sha256",
        "-signer",
        pki.rsa.cert_path,
        "-inkey",
        pki.rsa.key_path,
    )
    result = cms.verify_signed(der)
    assert [s.valid for s in result.signers] == [True, True]
    assert {s.certificate for s in result.signers} == {pki.ec.cert, pki.rsa.cert}


def test_openssl_signature_without_certificates(openssl: Any, pki: Any, message: bytes) -> None:
    der = _openssl_sign(openssl, pki.ec, message, "-nodetach", "-md", "sha256", "-nocerts")
    assert cms.verify_signed(der).signers[0].reason == "signer certificate not found"
    assert cms.verify_signed(der, extra_certificates=[pki.ec.cert]).signers[0].valid


# --------------------------------------------------------------------------- we encrypt


@pytest.mark.parametrize(
    ("who", "cipher", "oaep"),
    [
        ("ec", "aes128-gcm", True),
        ("ec", "aes256-gcm", True),
        ("ec", "aes128-cbc", True),
        ("ec", "aes256-cbc", True),
        ("rsa", "aes128-gcm", True),
        ("rsa", "aes128-gcm", False),
        ("rsa", "aes256-cbc", True),
    ],
)
def test_openssl_decrypts_ours(
    openssl: Any, pki: Any, message: bytes, who: str, cipher: str, oaep: bool
) -> None:
    ident = getattr(pki, who)
    der = cms.encrypt(message, [ident.cert], cipher=cipher, rsa_oaep=oaep)
    rc, out, err = openssl.cms_decrypt(ident, der)
    assert rc == 0, err + openssl.dump(openssl.write(der, ".der"))
    assert out == message


def test_openssl_decrypts_ours_with_several_recipients(
    openssl: Any, pki: Any, message: bytes
) -> None:
    der = cms.encrypt(message, [pki.rsa.cert, pki.ec.cert, pki.ec2.cert])
    for ident in (pki.rsa, pki.ec, pki.ec2):
        rc, out, err = openssl.cms_decrypt(ident, der)
        assert rc == 0, err
        assert out == message


#: What OpenSSL 3.0 lacks for X25519 in CMS: its KeyAgreeRecipientInfo code handles EC keys
#: only (no RFC 8418), so `cms -decrypt` finds no recipient it can open.
_OPENSSL_NO_CMS_X25519 = (
    "cms has no X25519 KeyAgreeRecipientInfo (RFC 8418; its CMS key agreement handles EC "
    "keys only); the recipient info is opened with pkeyutl -derive, kdf X963KDF and enc "
    "-id-aes128-wrap instead"
)


def test_openssl_decrypts_ours_x25519(openssl: Any, pki: Any, message: bytes) -> None:
    der = cms.encrypt(message, [pki.x.cert])
    rc, out, err = openssl.cms_decrypt(pki.x, der)
    if rc != 0 and ("no matching recipient" in err or "not supported" in err):
        pytest.skip(f"{openssl.version} {_OPENSSL_NO_CMS_X25519}")
    assert rc == 0, err
    assert out == message


def _der_len(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else b"\x81" + bytes([n])


@pytest.mark.parametrize("cipher", ["aes128-gcm", "aes128-cbc"])
def test_openssl_primitives_open_our_x25519_recipient(
    openssl: Any, pki: Any, message: bytes, cipher: str
) -> None:
    """Our X25519 KeyAgreeRecipientInfo (RFC 8418: ephemeral-static X25519, X9.63 KDF with
    SHA-256 over ECC-CMS-SharedInfo, AES key wrap) opened step by step by OpenSSL."""
    cek = bytes(range(16))
    iv = bytes(range(100, 116))
    randomness = iter([cek, iv[:12] if cipher.endswith("gcm") else iv])
    der = cms.encrypt(message, [pki.x.cert], cipher=cipher, random_bytes=lambda n: next(randomness))
    env = asn1_cms.ContentInfo.load(der)["content"]
    kari = env["recipient_infos"][0].chosen
    assert kari["key_encryption_algorithm"]["algorithm"].dotted == "1.3.132.1.11.1"
    wrap_oid = kari["key_encryption_algorithm"]["parameters"]["algorithm"].dotted
    assert wrap_oid == "2.16.840.1.101.3.4.1.5"  # id-aes128-wrap
    originator = kari["originator"].chosen
    assert originator["algorithm"]["algorithm"].dotted == "1.3.101.110"  # X25519
    ephemeral = bytes.fromhex("302a300506032b656e032100") + originator["public_key"].native
    z = openssl.run(
        "pkeyutl",
        "-derive",
        "-inkey",
        pki.x.key_path,
        "-peerkey",
        openssl.write(ephemeral),
        "-peerform",
        "DER",
    ).stdout
    oid = asn1_core.ObjectIdentifier(wrap_oid).dump()
    key_info = b"\x30" + _der_len(len(oid)) + oid
    supp = b"\xa2\x06\x04\x04\x00\x00\x00\x80"  # [2] KEK length: 128 bits
    shared_info = b"\x30" + _der_len(len(key_info) + len(supp)) + key_info + supp
    kek = openssl.run(
        "kdf",
        "-keylen",
        "16",
        "-kdfopt",
        "digest:SHA256",
        "-kdfopt",
        f"hexsecret:{z.hex()}",
        "-kdfopt",
        f"hexinfo:{shared_info.hex()}",
        "-binary",
        "X963KDF",
    ).stdout
    wrapped = kari["recipient_encrypted_keys"][0]["encrypted_key"].native
    unwrapped = openssl.run(
        "enc",
        "-d",
        "-id-aes128-wrap",
        "-K",
        kek.hex(),
        "-iv",
        "A6A6A6A6A6A6A6A6",
        "-in",
        openssl.write(wrapped),
    ).stdout
    assert unwrapped == cek
    if cipher == "aes128-cbc":
        ciphertext = env["encrypted_content_info"]["encrypted_content"].native
        plain = openssl.run(
            "enc",
            "-d",
            "-aes-128-cbc",
            "-K",
            cek.hex(),
            "-iv",
            iv.hex(),
            "-in",
            openssl.write(ciphertext),
        ).stdout
        assert plain == message


def test_openssl_rejects_our_tampered_gcm(openssl: Any, pki: Any, message: bytes) -> None:
    der = bytearray(cms.encrypt(message, [pki.ec.cert]))
    der[-30] ^= 1  # inside the ciphertext
    assert openssl.cms_decrypt(pki.ec, bytes(der))[0] != 0


# --------------------------------------------------------------------------- OpenSSL encrypts


def _openssl_encrypt(openssl: Any, message: bytes, *args: Any) -> bytes:
    out = openssl.path(".der")
    openssl.run(
        "cms",
        "-encrypt",
        "-binary",
        "-in",
        openssl.write(message, ".txt"),
        "-outform",
        "DER",
        "-out",
        out,
        *args,
    )
    return out.read_bytes()


@pytest.mark.parametrize(
    ("cipher", "kdf"),
    [
        ("-aes-128-gcm", "sha256"),
        ("-aes-256-gcm", "sha256"),
        ("-aes128", "sha256"),
        ("-aes256", "sha256"),
        ("-aes-128-gcm", "sha384"),
        ("-aes-128-gcm", "sha512"),
    ],
)
def test_we_decrypt_openssl_ecdh(
    openssl: Any, pki: Any, message: bytes, cipher: str, kdf: str
) -> None:
    der = _openssl_encrypt(
        openssl, message, cipher, "-recip", pki.ec.cert_path, "-keyopt", f"ecdh_kdf_md:{kdf}"
    )
    result = cms.decrypt(der, [pki.ec.pair])
    assert result.content == message
    assert result.authenticated is ("gcm" in cipher)
    names = [a.name for a in result.algorithms]
    assert f"dhSinglePass-stdDH-{kdf}kdf-scheme" in names
    assert "P-256" in names
    assert names[-1] == ("id-aes256-wrap" if "256" in cipher else "id-aes128-wrap")


def test_we_decrypt_openssl_key_identifier(openssl: Any, pki: Any, message: bytes) -> None:
    der = _openssl_encrypt(
        openssl,
        message,
        "-aes-128-gcm",
        "-keyid",
        "-recip",
        pki.ec.cert_path,
        "-keyopt",
        "ecdh_kdf_md:sha256",
    )
    result = cms.decrypt(der, [pki.ec2.pair, pki.ec.pair])
    assert result.content == message
    assert result.recipient.startswith("subject key identifier ")
    der = _openssl_encrypt(openssl, message, "-aes-128-gcm", "-keyid", "-recip", pki.rsa.cert_path)
    assert cms.decrypt(der, [pki.rsa.pair]).content == message


def test_openssl_default_sha1_kdf_is_weak(openssl: Any, pki: Any, message: bytes) -> None:
    der = _openssl_encrypt(openssl, message, "-aes-128-gcm", "-recip", pki.ec.cert_path)
    with pytest.raises(WeakAlgorithmError, match="SHA-1"):
        cms.decrypt(der, [pki.ec.pair])
    result = cms.decrypt(der, [pki.ec.pair], policy=Policy(accept_sha1_kdf=True))
    assert result.content == message
    assert "dhSinglePass-stdDH-sha1kdf-scheme" in [a.name for a in result.algorithms]


@pytest.mark.parametrize("oaep", [False, True])
def test_we_decrypt_openssl_rsa(openssl: Any, pki: Any, message: bytes, oaep: bool) -> None:
    extra = ["-keyopt", "rsa_padding_mode:oaep"] if oaep else []
    der = _openssl_encrypt(openssl, message, "-aes-128-gcm", "-recip", pki.rsa.cert_path, *extra)
    result = cms.decrypt(der, [pki.rsa.pair])
    assert result.content == message
    assert result.algorithms[1].name == ("RSAES-OAEP" if oaep else "rsaEncryption")
    der = _openssl_encrypt(openssl, message, "-aes128", "-recip", pki.rsa.cert_path, *extra)
    assert cms.decrypt(der, [pki.rsa.pair]).content == message


def test_we_decrypt_openssl_several_recipients(openssl: Any, pki: Any, message: bytes) -> None:
    der = _openssl_encrypt(
        openssl,
        message,
        "-aes-128-gcm",
        "-recip",
        pki.rsa.cert_path,
        "-recip",
        pki.ec.cert_path,
        "-keyopt",
        "ecdh_kdf_md:sha256",
    )
    assert len(cms.describe_recipients(der)) == 2
    assert cms.decrypt(der, [pki.ec.pair]).content == message
    assert cms.decrypt(der, [pki.rsa.pair]).content == message


def test_openssl_triple_des_is_weak(openssl: Any, pki: Any, message: bytes) -> None:
    der = _openssl_encrypt(openssl, message, "-des3", "-recip", pki.rsa.cert_path)
    with pytest.raises(WeakAlgorithmError):
        cms.decrypt(der, [pki.rsa.pair])
    legacy = dataclasses.replace(
        DEFAULT_POLICY, accepted_ciphers=DEFAULT_POLICY.accepted_ciphers | {"des-ede3-cbc"}
    )
    assert cms.decrypt(der, [pki.rsa.pair], policy=legacy).content == message


def test_openssl_tampered_ciphertext(openssl: Any, pki: Any, message: bytes) -> None:
    der = bytearray(
        _openssl_encrypt(
            openssl,
            message,
            "-aes-128-gcm",
            "-recip",
            pki.ec.cert_path,
            "-keyopt",
            "ecdh_kdf_md:sha256",
        )
    )
    der[-30] ^= 0x04
    with pytest.raises(TamperedError):
        cms.decrypt(bytes(der), [pki.ec.pair])


def test_openssl_sign_then_encrypt(openssl: Any, pki: Any, message: bytes, tmp_path: Path) -> None:
    signed = _openssl_sign(openssl, pki.ec, message, "-nodetach", "-md", "sha256")
    der = _openssl_encrypt(
        openssl,
        signed,
        "-aes-128-gcm",
        "-recip",
        pki.ec2.cert_path,
        "-keyopt",
        "ecdh_kdf_md:sha256",
    )
    inner = cms.decrypt(der, [pki.ec2.pair])
    result = cms.verify_signed(inner.content)
    assert result.signers[0].valid and result.content == message


@pytest.mark.parametrize("cipher", ["-aes-128-gcm", "-aes128"])
def test_openssl_streamed_ber_envelope(openssl: Any, pki: Any, message: bytes, cipher: str) -> None:
    """`-stream` makes OpenSSL write BER with indefinite lengths and chunked content."""
    der = _openssl_encrypt(
        openssl,
        message,
        cipher,
        "-stream",
        "-recip",
        pki.ec.cert_path,
        "-keyopt",
        "ecdh_kdf_md:sha256",
    )
    assert der[:2] == b"\x30\x80"  # indefinite length
    result = cms.decrypt(der, [pki.ec.pair])
    assert result.content == message
    assert result.authenticated == (cipher == "-aes-128-gcm")


@pytest.mark.parametrize("weak", ["3des", "sha1-kdf"])
def test_weak_envelope_reported_as_weak_algorithm(
    openssl: Any, pki: Any, message: bytes, weak: str
) -> None:
    """unprotect() of OpenSSL's 3DES envelope or SHA-1 ECDH KDF: weak-algorithm, not opened."""
    if weak == "3des":
        ident = pki.rsa
        der = _openssl_encrypt(openssl, message, "-des3", "-recip", ident.cert_path)
    else:
        ident = pki.ec
        der = _openssl_encrypt(openssl, message, "-aes-128-gcm", "-recip", ident.cert_path)
    entity = MimeEntity.build("application/pkcs7-mime", der)
    identity = Identity(ident.key, ident.cert, (pki.ca.cert,))
    result = unprotect(entity, identity=identity, at=dt.datetime.now(dt.UTC))
    assert result.content is None
    assert result.report.authenticity is Authenticity.WEAK_ALGORITHM
    assert result.report.confidentiality is Confidentiality.UNDECIPHERABLE
    assert "policy" in result.report.reason
