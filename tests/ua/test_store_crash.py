"""The store's promise under SIGKILL: what a method reported as done survives.

A real child process writes in a loop and prints one line after each store method has
returned; the parent kills it (SIGKILL) once it has read N lines, drains whatever else
the child printed before it died, re-opens the store and checks that every reported
write is there and that the database is sound. Waits are on the child's output (never
sleeps) and every wait has a timeout.
"""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from messenger.ua.store import DB_FILENAME, MessageStore

REPO = Path(__file__).resolve().parents[2]
WAIT = 60.0  # seconds; generous, for slow CI disks (every commit is fsync-ed)

# argv: profile folder, prefix of the message ids
CHILD = r"""
import sys
from datetime import UTC, datetime
from pathlib import Path

from messenger.ua.store import MessageStore

profile, prefix = Path(sys.argv[1]), sys.argv[2]
store = MessageStore.open(profile)
print("ready", flush=True)
big = b"x" * 200_000  # spans many pages: a kill can land in the middle of writing it
for i in range(1_000_000):  # bounded, in case the parent is gone
    at = datetime.now(UTC)
    mid = f"{prefix}-{i}"
    content = big if i % 7 == 0 else f"message {i}".encode()
    if i % 2 == 0:
        store.add_outgoing(
            peer="sip:bob@example.com", local="sip:alice@example.com", message_id=mid,
            content_type="text/plain", content=content, at=at,
        )
        print("out", mid, flush=True)
        store.set_delivery(mid, "sent", at=at, status=200, reason="OK")
        print("sent", mid, flush=True)
    else:
        store.add_incoming(
            peer="sip:bob@example.com", local="sip:alice@example.com", message_id=mid,
            content_type="text/plain", content=content, report={"authenticity": "verified"},
            at=at, raw=content,
        )
        print("in", mid, flush=True)
    if i % 5 == 0:
        store.log_event("warning-shown", {"n": i}, at=at)
        store.learn_certificate("sip:bob@example.com", mid.encode(), at=at)
        print("cert", mid, flush=True)
"""


def _run_and_kill(profile: Path, prefix: str, kill_after: int, stderr_path: Path) -> list[str]:
    """Run the child, SIGKILL it after ``kill_after`` lines; every line it printed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(profile), prefix],
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO,
            env=env,
        )
    lines: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:  # a thread, so that waiting on the pipe can time out portably
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw.decode().rstrip("\n"))
        lines.put(None)  # end of file: the child is gone

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    seen: list[str] = []
    try:
        while len(seen) < kill_after:
            try:
                line = lines.get(timeout=WAIT)
            except queue.Empty:
                pytest.fail(f"the child printed nothing for {WAIT} s: {stderr_path.read_text()}")
            if line is None:
                pytest.fail(f"the child ended early: {stderr_path.read_text()}")
            seen.append(line)
    finally:
        proc.kill()  # SIGKILL on POSIX
        proc.wait(timeout=WAIT)
    # whatever the child printed before it died counts too
    while True:
        try:
            line = lines.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail("the child's output did not end after it was killed")
        if line is None:
            break
        seen.append(line)
    thread.join(timeout=WAIT)
    if sys.platform != "win32":
        assert proc.returncode == -signal.SIGKILL
    assert seen[0] == "ready"
    return seen[1:]


def _check(profile: Path, reported: list[str]) -> None:
    with sqlite3.connect(profile / DB_FILENAME) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with MessageStore.open(profile) as store:
        assert store.check_integrity() == []
        last_cert = None
        for line in reported:
            what, mid = line.split()
            m = store.message(mid)
            assert m is not None, f"{line!r} was reported done but is not in the store"
            if what == "out":
                assert m.direction == "out"
                assert m.delivery in {"pending", "sent"}
            elif what == "sent":
                assert (m.delivery, m.status) == ("sent", 200), line
            elif what == "in":
                assert m.direction == "in"
                assert m.report == {"authenticity": "verified"}
                assert store.raw(m.rowid) == m.content
                assert store.has_message_id("sip:bob@example.com", mid)
            elif what == "cert":
                last_cert = mid
            assert m.content is not None
            n = int(mid.rsplit("-", 1)[1])
            assert m.content == (b"x" * 200_000 if n % 7 == 0 else f"message {n}".encode())
        if last_cert is not None:
            # the certificate learned last may be a later one (written, not yet printed)
            history = [der.decode() for _, der in store.certificate_history("sip:bob@example.com")]
            assert last_cert in history
            assert store.certificate("sip:bob@example.com").decode() == history[-1]
        # a message reported sent is not re-sent after the restart; the others may be
        sent = {line.split()[1] for line in reported if line.startswith("sent ")}
        assert not sent & {m.message_id for m in store.pending_outgoing()}


@pytest.mark.parametrize("kill_after", [1, 2, 30, 120])
def test_sigkill_loses_nothing_that_was_reported_stored(tmp_path: Path, kill_after: int):
    profile = tmp_path / "profile"
    reported = _run_and_kill(profile, "a", kill_after, tmp_path / "stderr.txt")
    assert len(reported) >= kill_after - 1
    _check(profile, reported)


def test_repeated_sigkills_and_restarts_lose_nothing(tmp_path: Path):
    profile = tmp_path / "profile"
    reported: list[str] = []
    for round_, kill_after in enumerate([25, 40, 15]):
        reported += _run_and_kill(profile, f"r{round_}", kill_after, tmp_path / "stderr.txt")
        _check(profile, reported)
    with MessageStore.open(profile) as store:
        stored = store.count("sip:bob@example.com")
    assert stored >= len({line.split()[1] for line in reported})
