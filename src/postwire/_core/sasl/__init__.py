"""SASL client mechanisms for SMTP AUTH (RFC 4954), as pure objects.

A mechanism turns the server's challenges into the client's responses; the
SMTP core moves the lines.  The driving loop is::

    mech = choose_mechanism(extensions.auth, username=u, password=p)
    ir = mech.initial_response()        # None, or bytes for the AUTH line
    send("AUTH " + mech.name + ("" if ir is None else " " + encode_payload(ir)))
    while reply.code == 334:            # a SASLError here means: send CANCEL ("*")
        send(encode_response(mech.respond(decode_challenge(reply.text))))
    if reply.code == 235:
        mech.verify_success(None)       # SCRAM: was the server's signature checked?

Credentials never appear in a mechanism's ``repr()`` nor in the text of any
exception raised here.

One concept per module: ``framing`` (the base64 lines of RFC 4954 §4),
``text`` (checks and escapes for credential text), ``saslprep`` (RFC 4013),
``mechanism`` (the base class), ``password`` (PLAIN, LOGIN, CRAM-MD5),
``oauth`` (XOAUTH2, OAUTHBEARER), ``scram`` (SCRAM-SHA-256) and ``choice``
(which mechanism to use).
"""

from __future__ import annotations

from .choice import STRENGTH, SUPPORTED, choose_mechanism
from .framing import CANCEL, decode_challenge, encode_payload, encode_response
from .mechanism import MAX_CHALLENGES, Mechanism
from .oauth import OAuthBearer, XOAuth2
from .password import CramMD5, Login, Plain
from .saslprep import saslprep
from .scram import MAX_SCRAM_ITERATIONS, ScramSHA256
from .text import check_credential

__all__ = [
    "CANCEL",
    "MAX_CHALLENGES",
    "MAX_SCRAM_ITERATIONS",
    "STRENGTH",
    "SUPPORTED",
    "CramMD5",
    "Login",
    "Mechanism",
    "OAuthBearer",
    "Plain",
    "ScramSHA256",
    "XOAuth2",
    "check_credential",
    "choose_mechanism",
    "decode_challenge",
    "encode_payload",
    "encode_response",
    "saslprep",
]
