"""The `messenger cert` and `messenger smime` commands, end to end through the real console
entry (`python -m messenger ...` in a subprocess): files, modes, exit codes, the one-line
reasons on stderr, the report JSON, and OpenSSL reading what `--der` writes."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

TEXT = b"Watson, come here - I want to see you.\r\n"
ALICE = "sip:alice@example.com"
BOB = "sip:bob@example.com"
REPORT_KEYS = {
    "confidentiality",
    "authenticity",
    "layers",
    "algorithms",
    "signer",
    "sender_match",
    "signing_time",
    "content_type",
}


@dataclass
class Run:
    code: int
    out: bytes
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def messenger(*args: str | Path, cwd: Path, stdin: bytes | None = None) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "messenger", *map(str, args)],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=120,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"))


def ok(*args: str | Path, cwd: Path) -> Run:
    run = messenger(*args, cwd=cwd)
    assert run.code == 0, f"{args}: exit {run.code}: {run.err}"
    return run


def failed(code: int, *args: str | Path, cwd: Path) -> Run:
    """Run a command that must fail with `code` and exactly one line of reason."""
    run = messenger(*args, cwd=cwd)
    assert run.code == code, f"{args}: exit {run.code}, wanted {code}: {run.err}"
    assert len(run.err_lines) == 1, f"{args}: wanted one line on stderr, got {run.err!r}"
    assert run.err_lines[0].startswith("messenger"), run.err
    return run


def report(path: Path) -> dict:
    doc = json.loads(path.read_text())
    assert doc.keys() >= REPORT_KEYS, sorted(REPORT_KEYS - doc.keys())
    return doc


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, Alice (P-256, issued, passphrase-protected key), Bob (P-256, issued) and
    Carol (self-signed), made with the command line itself."""
    root = tmp_path_factory.mktemp("cli")
    ok("cert", "ca", "--name", "Test CA", "--out", "ca", "--days", "30", cwd=root)
    (root / "pass.txt").write_text("correct horse\n")
    ok(
        "cert",
        "new",
        ALICE,
        "--out",
        "alice",
        "--ca",
        "ca",
        "--passphrase-file",
        "pass.txt",
        cwd=root,
    )
    ok("cert", "new", BOB, "--out", "bob", "--ca", "ca", cwd=root)
    ok("cert", "new", "sip:carol@example.com", "--out", "carol", cwd=root)
    (root / "m.txt").write_bytes(TEXT)
    return root


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


# -- messenger cert --------------------------------------------------------------------


def test_cert_ca_writes_cert_key_and_crl(pki: Path) -> None:
    for name in ("cert.pem", "key.pem", "crl.pem"):
        assert (pki / "ca" / name).is_file()
    cert = _cert(pki / "ca" / "cert.pem")
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=31)
    assert stat.S_IMODE((pki / "ca" / "key.pem").stat().st_mode) == 0o600
    crl = x509.load_pem_x509_crl((pki / "ca" / "crl.pem").read_bytes())
    assert crl.issuer == cert.subject and len(list(crl)) == 0


def test_cert_new_issued_by_ca_with_passphrase(pki: Path) -> None:
    cert = _cert(pki / "alice" / "cert.pem")
    ca = _cert(pki / "ca" / "cert.pem")
    assert cert.issuer == ca.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [ALICE]
    key = (pki / "alice" / "key.pem").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in key
    assert stat.S_IMODE((pki / "alice" / "key.pem").stat().st_mode) == 0o600


def test_cert_new_without_passphrase_warns_and_is_owner_only(pki: Path, tmp_path: Path) -> None:
    run = ok("cert", "new", "sip:dave@example.com", "--out", tmp_path / "dave", cwd=pki)
    assert "warning" in run.err and "not encrypted" in run.err and "--passphrase-file" in run.err
    key = tmp_path / "dave" / "key.pem"
    assert b"-----BEGIN PRIVATE KEY-----" in key.read_bytes()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    cert = _cert(tmp_path / "dave" / "cert.pem")
    assert cert.issuer == cert.subject  # self-signed without --ca
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)  # P-256 by default


