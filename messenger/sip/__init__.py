"""The sans-IO SIP core: URIs, messages, framing, transactions, dialogs, SDP and digest auth.

Stdlib only. Nothing here opens a socket, awaits, or reads the clock: time (``now``, in
seconds) and randomness (``rng``) are parameters. Modules:

* `messenger.sip.uri` - SIP/SIPS URIs and the one RFC 3261 section 19.1.4 comparison
* `messenger.sip.message` - `SipRequest`, `SipResponse`, `parse_message`
* `messenger.sip.headers`, `messenger.sip.address` - header multidict, Via, CSeq, name-addr
* `messenger.sip.framing` - `StreamFramer` for TCP/TLS, CRLF keep-alives
* `messenger.sip.transaction`, `messenger.sip.events` - transactions, timers, events
* `messenger.sip.invite` - INVITE transactions (timers A, B, D, G, H, I, L, M), ACK, CANCEL
* `messenger.sip.dialog` - dialogs: route sets, CSeq, in-dialog requests, `build_invite`
* `messenger.sip.sdp` - SDP and the MSRP offer/answer (path, accept-types, setup)
* `messenger.sip.digest` - Digest authentication (RFC 7616 / 2617)
* `messenger.sip.ids` - branches, tags, Call-IDs
* `messenger.sip.errors` - `SipError` and its subclasses
"""
