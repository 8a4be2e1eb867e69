"""Load benchmark of pager mode: SIPp sends MESSAGEs to one `messenger agent` process.

    python3 tests/bench/bench_pager.py [--rates 100,200,400,500,600,800] [--seconds 3]

Two kinds of body, in the same run, against the same agent (UDP on loopback):

* plain:     a 200-byte text/plain body (the baseline);
* protected: the same 200 bytes in CPIM (From, To, DateTime, imdn.Message-ID), signed by
             the sender (certificate included, as on a first contact) and encrypted to the
             agent (AuthEnvelopedData, AES-128-GCM, ECDH P-256): what RFC 8591 puts on
             the wire. Every message has its own imdn.Message-ID (the agent refuses replays).

For each rate SIPp (``message_uac_rate.xml``, ``-r RATE``) sends RATE x SECONDS MESSAGEs;
the table shows whether any transaction failed or was retransmitted (SIPp retransmits
when no answer came within 500 ms), the 50th and 99th percentile response times (SIPp
``-trace_rtt``, 1 ms resolution) and the agent's CPU time per message (from /proc). A rate
is clean when every MESSAGE got its 200 with no failure and no retransmission. At the end:
the highest clean rate of each kind and their ratio (protected / plain).

Needs sipp (Debian sip-tester). Everything runs on 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
INTEROP = HERE.parent / "interop"
sys.path.insert(0, str(INTEROP))

from agent_process import AgentProcess, Pki  # noqa: E402
from peers import LOCALHOST, Sipp, free_port, sipp_available  # noqa: E402

from messenger.im.cpim import CpimMessage, new_message_id  # noqa: E402
from messenger.smime.protect import protect  # noqa: E402

ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"
TEXT = ("RFC 8591 load test. " * 20)[:200].encode()
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Step:
    kind: str
    rate: int
    sent: int
    successful: int
    failed: int
    retransmissions: int
    p50_ms: float | None
    p99_ms: float | None
    achieved_rate: float
    cpu_ms_per_message: float | None
    returncode: int | None

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.retransmissions == 0 and self.successful == self.sent


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def bodies(kind: str, pki: Pki, count: int) -> tuple[str, list[str]]:
    """The Content-Type and ``count`` base64 bodies (one per MESSAGE)."""
    if kind == "plain":
        return "text/plain;charset=utf-8", [base64.b64encode(TEXT).decode()] * count
    alice = pki.identity(ALICE)
    bob_cert = pki.identity(BOB).encryption_certificate
    out = []
    ctype = ""
    for _ in range(count):
        now = datetime.now(UTC)
        cpim = CpimMessage.build(
            ALICE,
            [BOB],
            TEXT,
            "text/plain;charset=utf-8",
            when=now,
            message_id=new_message_id(),
            disposition=(),  # no IMDN asked for: the receive path alone is measured
        )
        entity = protect(
            cpim.to_bytes(),
            content_type="message/cpim",
            signer=alice,
            recipients=[bob_cert],
            signing_time=now,
        )
        ctype = entity.header("Content-Type") or ""
        out.append(base64.b64encode(entity.body).decode())
    return ctype, out


def rtt_values(workdir: Path, pid: int | None) -> list[float]:
    if pid is None:
        return []
    path = workdir / f"message_uac_rate_{pid}_rtt.csv"
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split(";")
        if len(parts) >= 2:
            try:
                out.append(float(parts[1]))
            except ValueError:
                pass
    return out


def wait_idle(agent: AgentProcess, expected_messages: int, timeout: float = 20.0) -> None:
    """Until the agent reported every message (or stopped using CPU) before the next step."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(agent.pid) if agent.pid else 0.0
    while time.monotonic() < deadline:
        if len(agent.of("message")) >= expected_messages:
            return
        time.sleep(0.25)
        now = cpu_seconds(agent.pid) if agent.pid else 0.0
        if now - last < 0.01:
            return
        last = now


