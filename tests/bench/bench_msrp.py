"""Benchmark of session mode: a large file between two ends on loopback, each end in its
own process, printed as ratios against baselines measured in the same run.

    python tests/bench/bench_msrp.py [--size-mb 100] [--tls]

Three transfers of the same bytes (a file of ``--size-mb`` MB):

1. raw: an asyncio socket copy into one buffer (the floor of moving the bytes at all);
2. unprotected: the same file through `ChatSession` with neither signature nor
   encryption (CPIM, MSRP chunking, reassembly into a temporary file, file written);
3. protected: signed and encrypted (RFC 8591: CPIM, SignedData, AuthEnvelopedData with
   AES-128-GCM, then chunked), decrypted and verified by the receiver in its executor.

Throughput is the file size over the time from the sender starting (before reading the
file) to the receiver holding the verified result. Memory is the peak resident set of each
process (``ru_maxrss``) above what it held before the transfer, as a multiple of the file
size. Goals: protected >= 100 MB/s, peak memory under 3x on each side.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MB = 1024 * 1024


def rss_bytes() -> int:
    """Peak resident set of this process (VmHWM: unlike ru_maxrss it does not inherit the
    parent's peak across fork and exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


# -- the roles, each run in a child process ---------------------------------------------------


class _RawSink(asyncio.BufferedProtocol):
    """Reads straight into one preallocated buffer: the cheapest asyncio receive."""

    def __init__(self, size: int, done: asyncio.Future) -> None:
        self.view = memoryview(bytearray(size))
        self.got = 0
        self.done = done

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.got >= len(self.view):
            return memoryview(bytearray(4096))  # anything after the payload is dropped
        return self.view[self.got :]

    def buffer_updated(self, nbytes: int) -> None:
        self.got += nbytes
        if self.got == len(self.view) and not self.done.done():
            self.done.set_result((self.got, time.time()))

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_result((self.got, time.time()))


async def raw_receiver(size: int) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    base = current_rss()
    server = await loop.create_server(lambda: _RawSink(size, done), "127.0.0.1", 0)
    say(port=server.sockets[0].getsockname()[1])
    got, at = await done
    say(received=got, at=at, base=base, peak=rss_bytes())
    server.close()


async def raw_sender(port: int, path: Path) -> None:
    base = current_rss()
    start = time.time()
    data = path.read_bytes()
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    view = memoryview(data)
    for i in range(0, len(data), MB):  # 1 MB writes, waiting for room: no copy piles up
        writer.write(view[i : i + MB])
        await writer.drain()
    writer.close()
    await writer.wait_closed()
    say(start=start, base=base, peak=rss_bytes())


def _load(folder: Path):
    from cryptography import x509

    from messenger.pki.identity import load_identity
    from messenger.pki.trust import TrustStore

    trust = TrustStore()
    trust.add_anchor(x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes()))
    trust.add_crl(x509.load_pem_x509_crl((folder / "crl.pem").read_bytes()))
    alice = load_identity(folder / "alice", None)
    bob = load_identity(folder / "bob", None)
    return alice, bob, trust


async def session_receiver(folder: Path, protected: bool, tls: bool) -> None:
    from messenger.msrp.uri import MsrpUri
    from messenger.net.msrp_transport import MsrpListener
    from messenger.ua.events import MessageReceived, TransferProgress
    from messenger.ua.session import ChatSession

    alice, bob, trust = _load(folder)
    server_ctx = None
    if tls:
        import ssl

        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(folder / "tls-cert.pem", folder / "tls-key.pem")
    listener = await MsrpListener.start("127.0.0.1", 0, ssl=server_ctx)
    bob_uri = listener.uri("benchbobsession0001")
    alice_uri = MsrpUri.parse(f"{'msrps' if tls else 'msrp'}://127.0.0.1:9/benchalice0001;tcp")
    got = asyncio.get_running_loop().create_future()
    marks: dict[str, float] = {}

    def emit(event) -> None:
        if isinstance(event, TransferProgress) and event.direction == "in":
            marks.setdefault("first_chunk", time.time())
            if event.state == "running":
                marks["last_chunk"] = time.time()
        if isinstance(event, MessageReceived) and not got.done():
            got.set_result((event, time.time()))

    session = ChatSession(
        local_aor="sip:bob@example.test",
        peer_aor="sip:alice@example.test",
        identity=bob,
        trust=trust,
        local_uri=bob_uri,
        remote_path=(alice_uri,),
        active=False,
        listener=listener,
        emit=emit,
        peer_certificate=alice.certificate,
        downloads=folder / "downloads",
        temp_dir=folder,
        max_message_size=1 << 31,
    )
    gc.collect()
    base = current_rss()
    say(port=listener.address[1])
    await session.open(30)
    event, at = await got
    size = Path(event.path).stat().st_size
    say(
        received=size,
        at=at,
        base=base,
        peak=rss_bytes(),
        green=event.report.get("green"),
        authenticity=event.report.get("authenticity"),
        confidentiality=event.report.get("confidentiality"),
        **marks,
    )
    del event
    await session.close()
    await listener.close()


