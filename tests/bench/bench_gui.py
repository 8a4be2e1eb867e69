"""Benchmark of the window, printed as ratios against baselines measured in the same run.

    QT_QPA_PLATFORM=offscreen python3 tests/bench/bench_gui.py [--quick]

1. Time from process start to the first window shown: the messenger (its real start-up
   path: application, profile, identity, user agent on loopback, main window) against a
   bare PySide6 QMainWindow, each a fresh process, median of several runs.
2. Opening a conversation of 100,000 stored messages (model, view layout and first paint)
   against opening one of 100 messages: time, and memory (Python allocations traced while
   opening, and the growth of the process's resident set).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

BARE = r"""
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
window = QMainWindow()
window.resize(900, 640)
window.show()
def shown():
    print("shown", flush=True)
    app.quit()
QTimer.singleShot(0, shown)
app.exec()
"""

MESSENGER = r"""
import asyncio, sys
from pathlib import Path
from messenger.gui.app import create_application, run_on_qt_loop
from messenger.ua.profile import IDENTITY_DIR, account_config, load_settings
from messenger.pki.identity import load_identity

folder = Path(sys.argv[1])
app = create_application()
settings = load_settings(folder)
identity = load_identity(folder / IDENTITY_DIR, None)
config = account_config(folder, settings, identity)

async def main():
    from messenger.gui.agent_bridge import AgentBridge
    from messenger.gui.main_window import MainWindow
    from messenger.ua.agent import UserAgent
    agent = UserAgent(config)
    await agent.start()
    window = MainWindow(AgentBridge(agent), contacts=list(settings.contacts),
                        profile=folder, settings=settings)
    window.show()
    await asyncio.sleep(0)  # one turn of the loop: the window is shown and painted
    print("shown", flush=True)
    window.close()
    await agent.stop()
    return 0

sys.exit(run_on_qt_loop(app, main()))
"""


def _profile(folder: Path) -> None:
    from messenger.pki.identity import create_identity, save_identity
    from messenger.ua.profile import IDENTITY_DIR, AccountSettings, save_settings

    identity = create_identity("sip:alice@example.test", now=datetime.now(UTC))
    save_identity(identity, folder / IDENTITY_DIR, None)
    save_settings(
        folder,
        AccountSettings(
            aor="sip:alice@example.test",
            listen=["udp:127.0.0.1:0", "tcp:127.0.0.1:0"],
            contacts={"sip:bob@example.test": "tcp:127.0.0.1:9"},
        ),
    )


def time_to_shown(script: str, args: list[str], pycache: Path) -> float:
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    # as installed: compiled bytecode is cached (in a private folder, not in the tree)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.wait(timeout=60)
    if line.strip() != "shown" or proc.returncode != 0:
        raise SystemExit(f"the start-up run failed (exit {proc.returncode}, said {line!r})")
    return elapsed


def startup(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _profile(folder)
        pycache = folder / "pycache"
        time_to_shown(BARE, [], pycache)  # warm-up: bytecode cache and file cache
        time_to_shown(MESSENGER, [str(folder)], pycache)
        bare, ours = [], []
        for _ in range(rounds):  # interleaved, so both see the same machine load
            bare.append(time_to_shown(BARE, [], pycache))
            ours.append(time_to_shown(MESSENGER, [str(folder)], pycache))
    b, m = statistics.median(bare), statistics.median(ours)
    print(f"1. process start to first window shown (median of {rounds} runs)")
    print(f"   bare PySide6 window     {b * 1000:8.0f} ms")
    print(f"   messenger window        {m * 1000:8.0f} ms")
    print(f"   ratio                   {m / b:8.2f}x")


def _rss_kb() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_conversation(count: int, folder: Path) -> tuple[float, int, int, int]:
    """(seconds, traced peak bytes, RSS growth KiB, rows loaded) to open `count` messages."""
    from PySide6.QtWidgets import QApplication

    from messenger.gui.conversation_model import ConversationModel
    from messenger.gui.main_window import ConversationView
    from messenger.ua.store import MessageStore

    peer = "sip:alice@example.test"
    store = MessageStore.open(folder)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    report = {
        "confidentiality": "encrypted",
        "authenticity": "verified",
        "layers": ["authEnveloped-data", "signed-data"],
        "reason": "Signed by sip:alice@example.test, certificate issued by Demo CA.",
    }
    store.bulk_add_incoming(
        {
            "peer": peer,
            "local": "sip:bob@example.test",
            "message_id": f"id{i}",
            "content_type": "text/plain",
            "content": f"message number {i}: a line of ordinary chat text".encode(),
            "report": report,
            "at": start + timedelta(seconds=i),
        }
        for i in range(count)
    )
    app = QApplication.instance()
    warm = ConversationModel(store)  # fonts, icons and delegate code loaded once
    warm_view = ConversationView(warm)
    warm.set_peer(peer)
    warm_view.viewport().grab()
    warm_view.close()
    model = ConversationModel(store)
    view = ConversationView(model)
    view.resize(700, 600)
    view.show()
    app.processEvents()
    gc.collect()
    rss = _rss_kb()
    tracemalloc.start()
    t0 = time.perf_counter()
    model.set_peer(peer)
    view.scrollToBottom()
    view.viewport().grab()  # layout and first paint
    app.processEvents()
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    grown = _rss_kb() - rss
    rows = model.rowCount()
    view.close()
    store.close()
    return elapsed, peak, grown, rows


def conversation(quick: bool) -> None:
    from messenger.gui.app import create_application

    create_application()
    big = 20_000 if quick else 100_000
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        small_t, small_peak, small_rss, small_rows = open_conversation(100, Path(a))
        big_t, big_peak, big_rss, big_rows = open_conversation(big, Path(b))
    print("2. opening a conversation (model, layout, first paint)")
    print(
        f"   100 messages            {small_t * 1000:8.1f} ms, traced peak "
        f"{small_peak / 1024:7.0f} KiB, RSS +{small_rss} KiB, {small_rows} rows loaded"
    )
    print(
        f"   {big:,} messages      {big_t * 1000:8.1f} ms, traced peak "
        f"{big_peak / 1024:7.0f} KiB, RSS +{big_rss} KiB, {big_rows} rows loaded"
    )
    print(f"   ratio (time)            {big_t / small_t:8.2f}x for {big // 100}x the messages")
    print(f"   ratio (traced memory)   {big_peak / max(1, small_peak):8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds, 20,000 messages")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    startup(3 if args.quick else 7)
    conversation(args.quick)


if __name__ == "__main__":
    main()
