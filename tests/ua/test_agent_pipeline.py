"""The pager-mode pipelines of the agent: refusals (415, 493, 400, replay, stale), the size
rule, TCP and TLS, IMDN, and the store-before-200 promise."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

from messenger.pki.identity import create_identity
from messenger.sip.ids import new_branch
from messenger.sip.message import parse_message
from messenger.smime.mime import MimeEntity
from messenger.smime.protect import protect, unprotect
from messenger.ua.agent import Listen

BOB = "sip:bob@example.test"
ALICE = "sip:alice@example.test"


def raw_message(
    body: bytes,
    content_type: str,
    *,
    sender: str = ALICE,
    to: str = BOB,
    branch: str | None = None,
    extra: str = "",
) -> bytes:
    head = (
        f"MESSAGE {to} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch={branch or new_branch()};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <{sender}>;tag=t1\r\n"
        f"To: <{to}>\r\n"
        f"Call-ID: {new_branch()}@test\r\n"
        "CSeq: 1 MESSAGE\r\n"
        f"Content-Type: {content_type}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def test_unsupported_body_type_gets_415_with_accept(agents, run, udp):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            answer = parse_message(
                await udp(bob.addresses["udp"], raw_message(b"{}", "application/json"))
            )
            assert answer.status == 415
            accept = ", ".join(answer.headers.get_all("Accept"))
            for media in (
                "application/pkcs7-mime",
                "application/pkcs7-signature",
                "multipart/signed",
                "message/cpim",
                "text/plain",
                "message/imdn+xml",
            ):
                assert media in accept
            refused = await bob.recorder.wait("refused")
            assert refused.status == 415 and "application/json" in refused.reason

    run(body())


def test_malformed_request_gets_400(agents, run, udp):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            bad = raw_message(b"hi", "text/plain").replace(b"CSeq: 1 MESSAGE", b"CSeq: one MESSAGE")
            answer = await udp(bob.addresses["udp"], bad)
            assert answer.startswith(b"SIP/2.0 400 ")
            # a protected body that is not CMS at all is a 400 too
            junk = raw_message(b"\x30\x03garbage", "application/pkcs7-mime; smime-type=signed-data")
            answer = parse_message(await udp(bob.addresses["udp"], junk))
            assert answer.status == 400
            assert bob.store.count(ALICE) == 0

    run(body())


def test_encrypted_to_another_key_gets_493_with_our_certificate(agents, run, udp, pki):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            stranger = create_identity(BOB, authority=pki.ca, now=pki.now)
            entity = protect(
                b"secret",
                signer=pki.alice,
                recipients=[stranger.certificate],
                signing_time=pki.now,
            )
            request = raw_message(
                entity.body,
                entity.header("Content-Type"),
                extra="Content-Transfer-Encoding: binary\r\n",
            )
            answer = parse_message(await udp(bob.addresses["udp"], request))
            assert answer.status == 493
            assert "certs-only" in answer.headers.get("Content-Type")
            opened = unprotect(
                MimeEntity.build(answer.headers.get("Content-Type"), answer.body),
                at=pki.now,
            )
            assert opened.report.layers == ("certs-only",)
            assert (
                pki.bob.certificate.public_bytes(
                    __import__("cryptography").hazmat.primitives.serialization.Encoding.DER
                )
                in opened.report.certificates
            )

    run(body())


async def _send_to_a_stale_certificate(net, pki, text: str):
    """Alice knows an old certificate of Bob's and sends him ``text``: his 493 makes her
    send again. Returns (alice, bob, the send result)."""
    bob = await net.add("bob")
    alice = await net.add("alice")
    net.link(alice, bob)
    old_bob = create_identity(BOB, authority=pki.ca, now=pki.now)
    alice.set_peer_certificate(BOB, old_bob.certificate)
    return alice, bob, await alice.send_text(BOB, text)


def test_493_makes_the_sender_resend_once_encrypted_to_the_new_certificate(agents, run, pki):
    async def body():
        async with agents() as net:
            alice, bob, result = await _send_to_a_stale_certificate(
                net, pki, "try again with my new key"
            )
            assert result.delivered and result.encrypted
            statuses = [e.status for e in alice.recorder.of("response")]
            assert statuses == [493, 200]
            assert alice.peer_certificate(BOB) == pki.bob.certificate
            got = await bob.recorder.wait("message")
            assert got.text == "try again with my new key"
            assert got.report["confidentiality"] == "encrypted"

    run(body())


def test_a_second_493_is_not_answered_with_another_resend(agents, run, pki):
    async def body():
        async with agents() as net:
            # bob answers with a certificate that is not his key: alice re-sends once only
            decoy = create_identity(BOB, authority=pki.ca, now=pki.now)
            bob = await net.add("bob")
            bob.identity = pki.bob
            from messenger.ua import pipeline

            original = pipeline.certs_only_body
            pipeline.certs_only_body = lambda identity: original(decoy)
            try:
                alice = await net.add("alice")
                net.link(alice, bob)
                alice.set_peer_certificate(BOB, create_identity(BOB, now=pki.now).certificate)
                result = await alice.send_text(BOB, "hello")
            finally:
                pipeline.certs_only_body = original
            assert not result.delivered and result.status == 493
            assert [e.status for e in alice.recorder.of("response")] == [493, 493]
            assert "decrypt" in result.explanation

    run(body())


def test_415_from_the_peer_is_recorded_and_explained_never_downgraded(agents, run):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")

            def plain_only(event):
                bob.respond(event, 415, headers=[("Accept", "text/plain")])

            bob.register_method("MESSAGE", plain_only)
            alice = await net.add("alice")
            net.link(alice, bob)
            result = await alice.send_text(BOB, "protected or nothing")
            assert result.status == 415 and not result.delivered
            assert "S/MIME" in result.explanation and "text/plain" in result.explanation
            assert alice.store.capability(BOB, "smime") is False
            learned = alice.recorder.of("capability")
            assert learned and learned[0].value is False
            notices = alice.recorder.of("notice")
            assert any("415" in n.text for n in notices)
            assert alice.store.message(result.message_id).delivery == "refused"
            # exactly one request went out: no silent unprotected retry
            outgoing = [
                e
                for e in alice.recorder.of("sip")
                if e.direction == "out" and "MESSAGE" in e.summary
            ]
            assert len(outgoing) == 1

    run(body())


def _outgoing_message(agent) -> bytes:
    for event in agent.recorder.of("sip"):
        if event.direction == "out" and event.summary.startswith("MESSAGE"):
            return event.raw
    raise AssertionError("no MESSAGE went out")


def test_replayed_message_is_refused_and_reported(agents, run, udp):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            alice = await net.add("alice")
            net.link(alice, bob)
            assert (await alice.send_text(BOB, "only once")).delivered
            wire = _outgoing_message(alice)
            replay = re.sub(rb"branch=[^;\r\n]+", b"branch=" + new_branch().encode(), wire)
            answer = parse_message(await udp(bob.addresses["udp"], replay))
            assert answer.status == 403
            refused = await bob.recorder.wait("refused")
            assert refused.report["replay"] == "duplicate"
            assert bob.store.count(ALICE) == 1

    run(body())


def test_stale_message_is_refused(agents, run, pki):
    async def body():
        async with agents() as net:
            bob = await net.add("bob", replay_window=timedelta(minutes=5))
            late = pki.now - timedelta(minutes=30)
            alice = await net.add("alice", clock=lambda: late)
            net.link(alice, bob)
            result = await alice.send_text(BOB, "from the past")
            assert result.status == 403 and not result.delivered
            refused = await bob.recorder.wait("refused")
            assert refused.report["replay"] == "stale"
            assert "stale" in refused.reason
            assert bob.store.count(ALICE) == 0

    run(body())


def test_size_rule_refuses_udp_only_routes_with_the_size(agents, run):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            # a peer without sessions: the message cannot go over MSRP either
            bob.register_method("INVITE", lambda event: bob.respond(event, 501))
            alice = await net.add("alice")
            net.link(alice, bob, "udp")
            result = await alice.send_text(BOB, "x" * 1500)
            assert not result.delivered
            size = re.search(r"(\d+) bytes, more than the 1300", result.explanation)
            assert size and int(size.group(1)) > 1300
            # no MESSAGE went out (only the INVITE that was refused)
            assert not [
                e
                for e in alice.recorder.of("sip")
                if e.direction == "out" and e.summary.startswith("MESSAGE")
            ]
            assert alice.store.message(result.message_id).delivery == "failed"

    run(body())


def test_large_message_goes_over_tcp_and_small_over_udp(agents, run):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            alice = await net.add("alice")
            net.link(alice, bob)
            net.link(bob, alice)
            # once bob has answered encrypted, alice leaves her certificate out: small again
            await alice.send_text(BOB, "hello")
            await bob.send_text(ALICE, "hello back")
            alice.recorder.events.clear()
            # signed only and without the certificate, a short message fits in UDP; signed
            # and encrypted it is larger than 1300 bytes whatever the text
            small = await alice.send_text(BOB, "small", encrypt=False)
            large = await alice.send_text(BOB, "large " * 400)
            assert small.delivered and large.delivered
            sent = [
                (e.transport, len(e.raw))
                for e in alice.recorder.of("sip")
                if e.direction == "out" and e.summary.startswith("MESSAGE")
            ]
            assert sent[0][0] == "udp" and sent[0][1] <= 1300
            assert sent[1][0] == "tcp" and sent[1][1] > 1300

    run(body())


def test_tls_with_the_configured_trust(agents, run, pki, tls_server):
    cert, key = tls_server

    async def body():
        async with agents() as net:
            bob = await net.add("bob", listens=("tls",), tls_certificate=cert, tls_key=key)
            alice = await net.add("alice", listens=("udp",), tls_trust=[pki.ca.certificate])
            net.link(alice, bob, "tls")
            result = await alice.send_text(BOB, "over TLS")
            assert result.delivered
            got = await bob.recorder.wait("message")
            assert got.text == "over TLS"
            assert {e.transport for e in alice.recorder.of("sip")} == {"tls"}

    run(body())


def test_tls_server_not_in_the_trust_is_refused(agents, run, tls_server):
    cert, key = tls_server

    async def body():
        async with agents() as net:
            bob = await net.add("bob", listens=("tls",), tls_certificate=cert, tls_key=key)
            other_ca = create_identity("sip:ca@other.test", now=cert.not_valid_before_utc)
            alice = await net.add("alice", listens=("udp",), tls_trust=[other_ca.certificate])
            net.link(alice, bob, "tls")
            result = await alice.send_text(BOB, "not to an unknown server")
            assert not result.delivered
            assert "not trusted" in result.explanation
            assert not bob.recorder.of("message")

    run(body())


def test_message_is_committed_before_the_200(agents, run):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            alice = await net.add("alice")
            net.link(alice, bob)
            seen: list[bool] = []

            def at_200(event):
                if (
                    event.kind == "sip"
                    and event.direction == "out"
                    and event.summary.startswith("SIP/2.0 200")
                ):
                    seen.append(bob.store.count(ALICE) == 1)

            bob.subscribe(at_200)
            result = await alice.send_text(BOB, "keep me")
            assert result.delivered
            assert seen == [True]
            # and the store is another connection's truth too: reopen and read it
            from messenger.ua.store import MessageStore

            other = MessageStore.open(bob.config.profile)
            try:
                assert other.message(result.message_id).text == "keep me"
            finally:
                other.close()

    run(body())


def test_delivery_and_display_notifications(agents, run):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            alice = await net.add("alice")
            net.link(alice, bob)
            net.link(bob, alice)
            alice.decide_trust(BOB, bob.identity.certificate, "trust")
            result = await alice.send_text(BOB, "tell me when you read it")
            assert result.delivered and result.encrypted
            delivered = await alice.recorder.wait(
                "delivery", lambda e: "notification" in e.reason and e.state == "delivered"
            )
            assert delivered.message_id == result.message_id
            # the notification itself was signed and encrypted, like the original
            imdn_in = [
                e.raw
                for e in alice.recorder.of("sip")
                if e.direction == "in" and e.summary.startswith("MESSAGE")
            ]
            assert imdn_in and b"authEnveloped-data" in imdn_in[0]
            await bob.mark_displayed(ALICE, [result.message_id])
            displayed = await alice.recorder.wait("delivery", lambda e: e.state == "displayed")
            assert displayed.message_id == result.message_id
            assert alice.store.message(result.message_id).delivery == "displayed"
            # notifications are not messages of the conversation
            assert alice.store.count(BOB) == 1

    run(body())


def test_options_is_answered_with_accept(agents, run, udp):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            request = raw_message(b"", "text/plain").replace(b"MESSAGE", b"OPTIONS")
            answer = parse_message(await udp(bob.addresses["udp"], request))
            assert answer.status == 200
            assert "application/pkcs7-mime" in answer.headers.get_all("Accept")

    run(body())


def test_unsigned_plain_text_is_taken_and_reported_unsigned(agents, run, udp):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            answer = parse_message(
                await udp(bob.addresses["udp"], raw_message(b"plain hello", "text/plain"))
            )
            assert answer.status == 200
            got = await bob.recorder.wait("message")
            assert got.text == "plain hello"
            assert got.report["authenticity"] == "unsigned"
            assert got.report["green"] is False
            await asyncio.sleep(0)

    run(body())


def test_a_changed_key_is_reported_and_not_used_until_the_user_decides(agents, run, pki):
    async def body():
        async with agents() as net:
            new_bob = create_identity(BOB, authority=pki.ca, now=pki.now)
            bob = await net.add("bob", identity=new_bob)
            alice = await net.add("alice")
            net.link(bob, alice)
            alice.decide_trust(BOB, pki.bob.certificate, "trust")
            result = await bob.send_text(ALICE, "new phone, new key", encrypt=False)
            assert result.delivered
            got = await alice.recorder.wait("message")
            assert got.report["authenticity"] == "key-changed"
            learned = await alice.recorder.wait("certificate")
            assert learned.changed is True
            # still encrypting to the pinned certificate
            assert alice.peer_certificate(BOB) == pki.bob.certificate
            alice.decide_trust(BOB, new_bob.certificate, "trust")
            assert alice.peer_certificate(BOB) == new_bob.certificate
            decisions = alice.store.events(kind="trust-decision")
            assert [d["data"]["decision"] for d in decisions] == ["trust", "trust"]

    run(body())


def test_encrypt_without_a_known_certificate_sends_signed_and_says_why(agents, run):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            alice = await net.add("alice")
            net.link(alice, bob)
            result = await alice.send_text(BOB, "please encrypt", encrypt=True)
            assert result.delivered and result.signed and not result.encrypted
            assert "not encrypted" in result.explanation
            assert "certificate" in result.explanation

    run(body())


def test_unsigned_message_from_a_contact_who_signs_is_flagged(agents, run, udp):
    async def body():
        async with agents() as net:
            bob = await net.add("bob", require_signatures=True)
            alice = await net.add("alice")
            net.link(alice, bob)
            assert (await alice.send_text(BOB, "signed")).delivered
            answer = await udp(bob.addresses["udp"], raw_message(b"unsigned!", "text/plain"))
            assert answer.startswith(b"SIP/2.0 200")
            notice = await bob.recorder.wait("notice", lambda e: e.level == "warning")
            assert "unsigned" in notice.text and notice.peer == ALICE

    run(body())


def test_pending_messages_are_sent_again(agents, run, pki):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            alice = await net.add("alice")
            net.link(alice, bob)
            # a message stored before a crash, never answered
            alice.store.add_outgoing(
                peer=BOB,
                local=ALICE,
                message_id="left-behind-1",
                content_type="text/plain;charset=utf-8",
                content=b"sent before the crash",
                at=pki.now,
            )
            (result,) = await alice.resend_pending()
            assert result.delivered and result.message_id == "left-behind-1"
            got = await bob.recorder.wait("message")
            assert got.text == "sent before the crash"
            assert alice.store.pending_outgoing() == []

    run(body())


def test_wildcard_listener_is_advertised_by_its_interface(agents, run):
    async def body():
        async with agents() as net:
            bob = await net.add("bob", listens=(), start=False)
            bob.config.listens = [Listen("udp", "0.0.0.0", 0)]
            await bob.start()
            assert bob.addresses["udp"][0] == "0.0.0.0"
            contact = bob.contact_uri(towards="127.0.0.1")
            assert contact.startswith("sip:bob@127.0.0.1:")

    run(body())


def test_required_extension_gets_420(agents, run, udp):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            request = raw_message(b"hi", "text/plain", extra="Require: 100rel\r\n")
            answer = parse_message(await udp(bob.addresses["udp"], request))
            assert answer.status == 420
            assert answer.headers.get("Unsupported") == "100rel"

    run(body())


def test_a_bare_detached_signature_is_refused(agents, run, udp, pki):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            signed = protect(b"hi", signer=pki.alice, multipart_signed=True, signing_time=pki.now)
            from messenger.smime.mime import split_multipart

            signature = MimeEntity.parse(split_multipart(signed)[1])
            request = raw_message(signature.body, "application/pkcs7-signature")
            answer = parse_message(await udp(bob.addresses["udp"], request))
            assert answer.status == 400
            assert bob.store.count(ALICE) == 0

    run(body())


def test_the_request_is_kept_with_the_message_in_the_same_commit(agents, run):
    """The raw SIP request of a received message is in the store when the 200 goes out,
    byte for byte what was sent; the sender keeps the bytes it sent (the last attempt)."""

    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            alice = await net.add("alice")
            net.link(alice, bob)
            at_200: list[bytes | None] = []

            def on_200(event):
                if (
                    event.kind == "sip"
                    and event.direction == "out"
                    and event.summary.startswith("SIP/2.0 200")
                ):
                    stored = bob.store.messages(ALICE)
                    kept = bob.raw_request(stored[-1].rowid) if stored else None
                    at_200.append(None if kept is None else kept.data)

            bob.subscribe(on_200)
            result = await alice.send_text(BOB, "keep the wire too")
            assert result.delivered
            got = await bob.recorder.wait("message")
            received = bob.raw_request(got.rowid)
            assert received is not None and received.kind == "sip-request"
            assert received.data.startswith(b"MESSAGE sip:bob@example.test SIP/2.0\r\n")
            assert at_200 == [received.data]
            with bob.store._db("look") as conn:  # the body is not written a second time
                (shared,) = conn.execute(
                    "SELECT shared FROM message_raw WHERE message = ?", (got.rowid,)
                ).fetchone()
            assert shared == len(parse_message(received.data).body) > 0
            sent = alice.raw_request(alice.store.message(result.message_id).rowid)
            assert sent is not None and sent.data == received.data
            assert not sent.truncated
            # another connection (a restarted process) reads the same
            from messenger.ua.store import MessageStore

            other = MessageStore.open(bob.config.profile)
            try:
                assert other.raw_request(got.rowid).data == received.data
            finally:
                other.close()

    run(body())


def test_after_a_493_the_request_kept_is_the_one_sent_again(agents, run, pki):
    async def body():
        async with agents() as net:
            alice, bob, result = await _send_to_a_stale_certificate(net, pki, "second try")
            assert result.delivered
            got = await bob.recorder.wait("message")
            sent = alice.raw_request(alice.store.message(result.message_id).rowid)
            assert sent is not None
            assert sent.data == bob.raw_request(got.rowid).data  # the one that got the 200
            assert b"CSeq: 1 MESSAGE" in sent.data

    run(body())


def test_an_unprotected_part_beside_a_signed_one_is_stored_outside(agents, run, udp, pki):
    from messenger.im.cpim import CpimMessage, new_message_id
    from messenger.smime.mime import build_multipart
    from messenger.ua.store import MessageStore

    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            cpim = CpimMessage.build(
                ALICE,
                [BOB],
                b"signed words",
                "text/plain;charset=utf-8",
                when=pki.now,
                message_id=new_message_id(),
                disposition=(),
            ).to_bytes()
            signed = protect(
                cpim, content_type="message/cpim", signer=pki.alice, signing_time=pki.now
            )
            mixed = build_multipart(
                "mixed",
                [b"Content-Type: text/plain\r\n\r\nadded on the way", signed.to_bytes()],
            )
            request = raw_message(mixed.body, mixed.header("Content-Type"))
            answer = parse_message(await udp(bob.addresses["udp"], request))
            assert answer.status == 200
            got = await bob.recorder.wait("message")
            assert got.text == "signed words"
            assert got.report["layers"] == ["signed-data"]
            assert got.report["authenticity"] in ("verified", "revocation-unknown")
            stored = bob.store.by_rowid(got.rowid)
            assert [(p.content_type, p.content) for p in stored.outside] == [
                ("text/plain", b"added on the way")
            ]
            assert bob.raw_request(got.rowid).data == request
            other = MessageStore.open(bob.config.profile)
            try:
                again = other.messages(ALICE)[-1]
                assert again.outside == stored.outside and again.text == "signed words"
            finally:
                other.close()

    run(body())
