"""Micro benchmark of the SIP receive path: `parse_message`, and the whole server side of
one non-INVITE transaction over UDP (parse, match, 200 built and serialized).

    python3 tests/bench/bench_sip_parse.py [--messages 20000] [--repeat 5]

The input is what the pager benchmark's SIPp scenario sends: MESSAGE requests with a
base64 S/MIME body of about 2.4 KB, every one with its own branch, tag and Call-ID (so no
value recurs as it would not on the wire). The baseline, measured in the same run on the
same bytes, is the standard library's RFC 5322 header parser
(`email.parser.BytesHeaderParser`), which does less: no SIP grammar, no validation. The
figures are the median over ``--repeat`` runs, in microseconds per message and as ratios
to the baseline.
"""

from __future__ import annotations

import argparse
import base64
import email.parser
import email.policy
import os
import statistics
import sys
import time
from collections.abc import Callable

from messenger.sip.message import parse_message
from messenger.sip.transaction import TransactionLayer

BODY = base64.b64encode(os.urandom(1800))
REMOTE = ("127.0.0.1", 5061)


def message(n: int) -> bytes:
    return (
        "MESSAGE sip:bob@example.test SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-{n}-0\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:alice@example.test>;tag=4242SIPpTag00{n}\r\n"
        "To: <sip:bob@example.test>\r\n"
        f"Call-ID: {n}-4242@127.0.0.1\r\n"
        "CSeq: 1 MESSAGE\r\n"
        "Contact: <sip:sipp@127.0.0.1:5061;transport=UDP>\r\n"
        "Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY


def per_message(run: Callable[[list[bytes]], None], data: list[bytes]) -> float:
    started = time.perf_counter()
    run(data)
    return (time.perf_counter() - started) * 1e6 / len(data)


def baseline(data: list[bytes]) -> None:
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    for raw in data:
        head, _, _ = raw.partition(b"\r\n\r\n")
        parser.parsebytes(head.split(b"\r\n", 1)[1])


def parse_only(data: list[bytes]) -> None:
    for raw in data:
        parse_message(raw)


def server_transactions(data: list[bytes]) -> None:
    layer = TransactionLayer()
    for n, raw in enumerate(data):
        now = n / 500
        layer.receive_data(raw, remote=REMOTE, reliable=False, now=now)
        for event in layer.events():
            key = getattr(event, "key", None)
            if key is not None:
                layer.send_response(key, event.request.make_response(200), now)
        layer.messages_to_send()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{args.messages} distinct MESSAGEs of {len(message(0))} bytes; load average {load}")
    rows = [
        ("email.parser headers (baseline)", baseline),
        ("parse_message", parse_only),
        ("parse + server transaction + 200", server_transactions),
    ]
    results: dict[str, list[float]] = {name: [] for name, _ in rows}
    for rep in range(args.repeat):
        data = [message(rep * args.messages + n) for n in range(args.messages)]
        for name, run in rows:
            results[name].append(per_message(run, data))
    base = statistics.median(results[rows[0][0]])
    print(f"{'':34}{'us/msg':>8}{'ratio':>8}")
    for name, _ in rows:
        value = statistics.median(results[name])
        print(f"{name:<34}{value:>8.1f}{value / base:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