async def session_sender(folder: Path, port: int, path: Path, protected: bool, tls: bool) -> None:
    from messenger.msrp.uri import MsrpUri
    from messenger.ua.session import ChatSession

    alice, bob, trust = _load(folder)
    client_ctx = None
    if tls:
        import ssl

        client_ctx = ssl.create_default_context(cafile=str(folder / "tls-cert.pem"))
    scheme = "msrps" if tls else "msrp"
    bob_uri = MsrpUri.parse(f"{scheme}://127.0.0.1:{port}/benchbobsession0001;tcp")
    alice_uri = MsrpUri.parse(f"{scheme}://127.0.0.1:9/benchalice0001;tcp")
    session = ChatSession(
        local_aor="sip:alice@example.test",
        peer_aor="sip:bob@example.test",
        identity=alice,
        trust=trust,
        local_uri=alice_uri,
        remote_path=(bob_uri,),
        active=True,
        ssl=client_ctx,
        emit=lambda event: None,
        peer_certificate=bob.certificate,
        sign=protected,
        encrypt=protected,
        temp_dir=folder,
    )
    await session.open(30)
    gc.collect()
    base = current_rss()
    start = time.time()
    result = await session.send_file(path)
    say(start=start, base=base, peak=rss_bytes(), delivered=result.delivered, size=result.size)
    await session.close()


def child(args: argparse.Namespace) -> None:
    folder = Path(args.folder)
    if os.environ.get("BENCH_MSRP_PROFILE"):  # where the time goes, per process
        import cProfile

        out = Path(os.environ["BENCH_MSRP_PROFILE"]) / f"{args.role}-{int(args.protected)}.prof"
        cProfile.runctx(
            "_child(args, folder)", globals(), {"args": args, "folder": folder}, str(out)
        )
        return
    _child(args, folder)


def _child(args: argparse.Namespace, folder: Path) -> None:
    if args.role == "raw-recv":
        asyncio.run(raw_receiver(args.size))
    elif args.role == "raw-send":
        asyncio.run(raw_sender(args.port, Path(args.path)))
    elif args.role == "recv":
        asyncio.run(session_receiver(folder, args.protected, args.tls))
    elif args.role == "send":
        asyncio.run(session_sender(folder, args.port, Path(args.path), args.protected, args.tls))


# -- the parent --------------------------------------------------------------------------------


def _spawn(*argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, *argv],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _line(proc: subprocess.Popen) -> dict:
    line = proc.stdout.readline()
    if not line:
        proc.wait(30)
        raise SystemExit(f"a benchmark process ended early (exit {proc.returncode})")
    return json.loads(line)


def run_pair(recv_argv: list[str], send_argv: list[str]) -> tuple[dict, dict]:
    receiver = _spawn(*recv_argv)
    port = _line(receiver)["port"]
    sender = _spawn(*send_argv, "--port", str(port))
    sent = _line(sender)
    got = _line(receiver)
    for proc in (sender, receiver):
        proc.wait(120)
    return sent, got


def crypto_floor(data: bytes, repeat: int) -> float:
    """Best time of the least cryptography a protected transfer must do on these bytes:
    the sender's digest and encryption, the receiver's decryption and digest (RFC 8591
    protects the whole message before chunking, so none of it overlaps the transfer)."""
    import hashlib

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    best = float("inf")
    for _ in range(repeat):
        key = AESGCM(AESGCM.generate_key(128))
        nonce = os.urandom(12)
        start = time.perf_counter()
        hashlib.sha256(data).digest()
        sealed = key.encrypt(nonce, data, None)
        opened = key.decrypt(nonce, sealed, None)
        hashlib.sha256(opened).digest()
        best = min(best, time.perf_counter() - start)
        del sealed, opened
    return best


