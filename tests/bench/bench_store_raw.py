"""What keeping the raw SIP request costs the store's write of a received message.

    python tests/bench/bench_store_raw.py [--messages 300] [--rounds 3]

Every received MESSAGE is committed with its security report and body entity before the
200 goes out; the SIP request that carried it now goes into the same transaction (in
``message_raw``: its head, plus the body when it is not the stored one). This writes the
same received messages, each with a signed and encrypted 1.2 KB body, through
`MessageStore.add_incoming_batch`, the user agent's group commit, once without the
request (the baseline) and once with it, one message per transaction (a quiet agent) and
64 per transaction (an agent under load). Rounds alternate the order; the figures are
medians. Printed: microseconds per message and the ratio with / without.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from messenger.ua.store import MessageStore

PEER = "sip:alice@example.test"
LOCAL = "sip:bob@example.test"
BODY = os.urandom(1200)
ENTITY = b"Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data\r\n\r\n" + BODY
HEAD = (
    b"MESSAGE sip:bob@example.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-bench;rport\r\n"
    b"Max-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=a1\r\n"
    b"To: <sip:bob@example.test>\r\nCall-ID: bench@127.0.0.1\r\nCSeq: 1 MESSAGE\r\n"
    b"Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data\r\n"
    b"Content-Length: 1200\r\n\r\n"
)
REPORT = {
    "confidentiality": "encrypted",
    "authenticity": "verified",
    "layers": ["authEnveloped-data", "signed-data"],
    "algorithms": [{"role": "content-encryption", "name": "AES-128-GCM"}],
}


def rows(count: int, with_request: bool) -> list[dict]:
    now = datetime.now(UTC)
    made = []
    for _ in range(count):
        row = {
            "peer": PEER,
            "local": LOCAL,
            "message_id": os.urandom(8).hex(),
            "content_type": "text/plain;charset=utf-8",
            "content": b"a message of a few words",
            "report": REPORT,
            "at": now,
            "raw": ENTITY,
        }
        if with_request:
            row["raw_request"] = HEAD + BODY
        made.append(row)
    return made


def per_message(batch: int, messages: int, with_request: bool) -> float:
    """Seconds per message to commit ``messages`` in batches of ``batch``."""
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as folder:
        store = MessageStore.open(Path(folder))
        try:
            batches = [rows(batch, with_request) for _ in range(max(1, messages // batch))]
            start = time.perf_counter()
            for one in batches:
                store.add_incoming_batch(one)
            elapsed = time.perf_counter() - start
        finally:
            store.close()
    return elapsed / (len(batches) * batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'per commit':>10}  {'without (us)':>12}  {'with (us)':>10}  {'ratio':>6}")
    for batch in (1, 64):
        messages = args.messages if batch == 1 else args.messages * 8
        found: dict[bool, list[float]] = {False: [], True: []}
        for round_ in range(args.rounds):
            for with_request in (False, True) if round_ % 2 == 0 else (True, False):
                found[with_request].append(per_message(batch, messages, with_request))
        without = statistics.median(found[False])
        with_ = statistics.median(found[True])
        print(f"{batch:>10}  {without * 1e6:>12.1f}  {with_ * 1e6:>10.1f}  {with_ / without:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
