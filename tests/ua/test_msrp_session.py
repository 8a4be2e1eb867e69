"""Session mode at the user agent (messenger.ua.session.ChatSession): protected messages
and files between two ends on loopback, and every way a transfer can end badly."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msrp_harness as h

from messenger.msrp.frame import FrameParser, MsrpRequest, MsrpResponse, response_to
from messenger.msrp.ids import new_session_id
from messenger.msrp.uri import MsrpUri
from messenger.net.msrp_transport import MsrpTransportError
from messenger.ua.events import (
    CapabilityLearned,
    MessageReceived,
    MessageRefused,
    TransferProgress,
)
from messenger.ua.store import MessageStore

MB = 1024 * 1024


def arun(timeout: float = 120.0):
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), timeout))

        return wrapper

    return deco


@pytest.fixture(scope="module")
def msrp_pki() -> h.Pki:
    return h.make_pki()


def _big_file(folder: Path, size: int, name: str = "archive.bin") -> Path:
    path = folder / name
    rng = random.Random(size)
    with path.open("wb") as f:
        left = size
        while left:
            block = min(left, 4 * MB)
            f.write(rng.randbytes(block))
            left -= block
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _until(predicate, timeout: float = 20.0) -> None:
    """Wait for a condition on the sessions' state, bounded."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def _no_partial_files(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


# -- the large protected file ------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@arun(180)
async def test_signed_and_encrypted_50mb_file(tls: bool, msrp_pki, tmp_path: Path) -> None:
    source = _big_file(tmp_path, 50 * MB)
    pair = await h.open_pair(msrp_pki, tmp_path, tls=tls)
    try:
        result = await pair.a.send_file(source)
        assert result.delivered and result.status == 200, result
        assert result.encrypted and result.signed and result.explanation == ""
        received = await asyncio.wait_for(pair.bob.received.get(), 60)
    finally:
        await pair.close()
    assert received.transport == "msrp" and received.sender == h.ALICE
    assert received.report["authenticity"] == "verified" and received.report["green"]
    assert received.report["confidentiality"].startswith("encrypted")
    assert received.filename == "archive.bin"
    assert _digest(Path(received.path)) == _digest(source)
    steps = [e for e in pair.bob.of(TransferProgress) if e.direction == "in"]
    assert steps[-1].state == "complete" and len(steps) > 10
    assert [e.state for e in pair.alice.of(TransferProgress)][-1] == "complete"


@arun(60)
async def test_text_over_the_session_is_stored_with_its_report(msrp_pki, tmp_path: Path) -> None:
    store = MessageStore(tmp_path / "bob.sqlite")
    pair = await h.open_pair(msrp_pki, tmp_path, bob_kw={"store": store})
    try:
        result = await pair.a.send_text("Watson, come here - I want to see you.")
        received = await asyncio.wait_for(pair.bob.received.get(), 10)
    finally:
        await pair.close()
    assert result.delivered
    assert received.text == "Watson, come here - I want to see you."
    assert received.content_type.startswith("text/plain") and received.filename is None
    assert received.report["green"] and received.rowid > 0
    [stored] = store.messages(h.ALICE)
    assert stored.report["authenticity"] == "verified" and stored.transport == "msrp"
    store.close()


@arun(60)
async def test_without_the_peers_certificate_it_is_signed_and_says_why(
    msrp_pki, tmp_path: Path
) -> None:
    pair = await h.open_pair(msrp_pki, tmp_path, alice_kw={"peer_certificate": None})
    try:
        result = await pair.a.send_text("hello")
        received = await asyncio.wait_for(pair.bob.received.get(), 10)
    finally:
        await pair.close()
    assert result.delivered and result.signed and not result.encrypted
    assert "not encrypted" in result.explanation and h.BOB in result.explanation
    assert received.report["confidentiality"] == "plaintext" and received.report["green"]


# -- reordered and re-chunked delivery ---------------------------------------------------------