def prepare(folder: Path, size: int) -> Path:
    from cryptography.hazmat.primitives import serialization

    from messenger.pki.authority import create_authority
    from messenger.pki.identity import create_identity, save_identity

    now = dt.datetime.now(dt.UTC)
    ca = create_authority("Bench CA", now=now)
    save_identity(
        create_identity("sip:alice@example.test", authority=ca, now=now), folder / "alice", None
    )
    save_identity(
        create_identity("sip:bob@example.test", authority=ca, now=now), folder / "bob", None
    )
    (folder / "ca.pem").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    crl = ca.crl(now=now - dt.timedelta(minutes=1))
    (folder / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    sys.path.insert(0, str(ROOT / "tests" / "ua"))
    from msrp_harness import tls_contexts

    tls_contexts(folder)  # writes msrp-cert.pem / msrp-key.pem
    (folder / "msrp-cert.pem").rename(folder / "tls-cert.pem")
    (folder / "msrp-key.pem").rename(folder / "tls-key.pem")
    path = folder / "payload.bin"
    with path.open("wb") as f:
        left = size
        while left:
            block = min(left, 8 * MB)
            f.write(os.urandom(block))
            left -= block
    return path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--tls", action="store_true", help="the MSRP transfers over TLS")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--protected", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        child(args)
        return 0

    size = args.size_mb * MB
    with tempfile.TemporaryDirectory(prefix="bench-msrp-") as tmp:
        folder = Path(tmp)
        path = prepare(folder, size)
        common = ["--folder", str(folder)]
        tls = ["--tls"] if args.tls else []
        floor = crypto_floor(path.read_bytes(), args.repeat)
        results: dict[str, tuple[dict, dict]] = {}

        def keep(name: str, sent: dict, got: dict) -> None:
            best = results.get(name)
            if best is None or got["at"] - sent["start"] < best[1]["at"] - best[0]["start"]:
                results[name] = (sent, got)

        for _ in range(args.repeat):
            sent, got = run_pair(
                ["--role", "raw-recv", "--size", str(size), *common],
                ["--role", "raw-send", "--path", str(path), *common],
            )
            assert got["received"] == size
            keep("raw", sent, got)
            for name, flag in (("unprotected", []), ("protected", ["--protected"])):
                (folder / "downloads").mkdir(exist_ok=True)
                sent, got = run_pair(
                    ["--role", "recv", *common, *flag, *tls],
                    ["--role", "send", "--path", str(path), *common, *flag, *tls],
                )
                assert sent["delivered"] and got["received"] == size, (sent, got)
                if flag:
                    assert got["green"], got
                keep(name, sent, got)
                for f in (folder / "downloads").iterdir():
                    f.unlink()

    print(
        f"{args.size_mb} MB file on loopback{' (MSRP over TLS)' if args.tls else ''}, "
        "sender and receiver in separate processes"
    )
    speeds = {}
    for name, (sent, got) in results.items():
        seconds = got["at"] - sent["start"]
        speeds[name] = size / seconds / 1e6
        send_mem = (sent["peak"] - sent["base"]) / size
        recv_mem = (got["peak"] - got["base"]) / size
        print(
            f"  {name:12s} {seconds:6.2f} s  {speeds[name]:7.1f} MB/s   peak memory above "
            f"start: sender {send_mem:4.2f}x, receiver {recv_mem:4.2f}x the file"
        )
        if "first_chunk" in got:
            print(
                f"  {'':12s} sender read+CPIM+protect until the first chunk "
                f"{got['first_chunk'] - sent['start']:.2f} s, chunks "
                f"{got['last_chunk'] - got['first_chunk']:.2f} s, receiver read back+"
                f"unprotect+save {got['at'] - got['last_chunk']:.2f} s"
            )
        if name == "protected":
            print(f"  {'':12s} receiver report: {got['authenticity']}, {got['confidentiality']}")
    p, u, r = speeds["protected"], speeds["unprotected"], speeds["raw"]
    raw_seconds = size / r / 1e6
    print(
        f"  crypto floor (SHA-256 + AES-128-GCM encrypt, then decrypt + SHA-256, same bytes): "
        f"{floor:.2f} s; raw copy + floor: {size / (raw_seconds + floor) / 1e6:.1f} MB/s"
    )
    print(f"  protected / (raw + crypto floor): {p / (size / (raw_seconds + floor) / 1e6):5.2f}")
    print(f"  protected / raw socket copy:   {p / r:5.2f}")
    print(f"  protected / unprotected:       {p / u:5.2f}")
    print(f"  unprotected / raw socket copy: {u / r:5.2f}")
    worst = max(
        (results["protected"][0]["peak"] - results["protected"][0]["base"]) / size,
        (results["protected"][1]["peak"] - results["protected"][1]["base"]) / size,
    )
    print(
        f"  goals: protected >= 100 MB/s: {'met' if p >= 100 else 'NOT met'} ({p:.0f}); "
        f"peak memory < 3x: {'met' if worst < 3 else 'NOT met'} ({worst:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
