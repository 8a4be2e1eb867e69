"""Load benchmark of pager mode: SIPp sends MESSAGEs to one `messenger agent` process.

    python3 tests/bench/bench_pager.py [--rates 100,200,400,500,600,800] [--seconds 3]
    python3 tests/bench/bench_pager.py --hold 500 --seconds 30 [--repeat 3] [--imdn]

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

With ``--hold RATE`` the rate does not rise: each kind is sent at RATE for ``--seconds``
(``--repeat`` times, after a short warm-up that is not counted), and each hold shows its
clean, failed and retransmitted counts, p50/p99, the agent's CPU per message and how busy
the machine was meanwhile (busy: share of all CPUs; other: the part not used by the agent,
SIPp included; both approximate). At the end: how many holds of each kind were clean.

``--imdn`` makes every protected MESSAGE ask for a positive-delivery notification, as the
product's own agents do: the agent then signs and encrypts one IMDN MESSAGE per message
received and sends it over TCP (it is larger than UDP allows) to a SIPp UAS standing for
the sender (its configured contact), so the figures include that work. Without it the
receive path alone is measured.

``--profile-agent FILE`` runs the agent under yappi (every thread, CPU clock; yappi must
be installed) and writes FILE.pstat (open it with ``python -m pstats``) when it stops.

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
sys.path.insert(0, str(HERE.parents[1]))  # this checkout's messenger package

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
    #: share of all CPUs busy during the step, and the part of it not used by the agent
    machine_busy: float | None = None
    others_busy: float | None = None
    #: delivery notifications the sender's UAS answered (with --imdn)
    notified: int | None = None

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


def bodies(kind: str, pki: Pki, count: int, imdn: bool = False) -> tuple[str, list[str]]:
    """The Content-Type and ``count`` base64 bodies (one per MESSAGE); with ``imdn`` each
    protected one asks for a positive-delivery notification."""
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
            # without --imdn no IMDN is asked for: the receive path alone is measured
            disposition=("positive-delivery",) if imdn else (),
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


def machine_busy() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])
    idle = fields[3] + fields[4]
    return (total - idle) / TICKS, total / TICKS


@dataclass
class Imdn:
    """The sender's side of delivery notifications: a SIPp UAS answering them 200, over
    TCP (a signed and encrypted notification is larger than UDP allows)."""

    port: int

    @property
    def contact(self) -> str:
        """Where the agent sends the sender's notifications."""
        return f"tcp:{LOCALHOST}:{self.port}"

    def start(self, count: int, seconds: float, workdir: Path) -> Sipp:
        return Sipp(
            "message_uas.xml",
            workdir=workdir,
            local_port=self.port,
            transport="tcp",
            count=count,
            timeout=seconds + 40,
            trace_msg=False,
            name="imdn-uas",
        ).start()


def run_step(
    kind: str,
    rate: int,
    seconds: float,
    pki: Pki,
    agent: AgentProcess,
    workdir: Path,
    *,
    label: str = "",
    imdn: Imdn | None = None,
) -> Step:
    count = max(1, int(rate * seconds))
    asks = imdn is not None and kind == "protected"
    ctype, rows = bodies(kind, pki, count, imdn=asks)
    stepdir = workdir / f"{kind}-{rate}{label}"
    stepdir.mkdir()
    uas = imdn.start(count, seconds, stepdir) if asks and imdn is not None else None
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
    responses_before = len(agent.of("response"))
    cpu_before = cpu_seconds(agent.pid) if agent.pid else 0.0
    busy_before, all_before = machine_busy()
    started = time.monotonic()
    sipp.start()
    pid = sipp._proc.pid if sipp._proc else None  # the rtt file is named after it
    result = sipp.wait()
    elapsed = time.monotonic() - started
    wait_idle(agent, before_messages + (count if kind == "protected" else 0))
    notified = None
    if uas is not None:
        notified = uas.wait(timeout=30.0).successful
        outcomes: dict[str, int] = {}
        for event in agent.of("response")[responses_before:]:
            key = f"{event.get('status')} {event.get('explanation') or ''}".strip()[:160]
            outcomes[key] = outcomes.get(key, 0) + 1
        if any(not key.startswith("200") for key in outcomes):
            print(f"  notification outcomes: {outcomes}", file=sys.stderr)
    cpu = (cpu_seconds(agent.pid) - cpu_before) if agent.pid else None
    busy_after, all_after = machine_busy()
    values = rtt_values(stepdir, pid)
    span = all_after - all_before
    busy = (busy_after - busy_before) / span if span > 0 else None
    # /proc/stat counts in clock ticks, the agent's time is exact: the difference is
    # approximate, and a negative one means nothing else ran
    others = max(0.0, busy_after - busy_before - (cpu or 0.0)) / span if span > 0 else None
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
        machine_busy=busy,
        others_busy=others,
        notified=notified,
    )


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