def test_cert_new_with_passphrase_does_not_warn(pki: Path, tmp_path: Path) -> None:
    run = ok(
        "cert",
        "new",
        "sip:erin@example.com",
        "--out",
        tmp_path / "erin",
        "--passphrase-file",
        "pass.txt",
        cwd=pki,
    )
    assert "warning" not in run.err


@pytest.mark.parametrize(
    ("kind", "key_type", "bits"),
    [
        ("p256", ec.EllipticCurvePublicKey, 256),
        ("ed25519", ed25519.Ed25519PublicKey, None),
        ("rsa2048", rsa.RSAPublicKey, 2048),
        ("rsa3072", rsa.RSAPublicKey, 3072),
    ],
)
def test_cert_new_key_types_and_days(
    pki: Path, tmp_path: Path, kind: str, key_type: type, bits: int | None
) -> None:
    ok(
        "cert",
        "new",
        "sip:frank@example.com",
        "--out",
        tmp_path / "id",
        "--ca",
        "ca",
        "--key",
        kind,
        "--days",
        "7",
        cwd=pki,
    )
    cert = _cert(tmp_path / "id" / "cert.pem")
    key = cert.public_key()
    assert isinstance(key, key_type)
    if bits is not None:
        assert key.key_size == bits  # type: ignore[union-attr]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=8)
    if kind == "ed25519":  # Ed25519 only signs: a separate X25519 certificate to encrypt to
        enc = _cert(tmp_path / "id" / "enc-cert.pem")
        assert isinstance(enc.public_key(), x25519.X25519PublicKey)
        assert stat.S_IMODE((tmp_path / "id" / "enc-key.pem").stat().st_mode) == 0o600


def test_cert_new_usage_errors(pki: Path, tmp_path: Path) -> None:
    failed(2, "cert", "new", "not a sip uri", "--out", tmp_path / "x", cwd=pki)
    failed(2, "cert", "new", ALICE, "--out", tmp_path / "y", "--key", "dsa", cwd=pki)
    failed(2, "cert", "new", ALICE, "--out", tmp_path / "z", "--ca", tmp_path / "nope", cwd=pki)
    failed(2, "cert", "new", ALICE, "--out", tmp_path / "w", "--passphrase-file", "no", cwd=pki)
    failed(2, "cert", "new", ALICE, cwd=pki)  # --out is required


# -- messenger smime protect / open ----------------------------------------------------


def test_sign_then_encrypt_round_trip(pki: Path, tmp_path: Path) -> None:
    wire, out, rep = tmp_path / "m.msg", tmp_path / "out.txt", tmp_path / "r.json"
    ok(
        "smime",
        "protect",
        "--in",
        "m.txt",
        "--out",
        wire,
        "--sign",
        "alice",
        "--passphrase-file",
        "pass.txt",
        "--encrypt-to",
        "bob/cert.pem",
        cwd=pki,
    )
    head = wire.read_bytes().split(b"\r\n\r\n", 1)[0]
    assert b"application/pkcs7-mime" in head and b"smime-type=authEnveloped-data" in head
    run = ok(
        "smime",
        "open",
        "--in",
        wire,
        "--out",
        out,
        "--identity",
        "bob",
        "--trust",
        "ca/cert.pem",
        "--crl",
        "ca/crl.pem",
        "--sender",
        ALICE,
        "--report",
        rep,
        cwd=pki,
    )
    assert len(run.err_lines) == 1
    assert out.read_bytes() == TEXT
    doc = report(rep)
    assert doc["confidentiality"] == "encrypted"
    assert doc["authenticity"] == "verified"
    assert doc["layers"] == ["authEnveloped-data", "signed-data"]
    names = {a["name"] for a in doc["algorithms"]}
    assert {"aes128-GCM", "dhSinglePass-stdDH-sha256kdf-scheme", "ecdsa-with-SHA256"} <= names
    assert doc["signer"]["uris"] == [ALICE]
    assert len(doc["signer"]["sha256"]) == 64
    assert doc["sender_match"] is True
    assert datetime.fromisoformat(doc["signing_time"]) <= datetime.now(UTC)
    assert doc["content_type"] == "text/plain"


