"""The single entry point `messenger`: parses the command line and wires the parts.

Exit status: 0 success; 1 the operation ran but its result is a failure (a signature
that does not hold, a message that could not be recovered, a final non-2xx response);
2 usage errors and unreadable input. Every failure prints one line of reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from messenger import __version__


class UsageError(Exception):
    """A problem with what the user asked for or gave us: exit status 2."""


def _now() -> datetime:
    return datetime.now(UTC)


def _read_bytes(path: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _write_bytes(path: str, data: bytes) -> None:
    try:
        if path == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            Path(path).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def _passphrase(path: str | None) -> bytes | None:
    if path is None:
        return None
    data = _read_bytes(path).rstrip(b"\r\n")
    if not data:
        raise UsageError(f"passphrase file {path} is empty")
    return data


def _parse_time(text: str | None) -> datetime:
    if text is None:
        return _now()
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at {text!r} is not an ISO-8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _certificates(paths: Sequence[str]) -> list:
    from messenger.pki.errors import PkiError
    from messenger.pki.identity import load_certificates

    certs = []
    for path in paths:
        try:
            found = load_certificates(_read_bytes(path))
        except (PkiError, ValueError) as exc:
            raise UsageError(f"{path} holds no readable certificate: {exc}") from None
        if not found:
            raise UsageError(f"{path} holds no certificate")
        certs.extend(found)
    return certs


def _identity(folder: str, passphrase_file: str | None):
    from messenger.pki.errors import PkiError
    from messenger.pki.identity import load_identity

    try:
        return load_identity(Path(folder), _passphrase(passphrase_file))
    except PkiError as exc:
        raise UsageError(f"identity {folder}: {exc}") from None


# -- messenger cert -----------------------------------------------------------------------


def cmd_cert_ca(args: argparse.Namespace) -> int:
    from messenger.pki.authority import create_authority, save_authority

    ca = create_authority(args.name, days=args.days, now=_now(), key_type=args.key)
    save_authority(ca, Path(args.out), _passphrase(args.passphrase_file))
    print(f"CA {args.name!r} written to {args.out} (cert.pem, key.pem, crl.pem)")
    return 0


def _authority(folder: str, passphrase_file: str | None):
    from messenger.pki.authority import load_authority
    from messenger.pki.errors import PkiError

    try:
        return load_authority(Path(folder), _passphrase(passphrase_file))
    except PkiError as exc:
        raise UsageError(f"CA {folder}: {exc}") from None


def cmd_cert_new(args: argparse.Namespace) -> int:
    from messenger.pki.identity import create_identity, save_identity
    from messenger.sip.uri import SipUriError, parse_aor

    try:
        aor = parse_aor(args.aor)
    except SipUriError as exc:
        raise UsageError(f"{args.aor!r} is not a SIP address of record: {exc}") from None
    authority = _authority(args.ca, args.ca_passphrase_file) if args.ca else None
    identity = create_identity(
        aor, key_type=args.key, authority=authority, days=args.days, now=_now()
    )
    passphrase = _passphrase(args.passphrase_file)
    save_identity(identity, Path(args.out), passphrase)
    if passphrase is None:
        print(
            f"warning: the private key in {args.out}/key.pem is not encrypted "
            "(owner-only permissions); use --passphrase-file to protect it",
            file=sys.stderr,
        )
    kind = (
        "issued by " + authority.certificate.subject.rfc4514_string()
        if authority
        else "self-signed"
    )
    print(f"{aor}: {kind} certificate and key written to {args.out}")
    return 0


def cmd_cert_revoke(args: argparse.Namespace) -> int:
    from messenger.pki.authority import save_authority

    authority = _authority(args.ca, args.ca_passphrase_file)
    for cert in _certificates([args.cert]):
        authority.revoke(cert, now=_now())
    save_authority(authority, Path(args.ca), _passphrase(args.ca_passphrase_file))
    print(f"revoked; {args.ca}/crl.pem updated")
    return 0


# -- messenger smime ----------------------------------------------------------------------


def cmd_smime_protect(args: argparse.Namespace) -> int:
    from messenger.smime.errors import SmimeError
    from messenger.smime.protect import protect

    if args.der and args.multipart:
        raise UsageError("--der gives one CMS structure; multipart/signed has two parts")
    if not args.sign and not args.encrypt_to:
        raise UsageError("nothing to do: give --sign DIR and/or --encrypt-to CERT")
    content = _read_bytes(args.input)
    signer = _identity(args.sign, args.passphrase_file) if args.sign else None
    recipients = _certificates(args.encrypt_to)
    try:
        entity = protect(
            content,
            content_type=args.content_type,
            signer=signer,
            recipients=recipients,
            include_certificates=not args.no_certs,
            multipart_signed=args.multipart,
            cipher="aes128-cbc" if args.legacy_cbc else None,
            signing_time=_now(),
        )
    except SmimeError as exc:
        print(f"messenger: cannot protect: {exc}", file=sys.stderr)
        return 1
    _write_bytes(args.out, entity.decoded_body() if args.der else entity.to_bytes())
    return 0


def _trust_store(args: argparse.Namespace, now: datetime):
    from cryptography import x509

    from messenger.pki.trust import TrustStore
    from messenger.pki.verdict import certificate_uris

    store = TrustStore()
    for cert in _certificates(getattr(args, "trust", []) or []):
        store.add_anchor(cert)
    for cert in _certificates(getattr(args, "pin", []) or []):
        uris = certificate_uris(cert)
        if not uris:
            raise UsageError("a pinned certificate must name a SIP URI in its SubjectAltName")
        for uri in uris:
            store.pin(uri, cert, now=now)
    for path in getattr(args, "crl", []) or []:
        data = _read_bytes(path)
        try:
            crl = (
                x509.load_pem_x509_crl(data)
                if data.lstrip().startswith(b"-----")
                else x509.load_der_x509_crl(data)
            )
        except ValueError as exc:
            raise UsageError(f"{path} is not a CRL: {exc}") from None
        store.add_crl(crl)
    return store


def cmd_smime_open(args: argparse.Namespace) -> int:
    from messenger.pki.verdict import Authenticity
    from messenger.smime.errors import SmimeError
    from messenger.smime.inspect import load_any
    from messenger.smime.protect import unprotect

    at = _parse_time(args.at)
    data = _read_bytes(args.input)
    identity = _identity(args.identity, args.passphrase_file) if args.identity else None
    store = _trust_store(args, at)
    extra = _certificates(args.certfile)
    try:
        entity = load_any(data)
        result = unprotect(
            entity,
            identity=identity,
            trust=store,
            sender=args.sender,
            at=at,
            extra_certificates=extra,
        )
    except SmimeError as exc:
        print(f"messenger: {args.input} is not a message we can read: {exc}", file=sys.stderr)
        return 2
    report = result.report
    doc = report.to_json()
    if args.report:
        _write_bytes(args.report, (json.dumps(doc, indent=2) + "\n").encode())
    content = result.content
    if content is not None and args.out:
        _write_bytes(args.out, content)
    if content is None:
        print(
            f"messenger: content not recovered: {report.confidentiality}: {report.reason}",
            file=sys.stderr,
        )
        return 1
    if report.authenticity in (Authenticity.BAD_SIGNATURE, Authenticity.WEAK_ALGORITHM):
        print(f"messenger: {report.authenticity}: {report.reason}", file=sys.stderr)
        return 1
    print(f"{report.confidentiality}, {report.authenticity}: {report.reason}", file=sys.stderr)
    return 0


def cmd_smime_inspect(args: argparse.Namespace) -> int:
    from messenger.smime.errors import SmimeError
    from messenger.smime.inspect import describe, load_any, render

    try:
        tree = describe(load_any(_read_bytes(args.input)))
    except SmimeError as exc:
        print(f"messenger: {args.input}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(tree, indent=2) if args.json else render(tree))
    return 0


# -- messenger demo ----------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """A walk through RFC 8591 in the terminal: CA, Alice and Bob, one protected message."""
    import tempfile

    from messenger.pki.authority import create_authority, save_authority
    from messenger.pki.identity import create_identity, save_identity
    from messenger.pki.trust import TrustStore
    from messenger.smime.protect import protect, unprotect

    now = _now()
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="messenger-demo-"))
    ca = create_authority("Messenger Demo CA", now=now)
    alice = create_identity("sip:alice@example.test", authority=ca, now=now)
    bob = create_identity("sip:bob@example.test", authority=ca, now=now)
    save_authority(ca, folder / "ca", None)
    save_identity(alice, folder / "alice", None)
    save_identity(bob, folder / "bob", None)
    print(f"Demo CA, sip:alice@example.test and sip:bob@example.test written to {folder}")
    text = args.text.encode()
    entity = protect(text, signer=alice, recipients=[bob.encryption_certificate], signing_time=now)
    wire = entity.to_bytes()
    print(f"\nAlice signs, then encrypts to Bob: {len(wire)} bytes on the wire")
    print(f"  Content-Type: {entity.header('Content-Type')}")
    bobs_trust = TrustStore()
    bobs_trust.add_anchor(ca.certificate)
    bobs_trust.add_crl(ca.crl(now=now))
    opened = unprotect(
        entity, identity=bob, trust=bobs_trust, sender="sip:alice@example.test", at=_now()
    )
    report = opened.report
    print("\nBob opens it:")
    print(f"  text            {(opened.content or b'').decode(errors='replace').strip()!r}")
    print(f"  confidentiality {report.confidentiality}")
    print(f"  authenticity    {report.authenticity}")
    print(f"  layers          {' > '.join(report.layers)}")
    print(f"  algorithms      {', '.join(a.name for a in report.algorithms)}")
    print(f"  signer          {', '.join(report.signer.uris) if report.signer else '-'}")
    print(f"  verdict         {report.reason}")
    if args.report:
        print(json.dumps(report.to_json(), indent=2))
    return 0 if report.is_green else 1


# -- the parser --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="messenger",
        description="End-to-end protected SIP messaging (RFC 8591 S/MIME over SIP and MSRP).",
    )
    parser.add_argument("--version", action="version", version=f"messenger {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    cert = sub.add_parser("cert", help="identities, a demo CA, revocation")
    cert_sub = cert.add_subparsers(dest="cert_command", metavar="ACTION", required=True)
    p = cert_sub.add_parser("ca", help="create a certificate authority folder")
    p.add_argument("--name", required=True)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--days", type=int, default=3650)
    p.add_argument("--key", choices=["p256", "rsa2048", "rsa3072"], default="p256")
    p.add_argument("--passphrase-file", metavar="F")
    p.set_defaults(func=cmd_cert_ca)
    p = cert_sub.add_parser("new", help="create a key and certificate for a SIP AoR")
    p.add_argument("aor", metavar="AOR")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--ca", metavar="DIR", help="issue from this CA (self-signed without)")
    p.add_argument("--ca-passphrase-file", metavar="F")
    p.add_argument("--key", choices=["p256", "ed25519", "rsa2048", "rsa3072"], default="p256")
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--passphrase-file", metavar="F")
    p.set_defaults(func=cmd_cert_new)
    p = cert_sub.add_parser("revoke", help="revoke a certificate and publish the CRL")
    p.add_argument("cert", metavar="CERT")
    p.add_argument("--ca", required=True, metavar="DIR")
    p.add_argument("--ca-passphrase-file", metavar="F")
    p.set_defaults(func=cmd_cert_revoke)

    smime = sub.add_parser("smime", help="protect and open S/MIME messages")
    smime_sub = smime.add_subparsers(dest="smime_command", metavar="ACTION", required=True)
    p = smime_sub.add_parser("protect", help="sign and/or encrypt content")
    p.add_argument("--in", dest="input", required=True, metavar="F")
    p.add_argument("--out", required=True, metavar="F")
    p.add_argument("--sign", metavar="DIR", help="identity folder to sign with")
    p.add_argument("--passphrase-file", metavar="F")
    p.add_argument("--encrypt-to", action="append", default=[], metavar="CERT")
    p.add_argument("--no-certs", action="store_true", help="leave the signer certificate out")
    p.add_argument("--multipart", action="store_true", help="multipart/signed, detached")
    p.add_argument("--legacy-cbc", action="store_true", help="EnvelopedData with AES-128-CBC")
    p.add_argument("--content-type", default="text/plain", metavar="TYPE")
    p.add_argument("--der", action="store_true", help="write the bare CMS structure in DER")
    p.set_defaults(func=cmd_smime_protect)
    p = smime_sub.add_parser("open", help="decrypt, verify and judge a message")
    p.add_argument("--in", dest="input", required=True, metavar="F")
    p.add_argument("--out", metavar="F")
    p.add_argument("--identity", metavar="DIR")
    p.add_argument("--passphrase-file", metavar="F")
    p.add_argument("--trust", action="append", default=[], metavar="CERT")
    p.add_argument("--pin", action="append", default=[], metavar="CERT")
    p.add_argument("--crl", action="append", default=[], metavar="F")
    p.add_argument(
        "--certfile",
        action="append",
        default=[],
        metavar="CERT",
        help="certificates known out of band (signatures without certificates)",
    )
    p.add_argument("--sender", metavar="AOR")
    p.add_argument("--at", metavar="ISO-8601-TIME")
    p.add_argument("--report", metavar="F", help="write the security report as JSON (- for stdout)")
    p.set_defaults(func=cmd_smime_open)
    p = smime_sub.add_parser("inspect", help="print the CMS/MIME structure")
    p.add_argument("--in", dest="input", required=True, metavar="F")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_smime_inspect)
    p = sub.add_parser("demo", help="walk through a signed and encrypted exchange")
    p.add_argument("--folder", metavar="DIR", help="where to write the demo identities")
    p.add_argument("--text", default="Watson, come here - I want to see you.")
    p.add_argument("--report", action="store_true", help="print the whole report as JSON")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"messenger: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
