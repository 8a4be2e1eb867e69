"""`messenger demo --screenshot DIR --quit-after SECONDS`: the README's first command, in
its unattended form, as a real process."""

from __future__ import annotations

import os
import subprocess
import sys

from PySide6.QtGui import QImage


def test_demo_screenshot_exchanges_and_saves_two_windows(tmp_path, qapp):
    shots = tmp_path / "shots"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "messenger",
            "demo",
            "--folder",
            str(tmp_path / "demo"),
            "--screenshot",
            str(shots),
            "--quit-after",
            "60",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("alice", "bob"):
        image = QImage(str(shots / f"{name}.png"))
        assert not image.isNull(), name
        assert image.width() >= 640 and image.height() >= 480
    # both agents stored the exchange: one message each way, verified and encrypted
    from messenger.ua.store import MessageStore

    for name, peer in (("alice", "sip:bob@example.test"), ("bob", "sip:alice@example.test")):
        store = MessageStore.open(tmp_path / "demo" / name)
        messages = store.messages(peer)
        store.close()
        assert (
            [m.direction for m in messages] == ["out", "in"]
            if name == "alice"
            else [
                "in",
                "out",
            ]
        )
        received = next(m for m in messages if m.direction == "in")
        assert received.report["confidentiality"] == "encrypted"
        assert received.report["authenticity"] == "verified"


def test_demo_rejects_a_bad_quit_after(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "messenger", "demo", "--quit-after", "0"],
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--quit-after" in done.stderr