def test_report_to_stdout_and_content_type(pki: Path, tmp_path: Path) -> None:
    wire = tmp_path / "m.msg"
    ok(
        "smime",
        "protect",
        "--in",
        "m.txt",
        "--out",
        wire,
        "--sign",
        "bob",
        "--content-type",
        "message/cpim",
        cwd=pki,
    )
    run = ok("smime", "open", "--in", wire, "--trust", "ca/cert.pem", "--report", "-", cwd=pki)
    doc = json.loads(run.out)
    assert doc.keys() >= REPORT_KEYS
    assert doc["content_type"] == "message/cpim"
    assert doc["confidentiality"] == "plaintext"
    assert doc["authenticity"] == "revocation-unknown"  # no CRL given
    assert doc["sender_match"] is None  # no sender given


def test_open_reads_stdin_and_writes_stdout(pki: Path, tmp_path: Path) -> None:
    wire = tmp_path / "m.msg"
    ok("smime", "protect", "--in", "m.txt", "--out", wire, "--sign", "bob", cwd=pki)
    run = messenger("smime", "open", "--in", "-", "--out", "-", cwd=pki, stdin=wire.read_bytes())
    assert run.code == 0, run.err
    assert run.out == TEXT


def test_multipart_signed(pki: Path, tmp_path: Path) -> None:
    wire, rep = tmp_path / "m.msg", tmp_path / "r.json"
    ok("smime", "protect", "--in", "m.txt", "--out", wire, "--sign", "bob", "--multipart", cwd=pki)
    assert b"multipart/signed" in wire.read_bytes().split(b"\r\n\r\n", 1)[0]
    ok(
        "smime",
        "open",
        "--in",
        wire,
        "--trust",
        "ca/cert.pem",
        "--sender",
        BOB,
        "--report",
        rep,
        cwd=pki,
    )
    doc = report(rep)
    assert doc["layers"] == ["multipart/signed"]
    assert doc["authenticity"] == "revocation-unknown"


def test_legacy_cbc_is_encrypted_legacy(pki: Path, tmp_path: Path) -> None:
    wire, rep = tmp_path / "m.msg", tmp_path / "r.json"
    ok(
        "smime",
        "protect",
        "--in",
        "m.txt",
        "--out",
        wire,
        "--encrypt-to",
        "bob/cert.pem",
        "--legacy-cbc",
        cwd=pki,
    )
    assert b"smime-type=enveloped-data" in wire.read_bytes()
    ok("smime", "open", "--in", wire, "--identity", "bob", "--report", rep, cwd=pki)
    doc = report(rep)
    assert doc["confidentiality"] == "encrypted-legacy"
    assert doc["authenticity"] == "unsigned"
    assert doc["signer"] is None
    assert "aes128-CBC" in {a["name"] for a in doc["algorithms"]}


def test_no_certs_needs_the_certificate_out_of_band(pki: Path, tmp_path: Path) -> None:
    wire, rep = tmp_path / "m.msg", tmp_path / "r.json"
    ok("smime", "protect", "--in", "m.txt", "--out", wire, "--sign", "bob", "--no-certs", cwd=pki)
    run = failed(1, "smime", "open", "--in", wire, "--report", rep, cwd=pki)
    assert "certificate not found" in run.err
    assert report(rep)["authenticity"] == "bad-signature"
    ok(
        "smime",
        "open",
        "--in",
        wire,
        "--certfile",
        "bob/cert.pem",
        "--trust",
        "ca/cert.pem",
        "--report",
        rep,
        cwd=pki,
    )
    assert report(rep)["authenticity"] == "revocation-unknown"


def test_pin_trust_and_sender_states(pki: Path, tmp_path: Path) -> None:
    wire, rep = tmp_path / "m.msg", tmp_path / "r.json"
    carol = "sip:carol@example.com"
    ok("smime", "protect", "--in", "m.txt", "--out", wire, "--sign", "carol", cwd=pki)
    opened = ("smime", "open", "--in", wire, "--report", rep)
    ok(*opened, "--sender", carol, cwd=pki)
    assert report(rep)["authenticity"] == "unverified-new"
    ok(*opened, "--sender", carol, "--pin", "carol/cert.pem", cwd=pki)
    assert report(rep)["authenticity"] == "verified-pinned"
    ok(*opened, "--sender", carol, "--pin", "bob/cert.pem", "--pin", "carol/cert.pem", cwd=pki)
    assert report(rep)["authenticity"] == "verified-pinned"
    ok(*opened, "--sender", carol, "--trust", "carol/cert.pem", cwd=pki)
    assert report(rep)["authenticity"] == "verified"
    ok(*opened, "--sender", ALICE, "--trust", "carol/cert.pem", cwd=pki)  # valid signature: 0
    doc = report(rep)
    assert doc["authenticity"] == "sender-mismatch" and doc["sender_match"] is False


