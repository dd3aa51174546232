"""What an outcome means for each recipient (``outcomes.recipient_outcomes``), the
"too many recipients" reply and retry hints: pure decisions, no server, no database."""

from __future__ import annotations

import pytest

from postwire import errors
from postwire._core.envelope import SendResult
from postwire._core.outcomes import (
    RecipientVerdict,
    recipient_outcomes,
    retry_after,
    too_many_recipients,
)
from postwire._core.reply import Reply, parse_enhanced_status

D, F, B, U = (
    RecipientVerdict.DELIVERED,
    RecipientVerdict.DEFERRED,
    RecipientVerdict.BOUNCED,
    RecipientVerdict.UNCERTAIN,
)
RCPTS = ["a@x.test", "b@x.test", "c@x.test"]


def reply(code: int, text: str) -> Reply:
    return Reply(code, (text,), parse_enhanced_status(code, text))


OK = reply(250, "2.0.0 queued as 1")


def verdicts(outcome: object) -> list[RecipientVerdict]:
    found = recipient_outcomes(RCPTS, outcome)
    assert list(found) == RCPTS
    return [found[r].verdict for r in RCPTS]


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (SendResult(RCPTS, {}, OK), [D, D, D]),
        (
            SendResult(
                ["a@x.test"],
                {
                    "b@x.test": reply(550, "5.1.1 no such user"),
                    "c@x.test": reply(450, "4.2.0 busy"),
                },
                OK,
            ),
            [D, B, F],
        ),
        (
            errors.RecipientsRefused(
                {r: reply(550, "5.1.1 unknown") for r in RCPTS[:2]} | {"c@x.test": reply(451, "x")}
            ),
            [B, B, F],
        ),
        (errors.SenderRefused("MAIL", reply(553, "5.7.1 sender not allowed")), [B, B, B]),
        (errors.SenderRefused("MAIL", reply(451, "4.3.0 later")), [F, F, F]),
        (errors.DataError("end of data", reply(554, "5.6.0 spam")), [B, B, B]),
        (errors.DataError("DATA", reply(452, "4.3.1 out of disk")), [F, F, F]),
        (
            errors.PossiblyDelivered("connection lost after the end of data", step="end of data"),
            [U, U, U],
        ),
        (errors.ServerDisconnected("dropped before the end of data", step="DATA"), [F, F, F]),
        (errors.ServerDisconnected("421", reply=reply(421, "4.3.2 bye"), step="RCPT"), [F, F, F]),
        (errors.Timeout("no reply", step="MAIL"), [F, F, F]),
        (errors.ConnectError("refused", step="connect"), [F, F, F]),
        (errors.CancelledSend("lease lost", step="DATA"), [F, F, F]),
        # Session-level refusals are about the relay, not this message: never a bounce.
        (errors.GreetingError("greeting", reply(554, "5.3.2 no service")), [F, F, F]),
        (errors.AuthenticationError("AUTH", reply(535, "5.7.8 bad credentials")), [F, F, F]),
        (errors.TLSRequired("no STARTTLS", step="STARTTLS"), [F, F, F]),
        (errors.ExtensionNotSupported("no AUTH offered", step="AUTH"), [F, F, F]),
        # This message cannot go through this server as it is.
        (errors.MessageTooLarge("too large for SIZE", step="MAIL"), [B, B, B]),
        (errors.ExtensionNotSupported("needs SMTPUTF8", step="MAIL"), [B, B, B]),
        (ValueError("bad address"), [B, B, B]),
    ],
)
def test_recipient_verdicts(outcome: object, expected: list[RecipientVerdict]) -> None:
    assert verdicts(outcome) == expected


def test_each_recipient_keeps_the_reply_that_decided_it() -> None:
    no_user = reply(550, "5.1.1 no such user")
    found = recipient_outcomes(RCPTS[:2], SendResult(["a@x.test"], {"b@x.test": no_user}, OK))
    assert found["a@x.test"].reply == OK
    assert found["b@x.test"].reply == no_user
    lost = recipient_outcomes(RCPTS[:1], errors.PossiblyDelivered("lost", step="end of data"))
    assert lost["a@x.test"].reply is None and "lost" in lost["a@x.test"].error


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (452, "4.5.3 Too many recipients", True),
        (452, "4.5.3 Error: too many recipients", True),
        (452, "Too many recipients received this hour", True),
        # RFC 5321 §4.5.3.1.10: a 552 for this reason is to be treated as temporary.
        (552, "5.5.3 Too many recipients", True),
        (452, "4.3.1 Insufficient system storage", False),
        (552, "5.3.4 Message size exceeds fixed limit", False),
        (451, "4.5.3 too many recipients", False),
    ],
)
def test_too_many_recipients(code: int, text: str, expected: bool) -> None:
    assert too_many_recipients(reply(code, text)) is expected


def test_too_many_recipients_defers_at_once_even_as_552() -> None:
    result = SendResult(
        ["a@x.test"], {r: reply(552, "5.5.3 Too many recipients") for r in RCPTS[1:]}
    )
    found = recipient_outcomes(RCPTS, result)
    assert [found[r].verdict for r in RCPTS] == [D, F, F]
    assert [found[r].too_many for r in RCPTS] == [False, True, True]


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (450, "4.7.1 Greylisted, please try again in 300 seconds", 300.0),
        (451, "4.7.1 Try again in 5 minutes", 300.0),
        (421, "4.7.0 retry after 2h", 7200.0),
        (450, "4.2.0 mailbox busy", None),
        (550, "5.7.1 try again in 5 minutes", None),  # a 5xx is final whatever it says
    ],
)
def test_retry_after(code: int, text: str, expected: float | None) -> None:
    assert retry_after(reply(code, text)) == expected
    assert retry_after(None) is None
