"""DKIM through the outbox (issue 14, item 1): what a worker sends is signed over its wire bytes.

The messages are stored unsigned; the worker signs each attempt as the client does, with
``client_options={"dkim": ...}``, an account's ``dkim_*`` settings (an entry's route), or
``postwire outbox work --dkim-*``.  OpenDKIM, the test Postfix's milter, gives the verdict
(tests/servers/opendkim.py), from the copies Dovecot delivered.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from postwire import DKIMSigner
from postwire.outbox import Outbox, State
from servers.opendkim import DOMAIN, DkimVerifier, dkim_verdicts
from servers.postfix import PostfixServer

SENDER = f"queue@{DOMAIN}"
RCPT = "reader@test.example"


def _raw(n: int) -> bytes:
    # Bare LF endings and a dotted line: the signature must cover the normalized, stuffed form.
    return (
        f"From: Queue <{SENDER}>\nTo: {RCPT}\nSubject: queued {n}\n\n"
        f"line one of {n}\n.a dotted line\n"
    ).encode()


def _relay(postfix: PostfixServer) -> str:
    return f"smtp+starttls://{postfix.host}:{postfix.dkim_port}"


def test_a_worker_signs_every_message_with_the_given_signer(
    postfix_inbox: PostfixServer, dkim_oracle: DkimVerifier, outbox_url: str
) -> None:
    signer = DKIMSigner.from_file(dkim_oracle.key_files["ed"], DOMAIN, "ed")
    with Outbox(outbox_url) as outbox:
        entries = outbox.put_many([(_raw(n), SENDER, [RCPT]) for n in range(3)])
        stats = outbox.work(
            relay=_relay(postfix_inbox),
            until_empty=True,
            concurrency=2,
            client_options={"dkim": signer, "cafile": str(postfix_inbox.ca_file)},
        )
        assert stats["delivered"] == 3
        assert {outbox.get(e.id).state for e in entries} == {State.SENT}
    delivered = postfix_inbox.wait_for_messages(3, timeout=30)
    assert [dkim_verdicts(m) for m in delivered] == [["pass"]] * 3
    # The Message-ID the outbox added at put is the one that was signed and delivered.
    ids = {e.message_id.encode() for e in entries}
    assert all(any(i in m for i in ids) for m in delivered)


def test_a_route_signs_with_its_accounts_dkim_settings(
    postfix_inbox: PostfixServer, dkim_oracle: DkimVerifier, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""\
[accounts.signed]
server = "{postfix_inbox.host}:{postfix_inbox.dkim_port}"
tls = "starttls"
cafile = "{postfix_inbox.ca_file}"
dkim_key = "{dkim_oracle.key_files["rsa"]}"
dkim_selector = "rsa"
dkim_domain = "{DOMAIN}"

[accounts.plain]
server = "{postfix_inbox.host}:{postfix_inbox.dkim_port}"
tls = "starttls"
cafile = "{postfix_inbox.ca_file}"
""",
        encoding="utf-8",
    )
    with Outbox(f"sqlite:///{tmp_path}/o.sqlite3") as outbox:
        signed = outbox.put(_raw(1), sender=SENDER, recipients=[RCPT], route="signed")
        plain = outbox.put(_raw(2), sender=SENDER, recipients=[RCPT], route="plain")
        stats = outbox.work(config=str(config), until_empty=True)
        assert stats["delivered"] == 2
    by_id = {e.message_id.encode(): e for e in (signed, plain)}
    verdicts = {}
    for message in postfix_inbox.wait_for_messages(2, timeout=30):
        (message_id,) = [i for i in by_id if i in message]
        verdicts[by_id[message_id].route] = dkim_verdicts(message)
    # The other account signs nothing: OpenDKIM finds no signature ("none", RFC 8601 §2.7.1).
    assert verdicts == {"signed": ["pass"], "plain": ["none"]}


def test_outbox_work_dkim_options(
    postfix_inbox: PostfixServer, dkim_oracle: DkimVerifier, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path}/o.sqlite3"
    with Outbox(db) as outbox:
        outbox.put(_raw(7), sender=SENDER, recipients=[RCPT])
    env = {**os.environ, "POSTWIRE_CONFIG": str(tmp_path / "none.toml")}
    done = subprocess.run(
        [sys.executable, "-m", "postwire", "outbox", "work", "--db", db, "--until-empty",
         "--relay", _relay(postfix_inbox), "--cafile", str(postfix_inbox.ca_file),
         "--dkim-key", str(dkim_oracle.key_files["rsa1"]), "--dkim-selector", "rsa1",
         "--dkim-domain", DOMAIN, "--dkim-canonicalization", "relaxed/simple", "--json"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (delivered,) = postfix_inbox.wait_for_messages(1, timeout=30)
    assert dkim_verdicts(delivered) == ["pass"]
    assert b"c=relaxed/simple" in delivered
    # A key that cannot be used is a configuration error (78), before any delivery.
    broken = subprocess.run(
        [sys.executable, "-m", "postwire", "outbox", "work", "--db", db, "--until-empty",
         "--relay", _relay(postfix_inbox), "--dkim-key", str(tmp_path / "missing.pem"),
         "--dkim-selector", "x", "--dkim-domain", DOMAIN],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert broken.returncode == 78, broken.stderr
    assert "missing.pem" in broken.stderr
