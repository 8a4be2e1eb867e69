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
from typing import NoReturn

from messenger import __version__


class UsageError(Exception):
    """A problem with what the user asked for or gave us: exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (exit status 2), like every other failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


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
    # The first certificate of each file (an identity's cert.pem holds the leaf, then its
    # issuers, which are not recipients).
    recipients = [_certificates([path])[0] for path in args.encrypt_to]
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
        # What we were given cannot be used (a key that cannot sign or be encrypted to).
        raise UsageError(f"cannot protect: {exc}") from None
    _write_bytes(args.out, entity.decoded_body() if args.der else entity.to_bytes())
    return 0


def _trust_store(args: argparse.Namespace, now: datetime):
    from messenger.pki.trust import TrustStore
    from messenger.pki.verdict import certificate_uris

    store = TrustStore()
    for cert in _certificates(getattr(args, "trust", []) or []):
        store.add_anchor(cert)
    for path in getattr(args, "pin", []) or []:
        # The first certificate of the file is the one pinned (an identity's cert.pem
        # holds the leaf, then its issuers).
        cert = _certificates([path])[0]
        uris = certificate_uris(cert)
        if not uris:
            raise UsageError(
                f"{path}: a pinned certificate must name a SIP URI in its SubjectAltName"
            )
        for uri in uris:
            store.pin(uri, cert, now=now)
    for crl in _crls(getattr(args, "crl", []) or []):
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


# -- messenger inspect --------------------------------------------------------------------


def _render_inspection(doc: dict) -> str:
    from messenger.smime.inspect import render

    sip = doc["sip"]
    lines = [f"SIP {sip['kind']}: {sip['start_line']}"]
    lines += [f"  {name}: {value}" for name, value in sip["headers"]]
    body = doc["body"]
    if body is None:
        lines.append("Body: none")
    else:
        lines.append(f"Body: {body['size']} bytes of {body['content_type']}")
    if doc["structure"] is not None:
        lines += ["Layers:", render(doc["structure"], 1)]
    report = doc["report"]
    if report is not None:
        lines.append("Report:")
        for key in ("confidentiality", "authenticity", "sender", "sender_match", "revocation"):
            lines.append(f"  {key}: {report[key]}")
        lines.append(f"  layers: {' > '.join(report['layers']) or '(none)'}")
        lines.append(f"  algorithms: {', '.join(a['name'] for a in report['algorithms']) or '-'}")
        signer = report.get("signer")
        lines.append(f"  signer: {', '.join(signer['uris']) if signer else '-'}")
        if report["recipients"]:
            lines.append(f"  encrypted to: {'; '.join(report['recipients'])}")
        lines.append(f"  verdict: {report['reason']}")
    for i, cert in enumerate(doc["certificates"]):
        if "error" in cert:
            lines.append(f"Certificate [{i}]: {cert['error']}")
            continue
        lines.append(f"Certificate [{i}]: {cert['subject']}")
        lines.append(f"  uris: {', '.join(cert['uris']) or '-'}")
        lines.append(f"  sha256: {cert['sha256']}")
    cpim = doc["cpim"]
    if cpim is not None:
        lines.append("CPIM:")
        lines += [f"  {name}: {value}" for name, value in cpim["headers"]]
    imdn = doc["imdn"]
    if imdn is not None:
        lines.append(
            f"IMDN: {imdn['kind']} {imdn['status']} for message {imdn['message_id']} "
            f"from {imdn['recipient_uri'] or '-'}"
        )
    content = doc["content"]
    if content is not None:
        lines.append(f"Content: {content['size']} bytes of {content['content_type']}")
        if "text" in content:
            lines += [f"  {line}" for line in content["text"].splitlines()]
    lines += [f"Problem: {p}" for p in doc["problems"]]
    return "\n".join(lines)


def cmd_inspect(args: argparse.Namespace) -> int:
    from messenger.sip.errors import SipParseError

    at = _parse_time(args.at)
    data = _read_bytes(args.input)
    identity = _identity(args.identity, args.passphrase_file) if args.identity else None
    store = _trust_store(args, at)
    extra = _certificates(args.certfile)
    try:
        from messenger.ua.inspect import inspect_sip

        doc = inspect_sip(data, identity=identity, trust=store, at=at, extra_certificates=extra)
    except SipParseError as exc:
        where = "standard input" if args.input == "-" else args.input
        print(
            f"messenger: {where} is not a SIP message we can read: {exc}. "
            "Give one whole SIP request or response, as it was on the wire.",
            file=sys.stderr,
        )
        return 2
    print(json.dumps(doc, indent=2) if args.json else _render_inspection(doc))
    if doc["problems"]:
        print(f"messenger: {doc['problems'][0]}", file=sys.stderr)
        return 1
    return 0


# -- messenger demo ----------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo: a demo CA, Alice and Bob on loopback, both windows side by side."""
    from messenger.demo import run_demo
    from messenger.gui.app import display_problem

    if args.quit_after is not None and args.quit_after <= 0:
        raise UsageError("--quit-after needs a positive number of seconds")
    if problem := display_problem():
        raise UsageError(problem)
    return run_demo(
        Path(args.folder) if args.folder else None,
        screenshot=Path(args.screenshot) if args.screenshot else None,
        quit_after=args.quit_after,
    )


