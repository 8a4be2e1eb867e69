"""Fixtures for the CMS tests: a small PKI made with cryptography's x509 builders
(a P-256 CA; P-256, RSA-3072, RSA-1024, Ed25519 and X25519 leaves), written as PEM for
OpenSSL, and a helper that runs `openssl cms` with a timeout."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
SIGNING_TIME = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
VECTORS = SHARED / "vectors" / "rfc8591"


@dataclass
class Identity:
    name: str
    key: Any
    cert: x509.Certificate
    cert_path: Path = field(default=Path())
    key_path: Path = field(default=Path())

    @property
    def pair(self) -> tuple[Any, x509.Certificate]:
        return (self.key, self.cert)


def _name(cn: str, org: str = "example.org") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _issue(
    subject: x509.Name,
    public_key: Any,
    issuer: x509.Name,
    issuer_key: Any,
    *,
    ca: bool = False,
    usage: str = "sign",
    uri: str | None = None,
) -> x509.Certificate:
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=usage in ("sign", "both"),
                content_commitment=False,
                key_encipherment=usage in ("rsa", "both-rsa"),
                data_encipherment=False,
                key_agreement=usage in ("agree", "both"),
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        b = b.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        if uri:
            b = b.add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False
            )
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return b.sign(issuer_key, algorithm)


def _write(ident: Identity, directory: Path) -> Identity:
    ident.cert_path = directory / f"{ident.name}.pem"
    ident.key_path = directory / f"{ident.name}.key"
    ident.cert_path.write_bytes(ident.cert.public_bytes(serialization.Encoding.PEM))
    ident.key_path.write_bytes(
        ident.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ident


@dataclass
class Pki:
    directory: Path
    ca: Identity
    ec: Identity  # P-256, sign and key agreement (Bob)
    ec2: Identity  # another P-256 leaf (Carol)
    rsa: Identity  # RSA-3072, sign and key encipherment
    rsa_weak: Identity  # RSA-1024 (below the policy minimum)
    ed: Identity  # Ed25519 signing key
    x: Identity  # X25519 key agreement only
    ed_ca: Identity  # Ed25519 CA that issued `x2`
    x2: Identity  # X25519 leaf under the Ed25519 CA

    @property
    def ca_path(self) -> Path:
        return self.ca.cert_path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Test CA", "example.net")
    ca_cert = _issue(ca_name, ca_key.public_key(), ca_name, ca_key, ca=True)
    ca = _write(Identity("ca", ca_key, ca_cert), d)

    def leaf(name: str, key: Any, usage: str, uri: str) -> Identity:
        cert = _issue(_name(name), key.public_key(), ca_name, ca_key, usage=usage, uri=uri)
        return _write(Identity(name.lower(), key, cert), d)

    ec_id = leaf("Bob", ec.generate_private_key(ec.SECP256R1()), "both", "sip:bob@example.org")
    ec2_id = leaf("Carol", ec.generate_private_key(ec.SECP256R1()), "both", "sip:carol@example.org")
    rsa_id = leaf("Rita", rsa.generate_private_key(65537, 3072), "both-rsa", "sip:rita@example.org")
    weak_id = leaf(
        "Walt", rsa.generate_private_key(65537, 1024), "both-rsa", "sip:walt@example.org"
    )
    ed_id = leaf("Eddie", ed25519.Ed25519PrivateKey.generate(), "sign", "sip:eddie@example.org")
    x_id = leaf("Xena", x25519.X25519PrivateKey.generate(), "agree", "sip:xena@example.org")
    ed_ca_key = ed25519.Ed25519PrivateKey.generate()
    ed_ca_name = _name("Ed CA", "example.net")
    ed_ca = _write(
        Identity(
            "edca",
            ed_ca_key,
            _issue(ed_ca_name, ed_ca_key.public_key(), ed_ca_name, ed_ca_key, ca=True),
        ),
        d,
    )
    x2_key = x25519.X25519PrivateKey.generate()
    x2 = _write(
        Identity(
            "xavier",
            x2_key,
            _issue(
                _name("Xavier"),
                x2_key.public_key(),
                ed_ca_name,
                ed_ca_key,
                usage="agree",
                uri="sip:xavier@example.org",
            ),
        ),
        d,
    )
    return Pki(d, ca, ec_id, ec2_id, rsa_id, weak_id, ed_id, x_id, ed_ca, x2)


class OpenSSL:
    """Runs `openssl` with a timeout; `run` returns the CompletedProcess."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.version = subprocess.run(
            [binary, "version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
        self._n = 0

    def path(self, suffix: str) -> Path:
        self._n += 1
        return self.directory / f"f{self._n}{suffix}"

    def write(self, data: bytes, suffix: str = ".bin") -> Path:
        p = self.path(suffix)
        p.write_bytes(data)
        return p

    def run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run([self.binary, *map(str, args)], capture_output=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"openssl {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                + proc.stderr.decode(errors="replace")
            )
        return proc

    def cms_decrypt(self, ident: Identity, der: bytes) -> tuple[int, bytes, str]:
        """`openssl cms -decrypt` of a DER EnvelopedData for `ident`: (exit code, plaintext,
        stderr)."""
        out = self.path(".out")
        proc = self.run(
            "cms",
            "-decrypt",
            "-binary",
            "-inform",
            "DER",
            "-in",
            self.write(der, ".der"),
            "-recip",
            ident.cert_path,
            "-inkey",
            ident.key_path,
            "-out",
            out,
            check=False,
        )
        return proc.returncode, out.read_bytes() if out.exists() else b"", proc.stderr.decode()

    def cms_verify(
        self,
        ca: Path,
        der: bytes,
        *,
        content: bytes | None = None,
        signer: Identity | None = None,
    ) -> tuple[int, bytes, str]:
        """`openssl cms -verify` of a DER SignedData against the CA certificate `ca`:
        (exit code, signed content, stderr). `content` is the content of a detached
        signature; `signer` gives the signer certificate apart from the message."""
        out = self.path(".out")
        args: list[str | Path] = ["cms", "-verify", "-binary", "-inform", "DER"]
        args += ["-in", self.write(der, ".der"), "-CAfile", ca, "-purpose", "any", "-out", out]
        if content is not None:
            args += ["-content", self.write(content, ".txt")]
        if signer is not None:
            args += ["-certfile", signer.cert_path]
        proc = self.run(*args, check=False)
        data = out.read_bytes() if out.exists() else b""
        return proc.returncode, data, proc.stderr.decode(errors="replace")

    def dump(self, der_path: Path) -> str:
        """`openssl cms -cmsout -print` of a DER file (for failure messages)."""
        proc = self.run("cms", "-cmsout", "-print", "-inform", "DER", "-in", der_path, check=False)
        return proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")


def _memory_peak(fn: Callable[[], Any], unit: int) -> tuple[Any, float]:
    """fn's result and its peak of newly traced memory, in units of `unit` bytes."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, peak / unit


@pytest.fixture
def memory_peak() -> Callable[[Callable[[], Any], int], tuple[Any, float]]:
    """Measures a call: `memory_peak(fn, unit)` is fn's result and its peak of newly traced
    memory in units of `unit` bytes (a message size)."""
    return _memory_peak


@pytest.fixture(scope="session")
def openssl(tmp_path_factory: pytest.TempPathFactory) -> OpenSSL:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.skip("openssl CLI not installed")
    return OpenSSL(binary, tmp_path_factory.mktemp("openssl"))


@pytest.fixture(scope="session")
def vectors() -> Path:
    if not VECTORS.is_dir():
        pytest.skip("shared/vectors not found beside the checkout")
    return VECTORS


#: The RFC 8591 inner entity (68 bytes).
MESSAGE = b"Content-Type: text/plain\r\n\r\nWatson, come here - I want to see you.\r\n"


@pytest.fixture
def message() -> bytes:
    return MESSAGE


@pytest.fixture
def signing_time() -> dt.datetime:
    return SIGNING_TIME
