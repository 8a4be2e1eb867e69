"""The interop harness proves itself, with no messenger agent in the loop.

SIPp registers a contact at Kamailio and a second SIPp answers the MESSAGE that a third
SIPp sends through Kamailio; transports mixed; digest auth; 404; baresip's 415; the
loopback capture that reads binary bodies SIPp's trace cannot hold.
"""

from __future__ import annotations

import base64
import secrets
import socket
import time
from pathlib import Path

import peers
import pytest

pytestmark = pytest.mark.timeout(90)

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "rfc8591"
DER_WITH_NULS = (
    # 64 bytes of a DER-like blob with NUL bytes, so nobody can treat it as a C string
    bytes.fromhex("3082003e06092a864886f70d010702a0") + bytes(range(0, 48))
)
SMIME_TYPE = "application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m"


def _user(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def _uas(sipp, transport="udp", count=1, timeout=15):
    return sipp("message_uas.xml", transport=transport, count=count, timeout=timeout).start()


def _register(sipp, kam, aor_user, contact, transport="udp", **kw):
    target = kam.tcp_addr if transport == "tcp" else kam.udp_addr
    res = sipp.register(
        target,
        aor=kam.aor(aor_user),
        contact=contact,
        domain=kam.domain,
        transport=transport,
        timeout=10,
        **kw,
    ).run()
    return res


# --------------------------------------------------------------------------- basics


def test_free_port_kinds():
    u, t, b = peers.free_port("udp"), peers.free_port("tcp"), peers.free_port("both")
    assert len({u, t, b}) == 3
    for kind in ("udp", "tcp"):
        s = socket.socket(
            socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
        )
        s.bind(("127.0.0.1", b))
        s.close()
    p = peers.free_port("both", span=2)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", p + 1))
    s.close()


def test_kamailio_answers_options_on_udp_and_accepts_tcp(kamailio):
    reply = peers.sip_options_probe("127.0.0.1", kamailio.udp_port, timeout=5)
    assert reply.startswith(b"SIP/2.0 200"), reply[:200]
    peers.tcp_connect_probe("127.0.0.1", kamailio.tcp_port, timeout=5)
    assert kamailio.running()
    assert "OPTIONS" in kamailio.log()


# --------------------------------------------------------------------------- registrar + proxy


@pytest.mark.parametrize(
    ("uac_transport", "uas_transport"),
    [("udp", "udp"), ("tcp", "tcp"), ("udp", "tcp"), ("tcp", "udp")],
)
def test_message_relayed_to_registered_contact(kamailio, sipp, uac_transport, uas_transport):
    user = _user("bob")
    uas = _uas(sipp, transport=uas_transport)
    contact = f"<sip:{user}@127.0.0.1:{uas.local_port};transport={uas_transport}>"
    reg = _register(sipp, kamailio, user, contact)
    assert reg.ok, reg.describe()

    text = f"Watson, come here ({uac_transport}->{uas_transport})".encode()
    target = kamailio.tcp_addr if uac_transport == "tcp" else kamailio.udp_addr
    uac = sipp.message(
        target,
        to_uri=kamailio.aor(user),
        from_uri=kamailio.aor("alice"),
        body=text,
        content_type="text/plain; charset=utf-8",
        transport=uac_transport,
        timeout=10,
    ).run()
    assert uac.ok and uac.successful == 1, uac.describe()
    got = uas.wait(timeout=10)
    assert got.ok, got.describe()

    [entry] = [t for t in got.traced if t.direction == "received"]
    assert entry.transport == uas_transport.upper(), "Kamailio relayed over the wrong transport"
    body = peers.extract_last_request_body(got.messages)
    assert base64.b64decode(body) == text
    msg = got.received()[-1]
    assert msg.header("Content-Transfer-Encoding") == "base64"
    assert msg.decoded_body() == text
    assert msg.header("Content-Type") == "text/plain; charset=utf-8"
    assert uac.last_response().status == 200


def test_bindings_query_and_unregister(kamailio, sipp):
    user = _user("dave")
    contact = f"<sip:{user}@127.0.0.1:9;transport=tcp>"
    assert _register(sipp, kamailio, user, contact).ok
    [binding] = kamailio.wait_registered(user, timeout=5)
    assert f"sip:{user}@127.0.0.1:9;transport=tcp" in binding
    kamailio.unregister(user)
    assert kamailio.bindings(user) == []


def test_unregistered_aor_gets_404(kamailio, sipp):
    res = sipp.message(
        kamailio.udp_addr,
        to_uri=kamailio.aor(_user("nobody")),
        from_uri=kamailio.aor("alice"),
        body=b"hello?",
        content_type="text/plain",
        expect=404,
        timeout=10,
    ).run()
    assert res.ok, res.describe()
    assert res.last_response().status == 404


def test_unexpected_status_fails_the_run_and_sends_no_bye(kamailio, sipp):
    res = sipp.message(
        kamailio.udp_addr,
        to_uri=kamailio.aor(_user("ghost")),
        from_uri=kamailio.aor("alice"),
        body=b"x",
        content_type="text/plain",
        expect=200,
        timeout=10,
    ).run()
    assert not res.ok and res.failed == 1, res.describe()
    assert res.last_response().status == 404
    assert [m.method for m in res.sent()] == ["MESSAGE"], res.describe()


def test_rate_scenario_counts_200s(kamailio, sipp):
    user = _user("rate")
    n = 10
    uas = _uas(sipp, count=n, timeout=20)
    reg = _register(sipp, kamailio, user, f"<sip:{user}@127.0.0.1:{uas.local_port}>")
    assert reg.ok, reg.describe()
    uac = sipp.message(
        kamailio.udp_addr,
        to_uri=kamailio.aor(user),
        from_uri=kamailio.aor("alice"),
        body=b"load",
        content_type="text/plain",
        expect="rate",
        count=n,
        rate=50,
        timeout=20,
    ).run()
    assert uac.ok, uac.describe()
    assert uac.successful == n and uac.failed == 0, uac.describe()
    assert uac.retransmissions == 0, uac.describe()
    got = uas.wait(timeout=10)
    assert got.ok and got.successful == n, got.describe()


# --------------------------------------------------------------------------- digest auth


def test_auth_register_without_credentials_gets_401(kamailio_auth, sipp):
    res = _register(sipp, kamailio_auth, "bob", "<sip:bob@127.0.0.1:9>", expect=401)
    assert res.ok, res.describe()
    challenge = res.last_response(401).header("WWW-Authenticate")
    assert challenge and challenge.startswith("Digest "), challenge
    assert 'realm="example.test"' in challenge
    assert "qop=" in challenge


def test_auth_register_with_password_then_message_needs_proxy_auth(kamailio_auth, sipp):
    uas = _uas(sipp)
    contact = f"<sip:bob@127.0.0.1:{uas.local_port}>"
    reg = _register(
        sipp, kamailio_auth, "bob", contact, user="bob", password=kamailio_auth.users["bob"]
    )
    assert reg.ok, reg.describe()
    assert [r.status for r in reg.responses()] == [401, 200]
    # the registrar query helper answers the challenge with its own digest code
    assert any(str(uas.local_port) in b for b in kamailio_auth.bindings("bob"))

    # a MESSAGE without credentials is challenged with 407 and not relayed
    res = sipp.message(
        kamailio_auth.udp_addr,
        to_uri=kamailio_auth.aor("bob"),
        from_uri=kamailio_auth.aor("alice"),
        body=b"hi",
        content_type="text/plain",
        expect=407,
        timeout=10,
    ).run()
    assert res.ok, res.describe()
    assert 'realm="example.test"' in (res.last_response(407).header("Proxy-Authenticate") or "")
    uas.stop()
    assert uas.wait().received() == []  # the MESSAGE never reached bob


def test_auth_wrong_password_is_challenged_again(kamailio_auth, sipp):
    reg = _register(
        sipp,
        kamailio_auth,
        "alice",
        "<sip:alice@127.0.0.1:9>",
        user="alice",
        password="not-the-password",
    )
    assert not reg.ok
    assert [r.status for r in reg.responses()] == [401, 401], reg.describe()


# --------------------------------------------------------------------------- malformed


def test_malformed_scenario_gets_400_from_kamailio(kamailio, sipp):
    """Kamailio's sanity check answers the short-body MESSAGE with 400, as our UA must."""
    res = sipp(
        "malformed_uac.xml",
        target=kamailio.udp_addr,
        keys={"to_uri": kamailio.aor("bob"), "from_uri": kamailio.aor("alice")},
        timeout=10,
    ).run()
    assert res.ok, res.describe() + "\n" + peers._tail(kamailio.log())
    sent = res.sent()[0]
    assert sent.content_length == 200 and len(sent.body) < 200


# --------------------------------------------------------------------------- binary bodies


def _raw_udp_message(dst: tuple[str, int], ruri: str, body: bytes, content_type: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    head = (
        f"MESSAGE {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{secrets.token_hex(6)};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:alice@example.test>;tag={secrets.token_hex(4)}\r\n"
        f"To: <{ruri}>\r\n"
        f"Call-ID: bin-{secrets.token_hex(6)}@127.0.0.1\r\n"
        "CSeq: 1 MESSAGE\r\n"
        f"Content-Type: {content_type}\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    s.settimeout(5)
    try:
        s.sendto(head + body, dst)
        reply = s.recv(65535)
    finally:
        s.close()
    assert reply.startswith(b"SIP/2.0 200"), reply[:300]


@pytest.mark.parametrize("uas_transport", ["udp", "tcp"])
def test_binary_body_exact_via_loopback_capture(kamailio, sipp, loopback_capture, uas_transport):
    body = DER_WITH_NULS
    vector = VECTORS / "fig1-signed-with-cert.der"
    if vector.is_file():
        body = vector.read_bytes()
    assert b"\x00" in body
    user = _user("bin")
    uas = _uas(sipp, transport=uas_transport)
    reg = _register(
        sipp, kamailio, user, f"<sip:{user}@127.0.0.1:{uas.local_port};transport={uas_transport}>"
    )
    assert reg.ok, reg.describe()

    with loopback_capture(uas.local_port) as cap:
        _raw_udp_message(kamailio.udp_addr, kamailio.aor(user), body, SMIME_TYPE)
        got = uas.wait(timeout=10)
        assert got.ok, got.describe()
        wire = cap.wait_for(
            lambda m: (
                m.message.method == "MESSAGE"
                and m.message.is_request
                and m.dst[1] == uas.local_port
            ),
            timeout=5,
        )
    assert wire.transport == uas_transport
    assert wire.body == body  # Kamailio relayed the binary body untouched; capture is exact
    # SIPp answered, but its trace stops at the first NUL: the helper says so
    with pytest.raises(peers.TraceTruncated):
        peers.extract_last_request_body(got.messages)
    with pytest.raises(peers.TraceTruncated):
        got.received()[-1].exact_body  # noqa: B018


def test_extract_last_request_body_on_a_synthetic_trace():
    body = "line one\r\nline two é".encode()
    msg = (
        b"MESSAGE sip:bob@example.test SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body
    resp = b"SIP/2.0 200 OK\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    trace = (
        b"----------------------------------------------- 2026-01-01 00:00:00.000000\n"
        b"UDP message received [%d] bytes :\n\n" % len(msg) + msg + b"\n\n"
        b"----------------------------------------------- 2026-01-01 00:00:00.000100\n"
        b"UDP message sent (%d bytes):\n\n" % len(resp) + resp + b"\n"
    )
    assert peers.extract_last_request_body(trace) == body
    assert peers.extract_last_request_body(trace.decode("latin-1")) == body
    with pytest.raises(LookupError):
        peers.extract_last_request_body(trace, method="INVITE")
    cut = trace.replace(b"line two", b"line\x00two")
    cut = cut[: cut.index(b"\x00")] + cut[cut.index(b"\n---") :]
    with pytest.raises(peers.TraceTruncated):
        peers.extract_last_request_body(cut)


# --------------------------------------------------------------------------- UAS answers


def test_uas_415_scenario_sends_accept(sipp):
    uas = sipp("message_uas_415.xml", keys={"accept": "text/plain, application/json"}).start()
    res = sipp.message(
        ("127.0.0.1", uas.local_port),
        to_uri="sip:bob@example.test",
        from_uri="sip:alice@example.test",
        body=DER_WITH_NULS,
        content_type=SMIME_TYPE,
        expect=415,
        timeout=10,
    ).run()
    assert res.ok, res.describe()
    assert res.last_response(415).header("Accept") == "text/plain, application/json"
    assert uas.wait(timeout=10).ok


def test_uas_493_then_200_scenario(sipp):
    certs = DER_WITH_NULS[::-1]
    uas = sipp(
        "message_uas_493_then_200.xml", count=2, keys={"certs_b64": peers.b64(certs)}
    ).start()
    first = sipp.message(
        ("127.0.0.1", uas.local_port),
        to_uri="sip:bob@example.test",
        from_uri="sip:alice@example.test",
        body=DER_WITH_NULS,
        content_type=SMIME_TYPE,
        expect=493,
        timeout=10,
    ).run()
    assert first.ok, first.describe()
    r493 = first.last_response(493)
    assert "smime-type=certs-only" in r493.header("Content-Type")
    assert r493.decoded_body() == certs
    again = sipp.message(
        ("127.0.0.1", uas.local_port),
        to_uri="sip:bob@example.test",
        from_uri="sip:alice@example.test",
        body=DER_WITH_NULS,
        content_type=SMIME_TYPE,
        expect=200,
        timeout=10,
    ).run()
    assert again.ok, again.describe()
    got = uas.wait(timeout=10)
    assert got.ok and got.successful == 2, got.describe()


# --------------------------------------------------------------------------- baresip


def test_baresip_answers_smime_message_with_415_and_accept(baresip, sipp):
    res = sipp.message(
        baresip.addr,
        to_uri=baresip.uri,
        from_uri="sip:alice@example.test",
        body=DER_WITH_NULS,
        content_type=SMIME_TYPE,
        expect=415,
        timeout=10,
    ).run()
    assert res.ok, res.describe() + "\n" + baresip.log()
    r415 = res.last_response(415)
    accept = r415.header("Accept")
    assert accept is not None, r415.raw
    assert "application/pkcs7-mime" not in accept
    assert "text/plain" in [a.strip().split(";")[0] for a in accept.split(",")]


def test_baresip_accepts_text_plain_with_200(baresip, sipp):
    res = sipp.message(
        baresip.addr,
        to_uri=baresip.uri,
        from_uri="sip:alice@example.test",
        body=b"plain hello",
        content_type="text/plain",
        expect=200,
        timeout=10,
    ).run()
    assert res.ok, res.describe() + "\n" + baresip.log()


# --------------------------------------------------------------------------- MSRP relay


def _read_msrp_frame(sock: socket.socket, deadline: float) -> bytes:
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete MSRP frame; got {buf!r}")
        sock.settimeout(left)
        chunk = sock.recv(65535)
        if not chunk:
            raise ConnectionError(f"closed; got {buf!r}")
        buf += chunk
        first = buf.split(b"\r\n", 1)[0].split()
        if len(first) >= 2 and (b"\r\n-------" + first[1]) in buf:
            return buf


def test_kamailio_msrp_relay_forwards_send(kamailio_msrp):
    """A SEND whose To-Path goes through the relay reaches the next hop, paths rewritten."""
    relay = f"msrp://127.0.0.1:{kamailio_msrp.msrp_port};tcp"
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    bport = srv.getsockname()[1]
    deadline = time.monotonic() + 10
    tid = secrets.token_hex(4)
    payload = b"\x30\x82\x00\x10binary\x00cms"
    frame = (
        (
            f"MSRP {tid} SEND\r\n"
            f"To-Path: msrp://127.0.0.1:{kamailio_msrp.msrp_port}/relaysess;tcp "
            f"msrp://127.0.0.1:{bport}/bobsess;tcp\r\n"
            "From-Path: msrp://127.0.0.1:1/alicesess;tcp\r\n"
            f"Message-ID: m-{tid}\r\n"
            f"Byte-Range: 1-{len(payload)}/{len(payload)}\r\n"
            "Content-Type: application/pkcs7-mime\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n-------{tid}$\r\n".encode()
    )
    a = socket.create_connection(("127.0.0.1", kamailio_msrp.msrp_port), timeout=5)
    try:
        a.sendall(frame)
        srv.settimeout(max(0.1, deadline - time.monotonic()))
        b, _ = srv.accept()
        with b:
            got = _read_msrp_frame(b, deadline)
    finally:
        a.close()
        srv.close()
    head, _, rest = got.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].endswith(b" SEND"), got[:300]
    assert b"To-Path: msrp://127.0.0.1:%d/bobsess;tcp" % bport in head, head
    assert relay.encode().replace(b";tcp", b"") in head  # the relay put itself in From-Path
    assert rest.startswith(payload), rest[:80]


def test_kamailio_msrp_relay_auth_then_send_back_over_the_clients_connection(kamailio_msrp):
    """RFC 4976: A AUTHs at the relay and gets Use-Path; B's SEND to that path reaches A
    over A's own connection."""
    port = kamailio_msrp.msrp_port
    deadline = time.monotonic() + 10
    a = socket.create_connection(("127.0.0.1", port), timeout=5)
    b = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        tid = secrets.token_hex(4)
        a.sendall(
            (
                f"MSRP {tid} AUTH\r\n"
                f"To-Path: msrp://127.0.0.1:{port};tcp\r\n"
                "From-Path: msrp://127.0.0.1:2/alicesess;tcp\r\n"
                f"-------{tid}$\r\n"
            ).encode()
        )
        reply = _read_msrp_frame(a, deadline)
        assert reply.startswith(f"MSRP {tid} 200".encode()), reply
        use_path = next(
            line.split(b":", 1)[1].strip()
            for line in reply.split(b"\r\n")
            if line.lower().startswith(b"use-path:")
        )
        assert use_path.startswith(b"msrp://127.0.0.1:%d/" % port), use_path

        tid2 = secrets.token_hex(4)
        payload = b"hello alice"
        b.sendall(
            (
                f"MSRP {tid2} SEND\r\n"
                f"To-Path: {use_path.decode()} msrp://127.0.0.1:2/alicesess;tcp\r\n"
                "From-Path: msrp://127.0.0.1:3/bobsess;tcp\r\n"
                f"Message-ID: m-{tid2}\r\n"
                f"Byte-Range: 1-{len(payload)}/{len(payload)}\r\n"
                "Content-Type: text/plain\r\n\r\n"
            ).encode()
            + payload
            + f"\r\n-------{tid2}$\r\n".encode()
        )
        got = _read_msrp_frame(a, deadline)
        assert got.startswith(f"MSRP {tid2} SEND".encode()), got
        assert b"To-Path: msrp://127.0.0.1:2/alicesess;tcp" in got
        assert payload in got
    finally:
        a.close()
        b.close()