def cmd_gui(args: argparse.Namespace) -> int:
    """The window for the user's own profile (the first-run wizard when it is new)."""
    from messenger.gui.app import display_problem, main_profile

    if problem := display_problem():
        raise UsageError(problem)
    return main_profile(Path(args.profile) if getattr(args, "profile", None) else None)


# -- messenger agent / messenger send ------------------------------------------------------


def _listen_list(texts: Sequence[str]) -> list:
    from messenger.ua.agent import Listen

    try:
        return [Listen.parse(text) for text in texts]
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _contacts(texts: Sequence[str]) -> dict[str, str]:
    from messenger.sip.uri import SipUriError, parse_aor

    contacts = {}
    for text in texts:
        aor, sep, address = text.partition("=")
        if not sep or not address:
            raise UsageError(f"--contact {text!r}: write AOR=udp:HOST:PORT (or tcp:, tls:)")
        try:
            contacts[parse_aor(aor)] = address
        except SipUriError as exc:
            raise UsageError(f"--contact {text!r}: {aor!r} is not a SIP AoR: {exc}") from None
    return contacts


def _crls(paths: Sequence[str]) -> list:
    from cryptography import x509

    crls = []
    for path in paths:
        data = _read_bytes(path)
        try:
            crls.append(
                x509.load_pem_x509_crl(data)
                if data.lstrip().startswith(b"-----")
                else x509.load_der_x509_crl(data)
            )
        except ValueError as exc:
            raise UsageError(f"{path} is not a CRL: {exc}") from None
    return crls


def _default_profile(aor: str) -> Path:
    from messenger.ua.profile import data_dir

    return data_dir() / "profiles" / aor.replace(":", "_").replace("/", "_")


