"""The PyInstaller spec in packaging/ builds a one-folder application that starts: it
answers ``--version``, carries the icons and style sheet, and runs the demo (offscreen)
to the point of saving both windows' screenshots."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import messenger

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Path:
    if shutil.which("pyinstaller") is None and not _module_available("PyInstaller"):
        pytest.fail("PyInstaller is missing: it is in the test extra (pip install -e .[test])")
    work = tmp_path_factory.mktemp("pyinstaller")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--distpath",
            str(work / "dist"),
            "--workpath",
            str(work / "build"),
            str(ROOT / "packaging" / "messenger.spec"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=work,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    folder = work / "dist" / "messenger"
    assert (folder / "messenger").is_file()
    return folder


def _module_available(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def test_the_application_answers_version(app: Path) -> None:
    run = subprocess.run(
        [str(app / "messenger"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"messenger {messenger.__version__}"


def test_the_application_carries_its_resources(app: Path) -> None:
    resources = next(app.rglob("resources/style.qss")).parent
    assert (resources / "style.qss").read_bytes() == (ROOT / "resources" / "style.qss").read_bytes()
    icons = {p.name for p in (ROOT / "resources" / "icons").glob("*.svg")}
    assert icons and icons <= {p.name for p in (resources / "icons").glob("*.svg")}


def test_the_application_runs_the_demo(app: Path, tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    run = subprocess.run(
        [str(app / "messenger"), "demo", "--screenshot", str(shots), "--quit-after", "30"],
        capture_output=True,
        text=True,
        timeout=90,
        env=_env(),
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    for name in ("alice.png", "bob.png"):
        png = (shots / name).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
