"""baresip as a peer that cannot do S/MIME: it answers 415 (Accept: text/plain) to every
protected MESSAGE. The user must be told why the message was refused and what to do, the
message must be kept as refused, and nothing may be re-sent in clear behind their back."""

from __future__ import annotations

import pytest
from agent_process import Pki, run_send
from peers import LOCALHOST

from messenger.ua.agent import SMIME_CAPABILITY
from messenger.ua.store import MessageStore

BOB = "sip:bob@example.test"  # baresip answers for bob (it takes any Request-URI user)
ALICE = "sip:alice@example.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    p = Pki.create(tmp_path_factory.mktemp("pki"))
    p.identity(ALICE)
    p.identity(BOB)
    return p


def _stored(profile, message_id: str):
    store = MessageStore.open(profile)
    try:
        return store.message(message_id)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("transport", "sign"), [("tcp", True), ("udp", False)], ids=["tcp-signed", "udp-unsigned"]
)
def test_peer_without_smime_refuses_and_the_user_is_told(pki, baresip, tmp_path, transport, sign):
    text = f"a protected hello over {transport}"
    profile = tmp_path / "alice-profile"
    outcome = run_send(
        identity=pki.folder_of(ALICE),
        to=BOB,
        text=text,
        target=f"{LOCALHOST}:{baresip.port}",
        transport=transport,
        encrypt_to=pki.cert_pem(BOB),
        no_sign=not sign,
        trust=[pki.ca_pem],
        profile=profile,
    )
    answer = outcome.answer
    assert outcome.returncode == 1, outcome.describe()
    assert answer is not None, outcome.describe()
    assert answer["status"] == 415, outcome.describe()
    assert answer["delivered"] is False
    assert answer["encrypted"] is True
    words = answer["explanation"]
    # it says what happened (the peer cannot take S/MIME, 415), that nothing went out in
    # clear, and what the user can do; the same words reach stderr
    assert "415" in words and "S/MIME" in words, words
    assert "unprotected" in words, words
    assert "to send anyway" in words, words
    assert words in outcome.stderr

    # the message is kept, marked refused with the status; the peer's capability is known
    stored = _stored(profile, answer["message_id"])
    assert stored is not None, "the refused message is not in the sender's store"
    assert stored.direction == "out"
    assert stored.delivery == "refused", stored
    assert stored.status == 415
    assert stored.text == text
    store = MessageStore.open(profile)
    try:
        assert store.capability(BOB, SMIME_CAPABILITY) is False
    finally:
        store.close()

    # baresip only ever saw the protected form: no silent downgrade to clear text
    log = baresip.log()
    assert "MESSAGE sip:bob@example.test" in log, log[-2000:]
    assert "application/pkcs7-mime" in log
    assert text not in log


def test_the_next_protected_message_reminds_the_user(pki, baresip, tmp_path):
    """A second protected message to the same peer is still not downgraded; the user is
    reminded that this peer refused S/MIME before."""
    profile = tmp_path / "alice-profile"
    outcomes = [
        run_send(
            identity=pki.folder_of(ALICE),
            to=BOB,
            text=f"attempt {n}",
            target=f"{LOCALHOST}:{baresip.port}",
            transport="tcp",
            encrypt_to=pki.cert_pem(BOB),
            trust=[pki.ca_pem],
            profile=profile,
        )
        for n in (1, 2)
    ]
    second = outcomes[1]
    assert second.returncode == 1, second.describe()
    assert second.answer is not None and second.answer["status"] == 415, second.describe()
    assert "415 before" in second.answer["explanation"], second.answer
    assert "attempt 2" not in baresip.log()