def _local_host_towards(host: str) -> str:
    """The local address the system would use to reach ``host`` (no packet is sent)."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def _tls_server_pair(args: argparse.Namespace) -> tuple:
    if not getattr(args, "tls_cert", None):
        return None, [], None
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    certs = _certificates([args.tls_cert])
    try:
        key = load_pem_private_key(_read_bytes(args.tls_key or args.tls_cert), None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--tls-key: no readable unencrypted PEM private key: {exc}") from None
    return certs[0], certs[1:], key


def _account(args: argparse.Namespace, aor: str, identity, listens: list, profile: Path):
    from messenger.ua.agent import AccountConfig

    password = None
    if getattr(args, "password_file", None):
        password = _passphrase(args.password_file).decode("utf-8")
    tls_cert, tls_chain, tls_key = _tls_server_pair(args)
    return AccountConfig(
        aor=aor,
        identity=identity,
        profile=profile,
        listens=listens,
        registrar=getattr(args, "registrar", None),
        proxy=args.proxy,
        username=getattr(args, "username", None),
        password=password,
        contacts=_contacts(getattr(args, "contact", []) or []),
        trust_anchors=_certificates(args.trust),
        crls=_crls(getattr(args, "crl", []) or []),
        tls_certificate=tls_cert,
        tls_chain=tls_chain,
        tls_key=tls_key,
        msrp_relay=_msrp_relay(args),
        downloads=Path(args.downloads) if getattr(args, "downloads", None) else None,
    )


def _msrp_relay(args: argparse.Namespace) -> str | None:
    """The --msrp-relay URI, checked (sessions go through this RFC 4976 relay)."""
    text = getattr(args, "msrp_relay", None)
    if not text:
        return None
    from messenger.ua.profile import check_msrp_relay

    try:
        return check_msrp_relay(text)
    except ValueError as exc:
        raise UsageError(f"--msrp-relay: {exc}") from None


def _print_json(doc: dict) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def cmd_agent(args: argparse.Namespace) -> int:
    """Run a headless agent until SIGINT/SIGTERM; one JSON object per event on stdout."""
    import asyncio
    import gc
    import signal

    from messenger.net.sip_transport import SipTransportError
    from messenger.pki.errors import PkiError
    from messenger.sip.uri import SipUriError, parse_aor
    from messenger.ua.agent import UserAgent
    from messenger.ua.store import StoreError

    try:
        aor = parse_aor(args.aor)
    except SipUriError as exc:
        raise UsageError(f"--aor {args.aor!r} is not a SIP address of record: {exc}") from None
    identity = _identity(args.identity, args.passphrase_file)
    profile = Path(args.profile) if args.profile else _default_profile(aor)
    config = _account(args, aor, identity, _listen_list(args.listen), profile)

    async def serve() -> int:
        try:
            agent = UserAgent(config)
        except (StoreError, PkiError) as exc:
            raise UsageError(f"profile {profile}: {exc}") from None

        loop = asyncio.get_running_loop()
        flush_pending = False

        def flush() -> None:
            nonlocal flush_pending
            flush_pending = False
            sys.stdout.flush()

        def show(event) -> None:
            # one line per event; one flush per turn of the loop, not one per line
            nonlocal flush_pending
            if event.kind == "sip" and not args.trace:
                return
            sys.stdout.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
            if not flush_pending:
                flush_pending = True
                loop.call_soon(flush)

        agent.subscribe(show)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await agent.start()
        except SipTransportError as exc:
            agent.store.close()
            raise UsageError(str(exc)) from None
        # what start-up allocated lives as long as the agent: keep it out of every
        # collection of reference cycles, whose pauses under load delay the answers
        gc.collect()
        gc.freeze()
        _print_json(
            {
                "event": "started",
                "aor": aor,
                "profile": str(profile),
                "addresses": {t: f"{h}:{p}" for t, (h, p) in agent.addresses.items()},
            }
        )
        await stop.wait()
        await agent.stop()
        _print_json({"event": "stopped", "aor": aor})
        return 0

    return asyncio.run(serve())


def cmd_send(args: argparse.Namespace) -> int:
    """Send one MESSAGE and print the final response as JSON; 0 on 2xx, 1 otherwise."""
    import asyncio
    import tempfile

    from messenger.net.sip_transport import SipTransportError
    from messenger.pki.errors import PkiError
    from messenger.sip.uri import SipUri, SipUriError, parse_aor
    from messenger.ua.agent import UserAgent
    from messenger.ua.store import StoreError

    identity = _identity(args.identity, args.passphrase_file)
    try:
        to = parse_aor(args.to)
        aor = parse_aor(args.from_aor) if args.from_aor else identity.aor
    except SipUriError as exc:
        raise UsageError(f"not a SIP address of record: {exc}") from None
    if args.proxy and args.target:
        raise UsageError("give --proxy or --target, not both")
    if args.target:
        transport = args.transport or ""
        args.contact = [f"{to}={transport + ':' if transport else ''}{args.target}"]
        target_host = args.target.rpartition(":")[0].strip("[]")
    else:
        args.contact = []
        try:
            target_host = SipUri.parse(args.proxy or to).host_address
        except SipUriError as exc:
            raise UsageError(f"cannot reach {args.proxy or to}: {exc}") from None
    listens = _listen_list(args.listen or [f"udp:{_local_host_towards(target_host)}:0"])
    encrypt_to = _certificates([args.encrypt_to]) if args.encrypt_to else []
    scratch = None
    if args.profile:
        profile = Path(args.profile)
    else:
        scratch = tempfile.TemporaryDirectory(prefix="messenger-send-")
        profile = Path(scratch.name)
    if args.file and not Path(args.file).is_file():
        raise UsageError(f"--file {args.file}: no such file (or not a regular file)")
    config = _account(args, aor, identity, listens, profile)
    config.registrar = None
    config.sign = not args.no_sign
    # one message and out: what an earlier run left pending waits for `messenger agent`
    config.resend_pending = False

    async def send() -> int:
        try:
            agent = UserAgent(config)
        except (StoreError, PkiError) as exc:
            raise UsageError(f"profile {profile}: {exc}") from None
        try:
            try:
                await agent.start()
            except SipTransportError as exc:
                raise UsageError(str(exc)) from None
            if encrypt_to:
                agent.set_peer_certificate(to, encrypt_to[0])
            if args.file:
                # a file always goes over an MSRP session, protected whole first
                result = await agent.send_file(to, args.file)
            else:
                result = await agent.send_text(
                    to,
                    args.text,
                    sign=not args.no_sign,
                    encrypt=bool(encrypt_to) or None,
                    transport=args.transport,
                    session=args.session,
                )
        finally:
            await agent.stop()
        _print_json({"to": to, **result.to_json(), **({"file": args.file} if args.file else {})})
        if not result.delivered:
            print(f"messenger: not delivered: {result.explanation}", file=sys.stderr)
        return 0 if result.delivered else 1

    try:
        return asyncio.run(send())
    finally:
        if scratch is not None:
            scratch.cleanup()


# -- the parser --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    p = sub.add_parser(
        "inspect", help="decode a SIP request or response, its protected body and report"
    )
    p.add_argument("input", metavar="FILE", help="the SIP message as on the wire (- for stdin)")
    p.add_argument("--identity", metavar="DIR", help="identity folder to decrypt with")
    p.add_argument("--passphrase-file", metavar="F")
    p.add_argument("--trust", action="append", default=[], metavar="CERT")
    p.add_argument("--pin", action="append", default=[], metavar="CERT")
    p.add_argument("--crl", action="append", default=[], metavar="F")
    p.add_argument("--certfile", action="append", default=[], metavar="CERT")
    p.add_argument("--at", metavar="ISO-8601-TIME", help="judge certificates at this time")
    p.add_argument("--json", action="store_true", help="print the layers as JSON")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser(
        "demo", help="Alice and Bob on loopback, both windows side by side (demo CA)"
    )
    p.add_argument("--folder", metavar="DIR", help="where to write the demo CA and profiles")
    p.add_argument(
        "--screenshot",
        metavar="DIR",
        help="exchange a first signed-and-encrypted message each way, save alice.png and "
        "bob.png into DIR, and exit (0 when both messages were verified)",
    )
    p.add_argument(
        "--quit-after",
        type=float,
        metavar="SECONDS",
        help="close the demo after SECONDS (with --screenshot: the longest it may take)",
    )
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("gui", help="open the window for your profile (the default command)")
    p.add_argument("--profile", metavar="DIR", help="profile folder (default: platform data dir)")
    p.set_defaults(func=cmd_gui)
    p = sub.add_parser("agent", help="run a headless user agent, one JSON line per event")
    p.add_argument("--aor", required=True, metavar="AOR")
    p.add_argument("--identity", required=True, metavar="DIR")
    p.add_argument("--passphrase-file", metavar="F")
    p.add_argument(
        "--listen",
        action="append",
        required=True,
        metavar="T:HOST:PORT",
        help="udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT (repeatable; port 0 = any)",
    )
    p.add_argument("--registrar", metavar="URI")
    p.add_argument("--proxy", metavar="URI", help="outbound proxy (default: direct mode)")
    p.add_argument("--username", metavar="NAME", help="digest user name (default: AoR user)")
    p.add_argument("--password-file", metavar="F", help="digest password")
    p.add_argument("--trust", action="append", default=[], metavar="CERT")
    p.add_argument("--crl", action="append", default=[], metavar="F")
    p.add_argument("--profile", metavar="DIR")
    p.add_argument(
        "--contact",
        action="append",
        default=[],
        metavar="AOR=T:HOST:PORT",
        help="direct mode: where a peer is reached (repeatable)",
    )
    p.add_argument("--tls-cert", metavar="PEM", help="certificate (and chain) a TLS listener shows")
    p.add_argument("--tls-key", metavar="PEM", help="its private key (default: in --tls-cert)")
    p.add_argument("--trace", action="store_true", help="also print every SIP message in/out")
    p.add_argument(
        "--downloads", metavar="DIR", help="accept files in sessions and write them here"
    )
    p.add_argument(
        "--msrp-relay", metavar="URI", help="route MSRP sessions through this RFC 4976 relay"
    )
    p.set_defaults(func=cmd_agent)
    p = sub.add_parser(
        "send", help="send one protected MESSAGE (or a file over a session), print the outcome"
    )
    p.add_argument("--identity", required=True, metavar="DIR")
    p.add_argument("--passphrase-file", metavar="F")
    p.add_argument("--to", required=True, metavar="AOR")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--text")
    what.add_argument("--file", metavar="PATH", help="send this file over an MSRP session")
    p.add_argument("--session", action="store_true", help="send the text over an MSRP session")
    p.add_argument(
        "--msrp-relay", metavar="URI", help="route the MSRP session through this RFC 4976 relay"
    )
    p.add_argument("--from", dest="from_aor", metavar="AOR", help="default: the identity's AoR")
    p.add_argument("--proxy", metavar="URI")
    p.add_argument("--target", metavar="HOST:PORT", help="send straight to this address")
    p.add_argument("--transport", choices=["udp", "tcp", "tls"])
    p.add_argument("--encrypt-to", metavar="CERT", help="the recipient's certificate")
    p.add_argument("--no-sign", action="store_true")
    p.add_argument("--trust", action="append", default=[], metavar="CERT")
    p.add_argument("--profile", metavar="DIR", help="default: a temporary profile")
    p.add_argument("--listen", action="append", metavar="T:HOST:PORT")
    p.add_argument("--username", metavar="NAME")
    p.add_argument("--password-file", metavar="F")
    p.set_defaults(func=cmd_send)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # no command: the window for the user's own profile
        args.func = cmd_gui
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"messenger: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