def test_at_time_outside_validity(pki: Path, tmp_path: Path) -> None:
    wire, rep = tmp_path / "m.msg", tmp_path / "r.json"
    ok("smime", "protect", "--in", "m.txt", "--out", wire, "--sign", "bob", cwd=pki)
    later = (datetime.now(UTC) + timedelta(days=800)).isoformat()
    ok(
        "smime",
        "open",
        "--in",
        wire,
        "--trust",
        "ca/cert.pem",
        "--at",
        later,
        "--report",
        rep,
        cwd=pki,
    )
    assert report(rep)["authenticity"] == "expired"
    failed(2, "smime", "open", "--in", wire, "--at", "yesterday", cwd=pki)


def test_revoke_then_open_shows_revoked(pki: Path, tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    shutil.copytree(pki / "ca", ca)
    ok("cert", "new", "sip:gina@example.com", "--out", tmp_path / "gina", "--ca", ca, cwd=pki)
    wire, rep = tmp_path / "m.msg", tmp_path / "r.json"
    ok("smime", "protect", "--in", "m.txt", "--out", wire, "--sign", tmp_path / "gina", cwd=pki)
    run = ok("cert", "revoke", tmp_path / "gina" / "cert.pem", "--ca", ca, cwd=pki)
    crl = x509.load_pem_x509_crl((ca / "crl.pem").read_bytes())
    serial = _cert(tmp_path / "gina" / "cert.pem").serial_number
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    assert "crl.pem" in run.out.decode()
    ok(
        "smime",
        "open",
        "--in",
        wire,
        "--trust",
        ca / "cert.pem",
        "--crl",
        ca / "crl.pem",
        "--sender",
        "sip:gina@example.com",
        "--report",
        rep,
        cwd=pki,
    )
    assert report(rep)["authenticity"] == "revoked"
    failed(2, "cert", "revoke", "m.txt", "--ca", ca, cwd=pki)  # not a certificate


def test_undecipherable_tampered_and_altered_exit_1(pki: Path, tmp_path: Path) -> None:
    rep = tmp_path / "r.json"
    enc = tmp_path / "e.der"
    ok(
        "smime",
        "protect",
        "--in",
        "m.txt",
        "--out",
        enc,
        "--sign",
        "bob",
        "--encrypt-to",
        "bob/cert.pem",
        "--der",
        cwd=pki,
    )
    run = failed(1, "smime", "open", "--in", enc, "--identity", "carol", "--report", rep, cwd=pki)
    assert "undecipherable" in run.err
    assert report(rep)["confidentiality"] == "undecipherable"

    tampered = bytearray(enc.read_bytes())
    tampered[-30] ^= 1  # inside the ciphertext
    (tmp_path / "t.der").write_bytes(bytes(tampered))
    run = failed(
        1,
        "smime",
        "open",
        "--in",
        tmp_path / "t.der",
        "--identity",
        "bob",
        "--out",
        tmp_path / "out",
        "--report",
        rep,
        cwd=pki,
    )
    assert "tampered" in run.err
    assert report(rep)["confidentiality"] == "tampered"
    assert not (tmp_path / "out").exists()

    signed = tmp_path / "s.msg"
    ok("smime", "protect", "--in", "m.txt", "--out", signed, "--sign", "bob", cwd=pki)
    data = signed.read_bytes()
    at = data.index(b"Watson")
    (tmp_path / "a.msg").write_bytes(data[:at] + b"Wotson" + data[at + 6 :])
    run = failed(1, "smime", "open", "--in", tmp_path / "a.msg", "--report", rep, cwd=pki)
    assert "bad-signature" in run.err
    assert report(rep)["authenticity"] == "bad-signature"


def test_open_accepts_der_pem_and_base64_mime(pki: Path, tmp_path: Path) -> None:
    der = tmp_path / "s.der"
    ok("smime", "protect", "--in", "m.txt", "--out", der, "--sign", "bob", "--der", cwd=pki)
    import base64

    body = base64.encodebytes(der.read_bytes())
    (tmp_path / "s.pem").write_bytes(b"-----BEGIN CMS-----\n" + body + b"-----END CMS-----\n")
    (tmp_path / "s.b64").write_bytes(
        b"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + body
    )
    for name in ("s.der", "s.pem", "s.b64"):
        run = ok("smime", "open", "--in", tmp_path / name, "--out", "-", cwd=pki)
        assert run.out == TEXT, name


def test_unreadable_input_and_usage_errors_exit_2(pki: Path, tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"\x30\x82\x01\x00garbage")
    failed(2, "smime", "open", "--in", tmp_path / "junk", cwd=pki)
    failed(2, "smime", "open", "--in", tmp_path / "missing", cwd=pki)
    failed(2, "smime", "open", cwd=pki)  # --in is required
    failed(2, "smime", "open", "--in", "m.txt", "--trust", "m.txt", cwd=pki)
    failed(2, "smime", "open", "--in", "m.txt", "--identity", "alice", cwd=pki)  # passphrase
    failed(2, "smime", "protect", "--in", "m.txt", "--out", tmp_path / "o", cwd=pki)
    failed(
        2,
        "smime",
        "protect",
        "--in",
        "m.txt",
        "--out",
        tmp_path / "o",
        "--sign",
        "bob",
        "--multipart",
        "--der",
        cwd=pki,
    )
    failed(
        2,
        "smime",
        "protect",
        "--in",
        "m.txt",
        "--out",
        tmp_path / "o",
        "--sign",
        "alice",
        "--passphrase-file",
        "m.txt",
        cwd=pki,
    )
    failed(2, "smime", "inspect", "--in", tmp_path / "junk", cwd=pki)
    failed(2, "smime", "frobnicate", cwd=pki)


def test_encrypt_to_an_ed25519_certificate_says_what_to_use(pki: Path, tmp_path: Path) -> None:
    ok("cert", "new", "sip:hal@example.com", "--out", tmp_path / "hal", "--key", "ed25519", cwd=pki)
    run = failed(
        2,
        "smime",
        "protect",
        "--in",
        "m.txt",
        "--out",
        tmp_path / "o",
        "--encrypt-to",
        tmp_path / "hal" / "cert.pem",
        cwd=pki,
    )
    assert "enc-cert.pem" in run.err
    wire, rep = tmp_path / "m.msg", tmp_path / "r.json"
    ok(
        "smime",
        "protect",
        "--in",
        "m.txt",
        "--out",
        wire,
        "--sign",
        tmp_path / "hal",
        "--encrypt-to",
        tmp_path / "hal" / "enc-cert.pem",
        cwd=pki,
    )
    ok(
        "smime",
        "open",
        "--in",
        wire,
        "--identity",
        tmp_path / "hal",
        "--pin",
        tmp_path / "hal" / "cert.pem",
        "--sender",
        "sip:hal@example.com",
        "--report",
        rep,
        cwd=pki,
    )
    doc = report(rep)
    assert doc["authenticity"] == "verified-pinned"
    names = {a["name"] for a in doc["algorithms"]}
    assert {"Ed25519", "X25519"} <= names


def test_inspect_prints_the_structure(pki: Path, tmp_path: Path) -> None:
    wire = tmp_path / "m.msg"
    ok("smime", "protect", "--in", "m.txt", "--out", wire, "--sign", "bob", "--multipart", cwd=pki)
    text = ok("smime", "inspect", "--in", wire, cwd=pki).out.decode()
    for word in ("multipart/signed", "signed_data", "signers", "certificates", "sha256"):
        assert word in text, word
    enc = tmp_path / "e.msg"
    ok("smime", "protect", "--in", "m.txt", "--out", enc, "--encrypt-to", "bob/cert.pem", cwd=pki)
    doc = json.loads(ok("smime", "inspect", "--in", enc, "--json", cwd=pki).out)
    assert doc["cms"]["type"] == "authenticated_enveloped_data"
    assert "serial" in doc["cms"]["recipients"][0]


# -- OpenSSL reads what --der writes ---------------------------------------------------


def _openssl(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is required (Debian package openssl)"
    return subprocess.run(
        [openssl, *map(str, args)], cwd=cwd, capture_output=True, timeout=60, check=False
    )


def test_der_signed_opened_by_openssl(pki: Path, tmp_path: Path) -> None:
    der = tmp_path / "s.der"
    ok("smime", "protect", "--in", "m.txt", "--out", der, "--sign", "bob", "--der", cwd=pki)
    proc = _openssl(
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        der,
        "-CAfile",
        "ca/cert.pem",
        "-out",
        tmp_path / "out",
        cwd=pki,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    # What we sign is the MIME entity (Content-Type, blank line, text).
    assert (tmp_path / "out").read_bytes() == b"Content-Type: text/plain\r\n\r\n" + TEXT


@pytest.mark.parametrize("legacy", [False, True], ids=["gcm", "cbc"])
def test_der_encrypted_opened_by_openssl(pki: Path, tmp_path: Path, legacy: bool) -> None:
    der = tmp_path / "e.der"
    ok(
        "smime",
        "protect",
        "--in",
        "m.txt",
        "--out",
        der,
        "--sign",
        "bob",
        "--encrypt-to",
        "bob/cert.pem",
        "--der",
        *(["--legacy-cbc"] if legacy else []),
        cwd=pki,
    )
    proc = _openssl(
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        der,
        "-recip",
        "bob/cert.pem",
        "-inkey",
        "bob/key.pem",
        "-out",
        tmp_path / "signed",
        cwd=pki,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    inner = (tmp_path / "signed").read_bytes()
    assert b"smime-type=signed-data" in inner.split(b"\r\n\r\n", 1)[0]
    (tmp_path / "inner.der").write_bytes(inner.split(b"\r\n\r\n", 1)[1])
    proc = _openssl(
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        tmp_path / "inner.der",
        "-CAfile",
        "ca/cert.pem",
        "-out",
        tmp_path / "out",
        cwd=pki,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp_path / "out").read_bytes().endswith(TEXT)


def test_openssl_output_opened_by_us(pki: Path, tmp_path: Path) -> None:
    proc = _openssl(
        "cms",
        "-encrypt",
        "-binary",
        "-aes-128-gcm",
        "-in",
        "m.txt",
        "-recip",
        "bob/cert.pem",
        "-keyopt",
        "ecdh_kdf_md:sha256",
        "-outform",
        "DER",
        "-out",
        tmp_path / "e.der",
        cwd=pki,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    rep = tmp_path / "r.json"
    run = ok(
        "smime",
        "open",
        "--in",
        tmp_path / "e.der",
        "--identity",
        "bob",
        "--out",
        "-",
        "--report",
        rep,
        cwd=pki,
    )
    assert run.out == TEXT
    doc = report(rep)
    assert doc["confidentiality"] == "encrypted" and doc["authenticity"] == "unsigned"


def test_several_recipients_and_anchors(pki: Path, tmp_path: Path) -> None:
    wire, rep = tmp_path / "m.msg", tmp_path / "r.json"
    ok(
        "smime",
        "protect",
        "--in",
        "m.txt",
        "--out",
        wire,
        "--sign",
        "carol",
        "--encrypt-to",
        "bob/cert.pem",
        "--encrypt-to",
        "carol/cert.pem",
        cwd=pki,
    )
    for who in ("bob", "carol"):
        run = ok(
            "smime",
            "open",
            "--in",
            wire,
            "--identity",
            who,
            "--trust",
            "ca/cert.pem",
            "--trust",
            "carol/cert.pem",
            "--sender",
            "sip:carol@example.com",
            "--out",
            "-",
            "--report",
            rep,
            cwd=pki,
        )
        assert run.out == TEXT
        doc = report(rep)
        assert doc["authenticity"] == "verified", who
        assert len(doc["recipients"]) == 2
    failed(
        1,
        "smime",
        "open",
        "--in",
        wire,
        "--identity",
        "alice",
        "--passphrase-file",
        "pass.txt",
        cwd=pki,
    )