HEADER = (
    f"{'kind':<10}{'rate/s':>7}{'sent':>7}{'200':>7}{'failed':>7}{'retrans':>8}"
    f"{'p50 ms':>8}{'p99 ms':>8}{'got/s':>8}{'cpu ms/msg':>11}{'busy':>6}{'other':>6}  clean"
)


def row(step: Step) -> str:
    line = (
        f"{step.kind:<10}{step.rate:>7}{step.sent:>7}{step.successful:>7}"
        f"{step.failed:>7}{step.retransmissions:>8}{fmt(step.p50_ms):>8}"
        f"{fmt(step.p99_ms):>8}{step.achieved_rate:>8.0f}"
        f"{fmt(step.cpu_ms_per_message, '.2f'):>11}"
        f"{fmt(None if step.machine_busy is None else step.machine_busy * 100, '.0f'):>5}%"
        f"{fmt(None if step.others_busy is None else step.others_busy * 100, '.0f'):>5}%"
        f"  {'yes' if step.clean else 'NO'}"
    )
    if step.notified is not None:
        line += f"  (IMDNs answered: {step.notified})"
    return line


#: How the agent's line for a received message starts (one JSON object per line).
MESSAGE_EVENT = b'{"event": "message",'


class BenchAgent(AgentProcess):
    """The agent with its events kept small here: a message event is counted, not kept
    with its report. Tens of thousands of parsed reports would weigh on this process's
    garbage collector, on the same two CPUs as the agent and SIPp."""

    def _event(self, raw: bytes) -> dict | None:
        if raw.startswith(MESSAGE_EVENT):
            return {"event": "message"}
        return super()._event(raw)


