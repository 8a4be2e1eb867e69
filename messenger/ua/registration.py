"""Registration of the account's Contact with its registrar (RFC 3261 section 10).

`Registration.start` sends REGISTER (answering 401/407 with digest credentials), then keeps
the binding alive by refreshing it before it expires: at 80% of the granted time, or 10
seconds early for short bindings. `Registration.stop` removes the binding (Expires 0).
Every outcome is an event: `Registered`, `Unregistered`, `RegistrationFailed`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from messenger.net.sip_transport import SipTransportError
from messenger.sip.ids import new_call_id, new_tag
from messenger.sip.message import SipResponse
from messenger.sip.uri import SipUri
from messenger.ua.events import Registered, RegistrationFailed, Unregistered

if TYPE_CHECKING:
    from messenger.ua.agent import UserAgent

__all__ = ["Registration", "refresh_delay"]

#: After a failed refresh, try again after this many seconds.
RETRY_AFTER = 30.0


def refresh_delay(expires: int) -> float:
    """When to refresh a binding granted for ``expires`` seconds."""
    return max(1.0, min(expires * 0.8, expires - 10.0))


class Registration:
    """The binding of one agent's Contact at its registrar."""

    def __init__(self, agent: UserAgent) -> None:
        self.agent = agent
        assert agent.config.registrar is not None
        self.registrar = agent.config.registrar
        registrar = SipUri.parse(self.registrar)
        self.request_uri = f"{registrar.scheme}:{registrar.host}" + (
            f":{registrar.port}" if registrar.port else ""
        )
        self.call_id = new_call_id("messenger.invalid")
        self.from_tag = new_tag()
        self.cseq = 0
        self.expires = 0
        self.registered = False
        self._task: asyncio.Task | None = None

    def _target(self):
        # REGISTER goes to the outbound proxy when there is one, else to the registrar
        return (
            self.agent.route(self.agent.aor, None)[0]
            if self.agent.config.proxy
            else (self.agent._uri_peer(self.registrar, None)[0])
        )

    async def register(self, expires: int) -> SipResponse | None:
        """Send one REGISTER (with digest if challenged); returns the final response."""
        agent = self.agent
        try:
            target = await agent.transport.resolve(self._target())
            await agent.transport.connect(target)
        except SipTransportError as exc:
            agent.emit(
                RegistrationFailed(
                    agent.now(),
                    aor=agent.aor,
                    registrar=self.registrar,
                    status=None,
                    reason=f"the registrar {self.registrar} cannot be reached: {exc}",
                )
            )
            return None
        contact_transport = None if target.transport == "udp" else target.transport
        if contact_transport is not None and contact_transport not in agent.addresses:
            contact_transport = None
        contact = agent.contact_uri(contact_transport, target.host)
        base = self.cseq

        def make(cseq: int, auth: list[tuple[str, str]]):
            self.cseq = base + cseq
            return agent.build_request(
                "REGISTER",
                self.request_uri,
                target,
                to=agent.aor,
                call_id=self.call_id,
                cseq=self.cseq,
                from_tag=self.from_tag,
                headers=[*auth, ("Contact", f"<{contact}>"), ("Expires", str(expires))],
            )

        outcome = await agent.request_with_auth(make, target)
        response = outcome.response
        if response is not None and response.status == 423 and expires:
            # 423 Interval Too Brief: ask again for at least Min-Expires (section 10.2.8)
            minimum = (response.headers.get("Min-Expires") or "").strip()
            if minimum.isdigit() and int(minimum) > expires:
                expires = int(minimum)
                base = self.cseq
                outcome = await agent.request_with_auth(make, target)
                response = outcome.response
        now = agent.now()
        if response is not None and 200 <= response.status < 300:
            if expires == 0:
                self.registered = False
                agent.emit(Unregistered(now, aor=agent.aor, registrar=self.registrar))
                return response
            self.expires = _granted(response, contact, expires)
            self.registered = True
            agent.emit(
                Registered(now, aor=agent.aor, registrar=self.registrar, expires=self.expires)
            )
            return response
        reason = outcome.problem or (
            f"{outcome.status} {outcome.phrase}: the registrar {self.registrar} did not accept "
            f"the registration of {agent.aor}"
        )
        agent.emit(
            RegistrationFailed(
                now,
                aor=agent.aor,
                registrar=self.registrar,
                status=outcome.status or None,
                reason=reason,
            )
        )
        return response

    async def start(self) -> None:
        """Register now and keep the binding refreshed."""
        await self.register(self.agent.config.register_expires)
        self._task = asyncio.ensure_future(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        while True:
            delay = refresh_delay(self.expires) if self.registered else RETRY_AFTER
            await asyncio.sleep(delay)
            with contextlib.suppress(Exception):
                await self.register(self.agent.config.register_expires)

    async def stop(self) -> None:
        """Stop refreshing and remove the binding."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        if self.registered:
            await self.register(0)


def _granted(response: SipResponse, contact: str, asked: int) -> int:
    """The expiry the registrar granted: our Contact's expires parameter, else Expires."""
    from messenger.sip.uri import uri_equal

    for address in response.contacts:
        try:
            if uri_equal(address.uri, contact):
                value = address.param("expires")
                if value is not None and value.isdigit():
                    return int(value)
        except Exception:
            continue
    value = response.headers.get("Expires")
    if value is not None and value.strip().isdigit():
        return int(value.strip())
    return asked
