"""The PKI layer: identities (keys + certificates), a small CA, the trust store and verdicts.

Modules: `verdict` (the words of the trust model), `identity` (keys, certificates, files,
PKCS#12), `authority` (demo CA, CRLs), `trust` (anchors, pins, decisions, `evaluate`),
`errors`. Imports only the standard library, cryptography, asn1crypto and
`messenger.sip.uri`; time is always a parameter.
"""