def run_step(
    kind: str, rate: int, seconds: float, pki: Pki, agent: AgentProcess, workdir: Path
) -> Step:
    count = max(1, int(rate * seconds))
    ctype, rows = bodies(kind, pki, count)
    stepdir = workdir / f"{kind}-{rate}"
    stepdir.mkdir()
    sipp = Sipp(
        "message_uac_rate.xml",
        workdir=stepdir,
        target=agent.target("udp"),
        count=count,
        rate=rate,
        keys={"content_type": ctype},
        inf_rows=[(BOB, ALICE, b) for b in rows],
        timeout=seconds + 20,
        trace_msg=False,
        extra_args=["-trace_rtt", "-rtt_freq", "1"],
    )
    before_messages = len(agent.of("message"))
    cpu_before = cpu_seconds(agent.pid) if agent.pid else 0.0
    started = time.monotonic()
    sipp.start()
    pid = sipp._proc.pid if sipp._proc else None  # the rtt file is named after it
    result = sipp.wait()
    elapsed = time.monotonic() - started
    wait_idle(agent, before_messages + (count if kind == "protected" else 0))
    cpu = (cpu_seconds(agent.pid) - cpu_before) if agent.pid else None
    values = rtt_values(stepdir, pid)
    return Step(
        kind=kind,
        rate=rate,
        sent=count,
        successful=result.successful,
        failed=result.failed,
        retransmissions=result.retransmissions,
        p50_ms=percentile(values, 50),
        p99_ms=percentile(values, 99),
        achieved_rate=result.successful / elapsed if elapsed > 0 else 0.0,
        cpu_ms_per_message=(cpu * 1000 / count) if cpu is not None else None,
        returncode=result.returncode,
    )


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,200,400,500,600,800")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--kinds", default="plain,protected")
    parser.add_argument(
        "--patience",
        type=int,
        default=2,
        help="stop raising a kind's rate after this many unclean rates in a row",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    reason = sipp_available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="bench-pager-"))
    pki = Pki.create(workdir / "pki")
    pki.identity(ALICE)
    pki.identity(BOB)
    agent = AgentProcess(
        workdir / "agent",
        aor=BOB,
        identity=pki.folder_of(BOB),
        listens=[f"udp:{LOCALHOST}:{free_port('udp')}"],
        trust=[pki.ca_pem],
        crls=[pki.crl_pem],
    )
    agent.start()
    steps: list[Step] = []
    print(f"messenger agent pid {agent.pid} on {agent.target()}; {args.seconds:g} s per rate")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average before the run: {load} (other work skews figures)")
    print(
        f"{'kind':<10}{'rate/s':>7}{'sent':>7}{'200':>7}{'failed':>7}{'retrans':>8}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'got/s':>8}{'cpu ms/msg':>11}  clean"
    )
    try:
        # rates rise for both kinds in turn, so both meet an agent that has run as long
        # (its transaction table holds every request of the last 32 s: Timer J)
        unclean = dict.fromkeys(kinds, 0)
        for rate in rates:
            for kind in kinds:
                if unclean[kind] >= args.patience:
                    continue  # overloaded twice already: higher rates only add backlog
                step = run_step(kind, rate, args.seconds, pki, agent, workdir)
                unclean[kind] = 0 if step.clean else unclean[kind] + 1
                steps.append(step)
                print(
                    f"{step.kind:<10}{step.rate:>7}{step.sent:>7}{step.successful:>7}"
                    f"{step.failed:>7}{step.retransmissions:>8}{fmt(step.p50_ms):>8}"
                    f"{fmt(step.p99_ms):>8}{step.achieved_rate:>8.0f}"
                    f"{fmt(step.cpu_ms_per_message, '.2f'):>11}  {'yes' if step.clean else 'NO'}",
                    flush=True,
                )
                if not agent.alive():
                    print("the agent died:\n" + agent.describe(), file=sys.stderr)
                    return 1
    finally:
        agent.stop()
    best: dict[str, int] = {}
    for kind in kinds:
        # the highest rate below which every rate was clean
        clean = 0
        for step in (s for s in steps if s.kind == kind):
            if not step.clean:
                break
            clean = step.rate
        best[kind] = clean
        any_clean = max((s.rate for s in steps if s.kind == kind and s.clean), default=0)
        print(
            f"highest clean rate, {kind}: {clean}/s (every lower rate clean too); "
            f"highest rate clean at all: {any_clean}/s"
        )
    if "plain" in best and "protected" in best and best["plain"]:
        print(f"ratio protected / plain: {best['protected'] / best['plain']:.2f}")
    cpu = {
        k: [s.cpu_ms_per_message for s in steps if s.kind == k and s.cpu_ms_per_message]
        for k in kinds
    }
    if cpu.get("plain") and cpu.get("protected"):
        plain = min(cpu["plain"])
        protected = min(cpu["protected"])
        print(
            f"agent CPU per message: protected {protected:.2f} ms, plain {plain:.2f} ms "
            f"(ratio {protected / plain:.1f}); one core saturates at about "
            f"{1000 / protected:.0f} protected or {1000 / plain:.0f} plain MESSAGEs/s"
        )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average after the run: {load}")
    if "protected" in best:
        goal = "met" if best["protected"] >= 500 else "NOT met"
        print(f"goal >= 500 protected MESSAGEs/s: {goal}")
    if args.keep:
        print(f"work folder kept: {workdir}")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