class ScramblingRelay:
    """An RFC 4976-style relay for one client that answers each SEND itself, cuts every
    chunk again into overlapping pieces with new transaction ids, and forwards them in a
    shuffled order (relays may re-chunk; TCP keeps no order across relays)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.rng = random.Random(4976)
        self.pieces = 0
        self.server: asyncio.AbstractServer | None = None
        self.uri: MsrpUri | None = None

    async def start(self) -> MsrpUri:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.uri = MsrpUri.parse(f"msrp://127.0.0.1:{port}/{new_session_id()};tcp")
        return self.uri

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def _onward(self, request: MsrpRequest, tid: str, body: bytes, headers=None) -> bytes:
        to_path = request.headers[0][1].split(" ", 1)[1]
        from_path = f"{self.uri} {request.headers[1][1]}"
        rest = headers if headers is not None else request.headers[2:]
        return MsrpRequest(
            request.method,
            tid,
            (("To-Path", to_path), ("From-Path", from_path), *rest),
            body,
            request.continuation,
        ).to_bytes()

    async def _client(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        held: list[bytes] = []
        mine: set[str] = set()

        async def downstream() -> None:  # peer -> client: REPORTs on, our chunks' 200s off
            parser = FrameParser()
            while data := await up_reader.read(1 << 16):
                for frame in parser.feed(data):
                    if isinstance(frame, MsrpResponse):
                        if frame.transaction_id not in mine:
                            writer.write(frame.to_bytes())
                    else:
                        writer.write(self._onward(frame, frame.transaction_id, frame.body))
            writer.close()

        task = asyncio.create_task(downstream())
        parser = FrameParser(max_body_size=8 * MB)
        while data := await reader.read(1 << 16):
            for frame in parser.feed(data):
                if isinstance(frame, MsrpResponse):
                    continue
                if frame.method == "AUTH":
                    answer = response_to(
                        frame, 200, "OK", extra_headers=[("Use-Path", str(self.uri))]
                    )
                    writer.write(answer.to_bytes())
                    continue
                if frame.method != "SEND" or not frame.body:
                    up_writer.write(self._onward(frame, frame.transaction_id, frame.body))
                    continue
                writer.write(response_to(frame, 200, "OK").to_bytes())
                start = frame.byte_range.start - 1
                total = frame.byte_range.total
                body = frame.body
                cut = self.rng.randrange(1, len(body)) if len(body) > 1 else 1
                for a, b in ((0, cut), (max(0, cut - 100), len(body))):
                    if a >= b:
                        continue
                    tid = f"scr{self.pieces:08d}"
                    self.pieces += 1
                    mine.add(tid)
                    headers = [
                        (n, f"{start + a + 1}-{start + b}/{total}" if n == "Byte-Range" else v)
                        for n, v in frame.headers[2:]
                    ]
                    held.append(self._onward(frame, tid, body[a:b], headers))
                if len(held) >= 12 or frame.continuation == "$":
                    self.rng.shuffle(held)
                    for item in held:
                        up_writer.write(item)
                    held.clear()
                    await up_writer.drain()
        up_writer.close()
        await task


@arun(60)
async def test_reordered_and_rechunked_delivery_through_a_relay(msrp_pki, tmp_path: Path) -> None:
    source = _big_file(tmp_path, 3 * MB + 12345, "report.pdf")
    listener = await h.MsrpListener.start("127.0.0.1", 0)
    relay = ScramblingRelay(listener.address)
    relay_uri = await relay.start()
    pair = await _pair_on(msrp_pki, tmp_path, listener, relay_uri)
    try:
        result = await pair.a.send_file(source)
        received = await asyncio.wait_for(pair.bob.received.get(), 30)
    finally:
        await pair.close()
        await relay.close()
    assert result.delivered, result
    assert relay.pieces > 2 * (source.stat().st_size // (256 * 1024))
    assert received.report["green"] and received.filename == "report.pdf"
    assert _digest(Path(received.path)) == _digest(source)


async def _pair_on(pki: h.Pki, tmp_path: Path, listener, relay_uri: MsrpUri) -> h.Pair:
    host, port = listener.address
    bob_uri = h.new_local_uri(host, port)
    alice_uri = h.new_local_uri("127.0.0.1", 9)
    alice, bob = h.Side(), h.Side()
    bob.session = h.ChatSession(
        local_aor=h.BOB,
        peer_aor=h.ALICE,
        identity=pki.bob,
        trust=pki.trust_bob,
        local_uri=bob_uri,
        remote_path=(relay_uri, alice_uri),
        active=False,
        listener=listener,
        emit=bob.emit,
        peer_certificate=pki.alice.certificate,
        downloads=tmp_path / "bob-downloads",
    )
    alice.session = h.ChatSession(
        local_aor=h.ALICE,
        peer_aor=h.BOB,
        identity=pki.alice,
        trust=pki.trust_alice,
        local_uri=alice_uri,
        remote_path=(bob_uri,),
        active=True,
        relay=relay_uri,
        emit=alice.emit,
        peer_certificate=pki.bob.certificate,
    )
    passive = asyncio.ensure_future(bob.session.open(10))
    await alice.session.open(10)
    await passive
    return h.Pair(alice, bob, listener)


# -- transfers that end badly ------------------------------------------------------------------


@arun(60)
async def test_cancelled_transfer_is_aborted_on_both_sides(msrp_pki, tmp_path: Path) -> None:
    source = _big_file(tmp_path, 20 * MB)
    pair = await h.open_pair(msrp_pki, tmp_path)
    downloads = tmp_path / "bob-downloads"
    try:
        bob_transport = pair.b._connection._transport
        bob_transport.pause_reading()  # Bob reads slowly: the transfer is still running
        sending = asyncio.ensure_future(pair.a.send_file(source))
        await _until(lambda: any(o.sent > 0 for o in pair.a.msrp._outgoing.values()))
        [transfer_id] = list(pair.a.msrp._outgoing)
        assert pair.a.cancel(transfer_id)
        bob_transport.resume_reading()
        result = await sending
        aborted = await asyncio.wait_for(pair.bob.ended.get(), 20)
    finally:
        await pair.close()
    assert result.cancelled and not result.delivered and "cancelled" in result.explanation
    assert pair.alice.of(TransferProgress)[-1].state == "aborted"
    assert aborted.state == "aborted" and aborted.direction == "in"
    assert "aborted" in aborted.reason and "nothing of it was kept" in aborted.reason
    assert not pair.bob.of(MessageReceived)
    assert _no_partial_files(downloads)


@arun(60)
async def test_peer_answering_415_cannot_take_smime(msrp_pki, tmp_path: Path) -> None:
    pair = await h.open_pair(msrp_pki, tmp_path, bob_kw={"accept_types": ["text/plain"]})
    try:
        result = await pair.a.send_text("secret")
    finally:
        await pair.close()
    assert not result.delivered and result.status == 415
    assert pair.a.smime_refused is not None and "S/MIME" in pair.a.smime_refused
    assert result.explanation == pair.a.smime_refused
    [learned] = pair.alice.of(CapabilityLearned)
    assert (learned.capability, learned.value, learned.peer) == ("smime", False, h.BOB)
    assert [e.status for e in pair.bob.of(MessageRefused)] == [415]
    assert not pair.bob.of(MessageReceived)


@arun(60)
async def test_oversized_message_is_refused_with_413(msrp_pki, tmp_path: Path) -> None:
    source = _big_file(tmp_path, 3 * MB)
    pair = await h.open_pair(msrp_pki, tmp_path, bob_kw={"max_message_size": 1 * MB})
    try:
        result = await pair.a.send_file(source)
    finally:
        await pair.close()
    assert not result.delivered and result.status == 413
    assert "more than" in result.explanation and "smaller" in result.explanation
    refused = pair.bob.of(MessageRefused)
    assert refused and refused[0].status == 413 and "exceeds the limit" in refused[0].reason
    assert not pair.bob.of(MessageReceived)
    assert _no_partial_files(tmp_path / "bob-downloads")


@arun(60)
async def test_connection_dropped_mid_transfer(msrp_pki, tmp_path: Path) -> None:
    source = _big_file(tmp_path, 20 * MB)
    pair = await h.open_pair(msrp_pki, tmp_path)
    try:
        sending = asyncio.ensure_future(pair.a.send_file(source))
        await _until(
            lambda: any(e.direction == "in" and e.done > 0 for e in pair.bob.of(TransferProgress))
        )
        pair.b._connection.abort("network cable pulled")
        result = await asyncio.wait_for(sending, 20)
        ended = await asyncio.wait_for(pair.bob.ended.get(), 20)
    finally:
        await pair.close()
    assert not result.delivered and result.status == 0
    assert "connection was lost" in result.explanation
    assert pair.alice.of(TransferProgress)[-1].state == "failed"
    assert ended.state == "aborted" and "network cable pulled" in ended.reason
    assert not pair.bob.of(MessageReceived)
    assert pair.a.state == "closed" and pair.b.state == "closed"
    assert _no_partial_files(tmp_path / "bob-downloads")
    with pytest.raises(MsrpTransportError, match="not open"):
        await pair.a.send_text("after the drop")


def test_safe_filename_keeps_files_inside_downloads() -> None:
    from messenger.ua.session import safe_filename

    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\\\Windows\\\\evil.exe") == "evil.exe"
    assert safe_filename("..") == "received-file"
    assert safe_filename("notes; rm -rf.txt") == "notes_ rm -rf.txt"
    assert os.sep not in safe_filename("a/b/c")


# -- protection chosen per message -------------------------------------------------------------


@arun(60)
async def test_concurrent_sends_keep_their_own_protection(msrp_pki, tmp_path: Path) -> None:
    """Two sends in flight at once, one plain and one signed and encrypted, each with a
    large enough body that both are being protected at the same time: each arrives with
    the protection asked for it, whatever the session's defaults say."""
    pair = await h.open_pair(msrp_pki, tmp_path)
    try:
        big = os.urandom(2 * MB)
        plain, protected, signed_only = await asyncio.gather(
            pair.a.send_content(b"plain " + big, "text/plain", sign=False, encrypt=False),
            pair.a.send_content(b"secret " + big, "text/plain", sign=True, encrypt=True),
            pair.a.send_content(b"signed " + big, "text/plain", sign=True, encrypt=False),
        )
        received = [await asyncio.wait_for(pair.bob.received.get(), 20) for _ in range(3)]
    finally:
        await pair.close()
    assert (plain.signed, plain.encrypted) == (False, False), plain
    assert (protected.signed, protected.encrypted) == (True, True), protected
    assert (signed_only.signed, signed_only.encrypted) == (True, False), signed_only
    by_start = {bytes(r.content[:6]): r.report for r in received}
    assert by_start[b"plain "]["confidentiality"] == "plaintext"
    assert by_start[b"plain "]["authenticity"] == "unsigned"
    assert by_start[b"secret"]["confidentiality"].startswith("encrypted")
    assert by_start[b"secret"]["authenticity"] == "verified"
    assert by_start[b"signed"]["confidentiality"] == "plaintext"
    assert by_start[b"signed"]["authenticity"] == "verified"
    # the session's defaults were left alone
    assert pair.a.sign and pair.a.encrypt


@arun(60)
async def test_a_received_file_is_stored_as_a_reference_to_its_copy(
    msrp_pki, tmp_path: Path
) -> None:
    from messenger.ua.files import FILE_REFERENCE_TYPE

    store = MessageStore(tmp_path / "bob.sqlite")
    source = tmp_path / "notes.txt"
    source.write_bytes(b"the minutes of the meeting\n" * 1000)
    pair = await h.open_pair(msrp_pki, tmp_path, bob_kw={"store": store})
    try:
        result = await pair.a.send_file(source)
        received = await asyncio.wait_for(pair.bob.received.get(), 20)
    finally:
        await pair.close()
    assert result.delivered
    [stored] = store.messages(h.ALICE)
    store.close()
    assert stored.content_type == FILE_REFERENCE_TYPE
    assert stored.content == (Path(received.path).resolve().as_uri() + "\r\n").encode()
    assert Path(received.path).read_bytes() == source.read_bytes()
    assert stored.report["authenticity"] == "verified"
