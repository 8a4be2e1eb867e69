"""Interoperability with OpenSSL's `cms` command (the independent CMS implementation), both
directions: our output checked by OpenSSL, OpenSSL's output checked by us."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from messenger.smime import cms
from messenger.smime.errors import TamperedError, WeakAlgorithmError
from messenger.smime.policy import DEFAULT_POLICY, Policy

pytestmark = pytest.mark.interop


# --------------------------------------------------------------------------- we sign


def _openssl_verify(
    openssl: Any, pki: Any, der: bytes, content: bytes | None
) -> tuple[int, bytes, str]:
    sig = openssl.write(der, ".der")
    out = openssl.path(".out")
    args: list[Any] = [
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        sig,
        "-CAfile",
        pki.ca_path,
        "-purpose",
        "any",
        "-out",
        out,
    ]
    if content is not None:
        args += ["-content", openssl.write(content, ".txt")]
    proc = openssl.run(*args, check=False)
    data = out.read_bytes() if out.exists() else b""
    return proc.returncode, data, proc.stderr.decode(errors="replace")


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
    rc, out, err = _openssl_verify(openssl, pki, der, message if detached else None)
    assert rc == 0, err + openssl.dump(openssl.write(der, ".der"))
    assert out == message


def test_openssl_verifies_our_ed25519_signature(
    openssl: Any, pki: Any, message: bytes, signing_time: dt.datetime
) -> None:
    der = cms.sign(message, key=pki.ed.key, certificate=pki.ed.cert, signing_time=signing_time)
    rc, out, err = _openssl_verify(openssl, pki, der, None)
    if rc != 0 and "invalid digest" in err:
        pytest.skip(f"{openssl.version} cms cannot verify Ed25519 SignerInfos: {err.strip()}")
    assert rc == 0, err
    assert out == message


def test_openssl_rejects_our_tampered_signature(
    openssl: Any, pki: Any, message: bytes, signing_time: dt.datetime
) -> None:
    der = cms.sign(message, key=pki.ec.key, certificate=pki.ec.cert, signing_time=signing_time)
    bad = der.replace(message, message.replace(b"Watson", b"Wats0n"))
    assert _openssl_verify(openssl, pki, bad, None)[0] != 0


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


def _openssl_decrypt(openssl: Any, ident: Any, der: bytes) -> tuple[int, bytes, str]:
    out = openssl.path(".out")
    proc = openssl.run(
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        openssl.write(der, ".der"),
        "-recip",
        ident.cert_path,
        "-inkey",
        ident.key_path,
        "-out",
        out,
        check=False,
    )
    return proc.returncode, out.read_bytes() if out.exists() else b"", proc.stderr.decode()


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
    rc, out, err = _openssl_decrypt(openssl, ident, der)
    assert rc == 0, err + openssl.dump(openssl.write(der, ".der"))
    assert out == message


def test_openssl_decrypts_ours_with_several_recipients(
    openssl: Any, pki: Any, message: bytes
) -> None:
    der = cms.encrypt(message, [pki.rsa.cert, pki.ec.cert, pki.ec2.cert])
    for ident in (pki.rsa, pki.ec, pki.ec2):
        rc, out, err = _openssl_decrypt(openssl, ident, der)
        assert rc == 0, err
        assert out == message


def test_openssl_decrypts_ours_x25519(openssl: Any, pki: Any, message: bytes) -> None:
    der = cms.encrypt(message, [pki.x.cert])
    rc, out, err = _openssl_decrypt(openssl, pki.x, der)
    if rc != 0 and ("no matching recipient" in err or "not supported" in err):
        pytest.skip(f"{openssl.version} cms has no X25519 key agreement: {err.strip()[:120]}")
    assert rc == 0, err
    assert out == message


def test_openssl_rejects_our_tampered_gcm(openssl: Any, pki: Any, message: bytes) -> None:
    der = bytearray(cms.encrypt(message, [pki.ec.cert]))
    der[-30] ^= 1  # inside the ciphertext
    assert _openssl_decrypt(openssl, pki.ec, bytes(der))[0] != 0


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
