"""REGISTER (refresh, un-REGISTER) and digest challenges (401/407, MD5 and SHA-256), against
a small registrar made of our own transport and `DigestVerifier`."""

from __future__ import annotations

import asyncio

from messenger.net.sip_transport import Peer, SipTransport
from messenger.sip.digest import DigestVerifier
from messenger.sip.events import RequestReceived
from messenger.ua.registration import refresh_delay

BOB = "sip:bob@example.test"


class Registrar:
    """Challenges REGISTER with 401 and MESSAGE with 407, then accepts; records what came."""

    def __init__(
        self,
        algorithm: str,
        *,
        grant: int = 600,
        password: str = "pw-alice",
        min_expires: int = 0,
    ) -> None:
        self.min_expires = min_expires
        self.verifier = DigestVerifier("example.test", {"alice": password}, algorithms=(algorithm,))
        self.grant = grant
        self.transport = SipTransport(on_event=self.on_event)
        self.registers: list[tuple[float, str, str | None]] = []  # (time, Expires, auth)
        self.messages: list[bytes] = []
        self.changed = asyncio.Event()

    async def start(self) -> str:
        host, port = await self.transport.listen("udp", "127.0.0.1", 0)
        await self.transport.listen("tcp", host, port)
        return f"sip:{host}:{port}"

    def on_event(self, event) -> None:
        if not isinstance(event, RequestReceived) or event.key is None:
            return
        request = event.request
        loop = asyncio.get_running_loop()
        if request.method == "REGISTER":
            header, challenge, status = "Authorization", "WWW-Authenticate", 401
        else:
            header, challenge, status = "Proxy-Authorization", "Proxy-Authenticate", 407
        credentials = request.headers.get(header)
        ok = credentials is not None and (
            self.verifier.verify(
                credentials, method=request.method, now=loop.time(), request_uri=request.uri
            ).ok
        )
        if request.method == "REGISTER":
            self.registers.append((loop.time(), request.headers.get("Expires"), credentials))
        if not ok:
            values = self.verifier.challenge(loop.time())
            response = request.make_response(status, headers=[(challenge, v) for v in values])
        elif request.method == "REGISTER" and 0 < int(request.headers.get("Expires") or 0) < (
            self.min_expires
        ):
            response = request.make_response(423, headers=[("Min-Expires", str(self.min_expires))])
        elif request.method == "REGISTER":
            contact = request.headers.get("Contact")
            expires = 0 if request.headers.get("Expires") == "0" else self.grant
            response = request.make_response(
                200, headers=[("Contact", f"{contact};expires={expires}")]
            )
        else:
            self.messages.append(request.body)
            response = request.make_response(200)
        self.transport.send_response(event.key, response)
        self.changed.set()


async def _until(registrar: Registrar, predicate, timeout: float = 10) -> None:
    async def wait():
        while not predicate():
            registrar.changed.clear()
            await registrar.changed.wait()

    await asyncio.wait_for(wait(), timeout)


def _check(agents, run, algorithm: str) -> None:
    async def body():
        registrar = Registrar(algorithm)
        uri = await registrar.start()
        try:
            async with agents() as net:
                alice = await net.add(
                    "alice", registrar=uri, proxy=uri, password="pw-alice", listens=("udp",)
                )
                registered = await alice.recorder.wait("registered")
                assert registered.expires == 600
                statuses = [e.summary for e in alice.recorder.of("sip") if e.direction == "in"]
                assert statuses[0].startswith("SIP/2.0 401")
                assert f"algorithm={algorithm}" in registrar.registers[-1][2]
                result = await alice.send_text(BOB, "through the proxy", encrypt=False)
                assert result.delivered, result.explanation
                assert len(registrar.messages) == 1
                assert any(
                    e.summary.startswith("SIP/2.0 407")
                    for e in alice.recorder.of("sip")
                    if e.direction == "in"
                )
            # stopping the agent removed the binding
            assert registrar.registers[-1][1] == "0"
            assert registrar.registers[-1][2] is not None
        finally:
            await registrar.transport.close()

    run(body())


def test_register_and_message_answer_md5_challenges(agents, run):
    _check(agents, run, "MD5")


def test_register_and_message_answer_sha256_challenges(agents, run):
    _check(agents, run, "SHA-256")


def test_wrong_password_is_reported_in_words(agents, run):
    async def body():
        registrar = Registrar("SHA-256", password="the-real-one")
        uri = await registrar.start()
        try:
            async with agents() as net:
                alice = await net.add(
                    "alice", registrar=uri, password="a-wrong-one", listens=("udp",)
                )
                failed = await alice.recorder.wait("registration-failed")
                assert failed.status == 401
                assert "password" in failed.reason
        finally:
            await registrar.transport.close()

    run(body())


def test_registration_is_refreshed_before_it_expires(agents, run):
    async def body():
        registrar = Registrar("MD5", grant=2)
        uri = await registrar.start()
        try:
            async with agents() as net:
                await net.add("alice", registrar=uri, password="pw-alice", listens=("udp",))
                # one refresh: two authorized REGISTERs with a non-zero Expires
                await _until(
                    registrar,
                    lambda: len([r for r in registrar.registers if r[2] and r[1] != "0"]) >= 2,
                )
                good = [r for r in registrar.registers if r[2] and r[1] != "0"]
                assert good[1][0] - good[0][0] < 2.0
        finally:
            await registrar.transport.close()

    run(body())


def test_refresh_delay_is_before_expiry():
    for expires in (2, 30, 600, 3600):
        assert 0 < refresh_delay(expires) < expires
    assert refresh_delay(600) == 480
    assert refresh_delay(3600) == 2880


def test_the_peer_type_is_hashable_and_prints():
    peer = Peer("udp", "127.0.0.1", 5060)
    assert {peer: 1}[Peer("udp", "127.0.0.1", 5060)] == 1
    assert str(peer) == "udp:127.0.0.1:5060"


def test_interval_too_brief_is_answered_with_min_expires(agents, run):
    async def body():
        registrar = Registrar("MD5", min_expires=900, grant=900)
        uri = await registrar.start()
        try:
            async with agents() as net:
                alice = await net.add("alice", registrar=uri, password="pw-alice", listens=("udp",))
                registered = await alice.recorder.wait("registered")
                assert registered.expires == 900
                assert [r[1] for r in registrar.registers if r[2]][:2] == ["600", "900"]
        finally:
            await registrar.transport.close()

    run(body())


def test_pending_messages_go_out_after_the_registration(agents, run, tmp_path, pki):
    from messenger.ua.store import MessageStore

    async def body():
        registrar = Registrar("MD5")
        uri = await registrar.start()
        # what a previous run of this account left pending (the profile `agents` gives)
        with MessageStore.open(tmp_path / "alice-0") as store:
            store.add_outgoing(
                peer=BOB,
                local="sip:alice@example.test",
                message_id="left-pending",
                content_type="text/plain;charset=utf-8",
                content=b"from the last run",
                at=pki.now,
            )
        try:
            async with agents() as net:
                alice = await net.add(
                    "alice", registrar=uri, proxy=uri, password="pw-alice", listens=("udp",)
                )
                response = await alice.recorder.wait("response")
                assert (response.message_id, response.status) == ("left-pending", 200)
                kinds = [e.kind for e in alice.recorder.events if e.kind != "sip"]
                assert kinds.index("registered") < kinds.index("response")
                assert len(registrar.messages) == 1
                assert alice.store.message("left-pending").delivery == "delivered"
        finally:
            await registrar.transport.close()

    run(body())