class ProfiledAgent(BenchAgent):
    """The agent under yappi: every thread, CPU clock; FILE.pstat written when it stops."""

    def __init__(self, *args, profile_out: Path, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.profile_out = profile_out

    @property
    def argv(self) -> list[str]:
        script = (
            "import atexit, os, runpy, sys, yappi\n"
            "yappi.set_clock_type('cpu')\n"
            "yappi.start(builtins=True)\n"
            "def dump():\n"
            "    yappi.stop()\n"
            f"    yappi.get_func_stats().save({str(self.profile_out) + '.pstat'!r}, 'pstat')\n"
            "atexit.register(dump)\n"
            "sys.argv = ['messenger', *sys.argv[1:]]\n"
            "runpy.run_module('messenger', run_name='__main__', alter_sys=True)\n"
        )
        plain = super().argv
        return [plain[0], "-c", script, *plain[3:]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,200,400,500,600,800")
    parser.add_argument(
        "--seconds", type=float, default=None, help="per rate (default 3), or per hold (30)"
    )
    parser.add_argument("--kinds", default="plain,protected")
    parser.add_argument(
        "--patience",
        type=int,
        default=2,
        help="stop raising a kind's rate after this many unclean rates in a row",
    )
    parser.add_argument("--hold", type=int, help="send at this one rate for --seconds instead")
    parser.add_argument("--repeat", type=int, default=1, help="holds of each kind (--hold)")
    parser.add_argument(
        "--imdn", action="store_true", help="protected MESSAGEs ask for delivery notifications"
    )
    parser.add_argument("--profile-agent", type=Path, help="run the agent under yappi")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    reason = sipp_available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    if args.profile_agent is not None:
        try:
            import yappi  # noqa: F401
        except ImportError:
            print("cannot profile: yappi is not installed (pip install yappi)", file=sys.stderr)
            return 2
    seconds = args.seconds if args.seconds is not None else (30.0 if args.hold else 3.0)
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="bench-pager-"))
    pki = Pki.create(workdir / "pki")
    pki.identity(ALICE)
    pki.identity(BOB)
    imdn = Imdn(free_port("tcp")) if args.imdn else None
    agent_kwargs = dict(
        aor=BOB,
        identity=pki.folder_of(BOB),
        listens=[f"udp:{LOCALHOST}:{free_port('udp')}"],
        trust=[pki.ca_pem],
        crls=[pki.crl_pem],
        contacts={ALICE: imdn.contact} if imdn is not None else None,
    )
    if args.profile_agent is not None:
        agent: AgentProcess = ProfiledAgent(
            workdir / "agent", profile_out=args.profile_agent.resolve(), **agent_kwargs
        )
    else:
        agent = BenchAgent(workdir / "agent", **agent_kwargs)
    agent.start()
    steps: list[Step] = []
    what = f"holds of {seconds:g} s at {args.hold}/s" if args.hold else f"{seconds:g} s per rate"
    print(f"messenger agent pid {agent.pid} on {agent.target()}; {what}")
    if imdn is not None:
        print(f"protected MESSAGEs ask for delivery notifications ({ALICE} at {imdn.contact})")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average before the run: {load} (other work skews figures)")
    try:
        if args.hold:
            # a few seconds of light traffic first: caches and the allocator settle
            warm = [run_step(k, 200, 1.0, pki, agent, workdir, label="-warm") for k in kinds]
            print("warm-up (not counted): " + ", ".join(f"{s.kind} {s.sent}" for s in warm))
            rounds = [(args.hold, f"-{index}") for index in range(args.repeat)]
        else:
            # rates rise for both kinds in turn, so both meet an agent that has run as long
            # (its transaction table holds every request of the last 32 s: Timer J)
            rounds = [(rate, "") for rate in rates]
        print(HEADER)
        unclean = dict.fromkeys(kinds, 0)
        for rate, label in rounds:
            for kind in kinds:
                if not args.hold and unclean[kind] >= args.patience:
                    continue  # overloaded twice already: higher rates only add backlog
                step = run_step(kind, rate, seconds, pki, agent, workdir, label=label, imdn=imdn)
                unclean[kind] = 0 if step.clean else unclean[kind] + 1
                steps.append(step)
                print(row(step), flush=True)
                if not agent.alive():
                    print("the agent died:\n" + agent.describe(), file=sys.stderr)
                    return 1
    finally:
        agent.stop(grace=60.0 if args.profile_agent else 10.0)
    if args.hold:
        summarize_holds(steps, kinds, args.hold)
    else:
        summarize_rates(steps, kinds)
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
    if args.profile_agent is not None:
        print(f"agent profile: {args.profile_agent}.pstat")
    if args.keep:
        print(f"work folder kept: {workdir}")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def summarize_rates(steps: list[Step], kinds: list[str]) -> None:
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
    if "protected" in best:
        goal = "met" if best["protected"] >= 500 else "NOT met"
        print(f"goal >= 500 protected MESSAGEs/s: {goal}")


def summarize_holds(steps: list[Step], kinds: list[str], rate: int) -> None:
    for kind in kinds:
        mine = [s for s in steps if s.kind == kind]
        clean = sum(s.clean for s in mine)
        p99 = [s.p99_ms for s in mine if s.p99_ms is not None]
        print(
            f"{kind}: {clean} of {len(mine)} holds at {rate}/s clean; "
            f"failed {sum(s.failed for s in mine)}, retransmitted "
            f"{sum(s.retransmissions for s in mine)}, worst p99 {fmt(max(p99, default=None))} ms"
        )
    plain = [s.p99_ms for s in steps if s.kind == "plain" and s.p99_ms]
    protected = [s.p99_ms for s in steps if s.kind == "protected" and s.p99_ms]
    if plain and protected:
        print(f"ratio of worst p99, protected / plain: {max(protected) / max(plain):.1f}")


if __name__ == "__main__":
    sys.exit(main())
