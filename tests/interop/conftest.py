"""Fixtures for the interop tests: real peers on loopback, each on free ports, bounded.

    kamailio         module-scoped registrar + proxy, no auth          (peers.Kamailio)
    kamailio_auth    module-scoped, digest auth on REGISTER (401) and MESSAGE (407),
                     realm example.test, users/passwords in .users
    kamailio_msrp    module-scoped, no auth, plus the RFC 4976 MSRP relay on .msrp_port
    sipp             factory: sipp(scenario, **Sipp kwargs) -> peers.Sipp (not started);
                     every instance is stopped at teardown; workdir is the test's tmp_path
    baresip          a started peers.Baresip (direct mode, 415 for non-text bodies)
    loopback_capture factory: loopback_capture(*ports) -> started peers.LoopbackCapture

Each Kamailio object has .udp_port, .tcp_port, .msrp_port, .domain, .users, .realm,
.aor(user), .log(). Registrations live as long as the module's Kamailio: use distinct
AoRs per test or unregister. A missing binary skips with a reason that names it; CI
installs all of them. When a test fails, the logs of the peers it used are attached to
the report.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import peers  # noqa: E402  (tests/interop/peers.py, found through the line above)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.interop)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for name in ("kamailio", "kamailio_auth", "kamailio_msrp", "baresip"):
        peer = item.funcargs.get(name) if hasattr(item, "funcargs") else None
        if peer is not None and hasattr(peer, "log"):
            report.sections.append((f"{name} log (tail)", peers._tail(peer.log(), 80)))
    factory = item.funcargs.get("sipp") if hasattr(item, "funcargs") else None
    for s in getattr(factory, "instances", []):
        try:
            res = s.stop()
        except Exception as exc:  # pragma: no cover - diagnostics only
            report.sections.append((f"sipp {s.name}", f"could not collect: {exc}"))
            continue
        if res is not None:
            report.sections.append((f"sipp {s.name}", res.describe(20)))


def _kamailio(tmp_path_factory, name: str, **kw):
    reason = peers.kamailio_available(msrp=kw.get("msrp", False), auth=kw.get("auth", False))
    if reason:
        pytest.skip(reason)
    k = peers.Kamailio(tmp_path_factory.mktemp(name), **kw)
    k.start(timeout=10)
    return k


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory):
    k = _kamailio(tmp_path_factory, "kamailio")
    yield k
    k.stop()


@pytest.fixture(scope="module")
def kamailio_auth(tmp_path_factory):
    k = _kamailio(tmp_path_factory, "kamailio-auth", auth=True)
    yield k
    k.stop()


@pytest.fixture(scope="module")
def kamailio_msrp(tmp_path_factory):
    k = _kamailio(tmp_path_factory, "kamailio-msrp", msrp=True)
    yield k
    k.stop()


class _SippFactory:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.instances: list[peers.Sipp] = []

    def __call__(self, scenario, **kw) -> peers.Sipp:
        kw.setdefault("workdir", self.workdir)
        s = peers.Sipp(scenario, **kw)
        self.instances.append(s)
        return s

    def message(self, target, **kw) -> peers.Sipp:
        kw.setdefault("workdir", self.workdir)
        s = peers.Sipp.message(target, **kw)
        self.instances.append(s)
        return s

    def register(self, registrar, **kw) -> peers.Sipp:
        kw.setdefault("workdir", self.workdir)
        s = peers.Sipp.register(registrar, **kw)
        self.instances.append(s)
        return s

    def close(self) -> None:
        for s in self.instances:
            s.stop()


@pytest.fixture
def sipp(tmp_path):
    reason = peers.sipp_available()
    if reason:
        pytest.skip(reason)
    f = _SippFactory(tmp_path)
    yield f
    f.close()


@pytest.fixture
def baresip(tmp_path):
    reason = peers.baresip_available()
    if reason:
        pytest.skip(reason)
    b = peers.Baresip(tmp_path / "baresip-peer")
    b.start(timeout=10)
    yield b
    b.stop()


@pytest.fixture
def loopback_capture():
    reason = peers.loopback_capture_available()
    if reason:
        pytest.skip(reason)
    started: list[peers.LoopbackCapture] = []

    def make(*ports: int) -> peers.LoopbackCapture:
        c = peers.LoopbackCapture(ports).start()
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop()
