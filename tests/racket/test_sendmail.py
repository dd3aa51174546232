"""postwire.sendmail against a scripted fake sendmail that records its argv and stdin.

The fake is a small Python script written into a temporary directory as ``sendmail``; it
writes ``argv.json`` at once, ``stdin.bin`` after reading its whole input, and then exits
with the status and stderr text it was written with.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import postwire.racket.sendmail.program as sendmail_lookup
import postwire.sendmail as sm
from postwire.errors import SendmailError
from postwire.sendmail import (
    X_MAILER,
    SendmailSignature,
    encode_for_header,
    find_sendmail,
    run_sendmail,
    send_mail_message,
    send_mail_message_port,
    sendmail_program,
    sendmail_unit,
)

MAILER = f"X-Mailer: {X_MAILER}\n".encode()

_FAKE = """#!{python}
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "argv.json"), "w") as f:
    json.dump(sys.argv[1:], f)
time.sleep({sleep_before_read})
if {read}:
    data = sys.stdin.buffer.read()
    with open(os.path.join(here, "stdin.bin"), "wb") as f:
        f.write(data)
time.sleep({sleep_after_read})
sys.stderr.write({stderr!r})
sys.exit({status})
"""


class Fake:
    """A fake sendmail in ``directory`` and what it recorded."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "sendmail"

    @property
    def ran(self) -> bool:
        return (self.directory / "argv.json").exists()

    @property
    def argv(self) -> list[str]:
        result: list[str] = json.loads((self.directory / "argv.json").read_text("utf-8"))
        return result

    @property
    def stdin(self) -> bytes:
        return (self.directory / "stdin.bin").read_bytes()

    @property
    def got_stdin(self) -> bool:
        return (self.directory / "stdin.bin").exists()


def make_fake(
    directory: Path,
    *,
    status: int = 0,
    stderr: str = "",
    read: bool = True,
    sleep_before_read: float = 0.0,
    sleep_after_read: float = 0.0,
    mode: int = 0o755,
) -> Fake:
    directory.mkdir(parents=True, exist_ok=True)
    fake = Fake(directory)
    fake.path.write_text(
        _FAKE.format(
            python=sys.executable,
            read=read,
            stderr=stderr,
            status=status,
            sleep_before_read=sleep_before_read,
            sleep_after_read=sleep_after_read,
        ),
        encoding="utf-8",
    )
    fake.path.chmod(mode)
    return fake


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[Fake]:
    """A well-behaved fake sendmail, installed through the ``sendmail_program`` parameter."""
    f = make_fake(tmp_path / "fake")
    with sendmail_program.parameterize(f.path):
        yield f


@pytest.fixture
def no_sendmail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No sendmail anywhere: an empty search path directory and an empty PATH directory."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(sendmail_lookup, "sendmail_search_path", (str(empty),))
    monkeypatch.setenv("PATH", str(empty))
    return empty


# -- argv ---------------------------------------------------------------------------------


def test_argv_is_dash_i_double_dash_then_all_recipients(fake: Fake) -> None:
    send_mail_message(
        "me@test.example",
        "Hi",
        ["a@test.example", "b@test.example"],
        ["c@test.example"],
        ["d@test.example"],
        ["body"],
    )
    assert fake.argv == [
        "-i",
        "--",
        "a@test.example",
        "b@test.example",
        "c@test.example",
        "d@test.example",
    ]


def test_argv_recipients_are_not_rfc2047_encoded(fake: Fake) -> None:
    send_mail_message(None, "s", ["Jöhn <j@test.example>"], [], ["Ωmega <o@test.example>"], [])
    assert fake.argv == ["-i", "--", "Jöhn <j@test.example>", "Ωmega <o@test.example>"]
    # ...while the To header is encoded.
    assert b"To: =?ISO-8859-1?Q?J=F6hn?= <j@test.example>\n" in fake.stdin


# -- the bytes on stdin ---------------------------------------------------------------------


def test_exact_message_bytes(fake: Fake) -> None:
    send_mail_message(
        "Me <me@test.example>",
        "Greetings",
        ["a@test.example", "b@test.example"],
        ["c@test.example"],
        ["secret@test.example"],
        ["line one", "", "line three"],
        "X-Extra: 1",
        "Reply-To: r@test.example",
    )
    assert fake.stdin == (
        MAILER + b"From: Me <me@test.example>\n"
        b"To: a@test.example, b@test.example\n"
        b"CC: c@test.example\n"
        b"Subject: Greetings\n"
        b"X-Extra: 1\n"
        b"Reply-To: r@test.example\n"
        b"\n"
        b"line one\n"
        b"\n"
        b"line three\n"
    )


def test_bcc_is_never_written(fake: Fake) -> None:
    send_mail_message("me@x", "s", [], [], ["hidden@test.example"], ["b"])
    assert b"hidden" not in fake.stdin
    assert b"bcc" not in fake.stdin.lower()
    assert b"To:" not in fake.stdin and b"CC:" not in fake.stdin
    assert fake.argv == ["-i", "--", "hidden@test.example"]


def test_no_from_line_when_from_is_none_and_subject_always_written(fake: Fake) -> None:
    send_mail_message(None, "", ["a@test.example"], [], [], [])
    assert fake.stdin == MAILER + b"To: a@test.example\nSubject: \n\n"


def test_empty_from_is_written_as_racket_does(fake: Fake) -> None:
    send_mail_message("", "s", ["a@x"], [], [], [])
    assert fake.stdin.splitlines()[1] == b"From: "


def test_body_lines_are_not_dot_stuffed_and_end_in_lf(fake: Fake) -> None:
    send_mail_message("me@x", "s", ["a@x"], [], [], [".", "..", ".hidden", "end"])
    assert fake.stdin.endswith(b"\n\n.\n..\n.hidden\nend\n")
    assert b"\r" not in fake.stdin


def test_recipient_folding_at_column_78(fake: Fake) -> None:
    r30 = "a" * 20 + "@test.exam"  # 30 characters
    assert len(r30) == 30
    send_mail_message(None, "s", [r30, r30, r30, r30], [], [], [])
    # "To: " + 30 = 34; +2+30 = 66 fits; 66+2+30 = 98 > 78 folds; then 34 again.
    assert f"To: {r30}, {r30},\n    {r30}, {r30}\n".encode() in fake.stdin


def test_folding_boundary_is_strictly_greater_than_78(fake: Fake, tmp_path: Path) -> None:
    first = "f" * 36  # "CC: " + 36 = column 40
    fits = "x" * 36  # 40 + 2 + 36 = 78: no fold
    send_mail_message(None, "s", [], [first, fits], [], [])
    assert f"CC: {first}, {fits}\n".encode() in fake.stdin

    other = make_fake(tmp_path / "other")
    with sendmail_program.parameterize(other.path):
        send_mail_message(None, "s", [], [first, fits + "y"], [], [])  # 79: folds
    assert f"CC: {first},\n    {fits}y\n".encode() in other.stdin


def test_folding_counts_columns_after_an_encoded_fold(fake: Fake) -> None:
    long_name = "é" * 80  # Latin-1: two encoded words joined by "\n "
    first = f"{long_name} <l@x>"
    encoded = encode_for_header(first)
    assert "\n " in encoded
    # The column after the first recipient is that of its last line, so "b@x" fits.
    send_mail_message(None, "s", [first, "b@x"], [], [], [])
    assert f"To: {encoded}, b@x\n".encode() in fake.stdin


def test_header_values_are_rfc2047_encoded(fake: Fake) -> None:
    send_mail_message(
        "Jöhn Doe <j@test.example>",
        "Grüße aus Köln",
        ["Zoë <z@test.example>"],
        ["日本 <n@test.example>"],
        [],
        [],
    )
    lines = fake.stdin.decode("ascii").split("\n")
    assert lines[1] == "From: =?ISO-8859-1?Q?J=F6hn?= Doe <j@test.example>"
    assert lines[2] == "To: =?ISO-8859-1?Q?Zo=EB?= <z@test.example>"
    assert lines[3] == "CC: =?UTF-8?B?5pel5pys?= <n@test.example>"
    assert lines[4] == "Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?="


def test_long_non_ascii_subject_is_split_into_encoded_words(fake: Fake) -> None:
    subject = "€" * 30  # 90 bytes of UTF-8: 70 + 20
    send_mail_message(None, subject, ["a@x"], [], [], [])
    raw = subject.encode()
    expected = f"Subject: =?UTF-8?B?{_b64(raw[:70])}?=\n =?UTF-8?B?{_b64(raw[70:])}?=\n".encode()
    assert expected in fake.stdin


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_port_writes_body_and_close_waits(fake: Fake) -> None:
    port = send_mail_message_port("me@x", "s", ["a@x"], [], [])
    port.write("one\n")
    print("two", file=port)
    port.writelines(["three\n", "ünïcode\n"])
    assert not fake.got_stdin
    port.close()
    # close() returned only after the fake read everything and exited.
    assert fake.stdin.endswith("\n\none\ntwo\nthree\nünïcode\n".encode())
    assert port.closed
    port.close()  # a second close is harmless


def test_port_as_context_manager(fake: Fake) -> None:
    with send_mail_message_port("me@x", "s", ["a@x"], ["c@x"], [], "X-A: b") as port:
        port.write("body\n")
    assert fake.stdin == MAILER + b"From: me@x\nTo: a@x\nCC: c@x\nSubject: s\nX-A: b\n\nbody\n"


def test_port_does_not_translate_newlines(fake: Fake) -> None:
    with send_mail_message_port(None, "s", ["a@x"], [], []) as port:
        port.write("a\r\nb\n")
    assert fake.stdin.endswith(b"\n\na\r\nb\n")


def test_exception_in_with_block_aborts_the_message(tmp_path: Path) -> None:
    slow = make_fake(tmp_path / "slow", sleep_before_read=5)
    with (
        sendmail_program.parameterize(slow.path),
        pytest.raises(RuntimeError, match="boom"),
        send_mail_message_port(None, "s", ["a@x"], [], []) as port,
    ):
        port.write("partial\n")
        raise RuntimeError("boom")
    # The fake was killed before it could read the end of its input.
    assert not slow.got_stdin


def test_exception_from_body_iterable_aborts(tmp_path: Path) -> None:
    slow = make_fake(tmp_path / "slow", sleep_before_read=5)

    def body() -> Iterator[str]:
        yield "first"
        raise KeyError("body failed")

    with sendmail_program.parameterize(slow.path), pytest.raises(KeyError):
        send_mail_message(None, "s", ["a@x"], [], [], body())
    assert not slow.got_stdin


# -- failures of the program ----------------------------------------------------------------


def test_nonzero_exit_raises_with_status_and_stderr(tmp_path: Path) -> None:
    bad = make_fake(tmp_path / "bad", status=75, stderr="sendmail: queue file write error\n")
    with sendmail_program.parameterize(bad.path), pytest.raises(SendmailError) as info:
        send_mail_message("me@x", "s", ["a@x"], [], [], ["body"])
    err = info.value
    assert err.returncode == 75
    assert err.stderr == "sendmail: queue file write error"
    assert "exited with status 75" in str(err)
    assert "queue file write error" in str(err)
    assert isinstance(err, OSError)
    assert bad.got_stdin  # it did get the message; the failure is reported anyway


def test_port_close_raises_on_failure(tmp_path: Path) -> None:
    bad = make_fake(tmp_path / "bad", status=1, stderr="no such user")
    with sendmail_program.parameterize(bad.path):
        port = send_mail_message_port(None, "s", ["a@x"], [], [])
        port.write("body\n")
        with pytest.raises(SendmailError, match="no such user") as info:
            port.close()
    assert info.value.returncode == 1
    assert port.closed


def test_sendmail_that_exits_without_reading(tmp_path: Path) -> None:
    quitter = make_fake(tmp_path / "quit", status=64, stderr="usage: bad option", read=False)
    big_body = ["x" * 1000] * 2000  # 2 MB: far more than a pipe holds
    with sendmail_program.parameterize(quitter.path), pytest.raises(SendmailError) as info:
        send_mail_message(None, "s", ["a@x"], [], [], big_body)
    assert info.value.returncode == 64
    assert "usage: bad option" in str(info.value)


def test_sendmail_killed_by_signal(tmp_path: Path) -> None:
    d = tmp_path / "sig"
    d.mkdir()
    prog = d / "sendmail"
    prog.write_text("#!/bin/sh\ncat >/dev/null\nkill -TERM $$\n", encoding="utf-8")
    prog.chmod(0o755)
    with sendmail_program.parameterize(prog), pytest.raises(SendmailError) as info:
        send_mail_message(None, "s", ["a@x"], [], [], ["b"])
    assert info.value.returncode == -15
    assert "killed by signal 15" in str(info.value)


def test_timeout_when_sendmail_does_not_read(tmp_path: Path) -> None:
    stuck = make_fake(tmp_path / "stuck", sleep_before_read=30)
    big_body = ["y" * 1000] * 1000
    start = time.monotonic()
    with sendmail_program.parameterize(stuck.path), pytest.raises(SendmailError, match="timed"):
        send_mail_message(None, "s", ["a@x"], [], [], big_body, timeout=0.5)
    assert time.monotonic() - start < 10
    assert not stuck.got_stdin


def test_timeout_when_sendmail_does_not_exit(tmp_path: Path) -> None:
    slow = make_fake(tmp_path / "slow", sleep_after_read=30)
    start = time.monotonic()
    with sendmail_program.parameterize(slow.path), pytest.raises(SendmailError) as info:
        send_mail_message(None, "s", ["a@x"], [], [], ["b"], timeout=0.5)
    assert time.monotonic() - start < 10
    assert "did not exit within 0.5 s" in str(info.value)
    assert info.value.returncode is None


def test_program_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "sendmail"
    with sendmail_program.parameterize(missing), pytest.raises(SendmailError) as info:
        send_mail_message(None, "s", ["a@x"], [], [], [])
    assert str(missing) in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_program_that_is_not_executable(tmp_path: Path) -> None:
    plain = make_fake(tmp_path / "plain", mode=0o644)
    with sendmail_program.parameterize(plain.path), pytest.raises(SendmailError) as info:
        send_mail_message(None, "s", ["a@x"], [], [], [])
    assert isinstance(info.value.__cause__, PermissionError)
    assert not plain.ran


# -- bad input: ValueError and nothing run --------------------------------------------------


@pytest.mark.parametrize(
    ("from_", "subject", "to", "extra"),
    [
        ("me@x\nBcc: victim@x", "s", ["a@x"], ()),
        ("me@x\r", "s", ["a@x"], ()),
        ("me@x", "hi\nBcc: victim@x", ["a@x"], ()),
        ("me@x", "hi\r\n", ["a@x"], ()),
        ("me@x", "ünï\ncode", ["a@x"], ()),
        ("me@x", "s", ["a@x"], ("X-A: 1\nBcc: victim@x",)),
        ("me@x", "s", ["a@x"], ("X-A: 1\r",)),
        ("me@x", "s", ["a@x"], ("",)),
        ("me@x", "s", ["a@x"], ("   ",)),
        ("me@x", "s", ["a@x\nBcc: victim@x"], ()),
        ("me@x", "s", ["a@x\0"], ()),
        ("me@x", "s", ["-oQ/tmp/evil"], ()),
        ("me@x", "s", ["-t"], ()),
        ("me@x", "s", [""], ()),
    ],
)
def test_injection_is_refused_before_running(
    fake: Fake, from_: str, subject: str, to: list[str], extra: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError):
        send_mail_message(from_, subject, to, [], [], ["b"], *extra)
    with pytest.raises(ValueError):
        send_mail_message_port(from_, subject, to, [], [], *extra)
    assert not fake.ran


def test_dash_recipient_in_cc_or_bcc_refused(fake: Fake) -> None:
    with pytest.raises(ValueError, match="may not start with '-'"):
        send_mail_message(None, "s", ["a@x"], ["-x"], [], [])
    with pytest.raises(ValueError, match="may not start with '-'"):
        send_mail_message(None, "s", ["a@x"], [], ["--"], [])
    assert not fake.ran


def test_no_recipients_is_checked_before_lookup(no_sendmail: Path) -> None:
    with pytest.raises(ValueError) as info:
        send_mail_message("me@x", "s", [], [], [], ["b"])
    assert str(info.value) == "send_mail_message: no mail recipients were specified"
    with pytest.raises(ValueError) as info:
        send_mail_message_port("me@x", "s", [], [], [])
    assert str(info.value) == "send_mail_message_port: no mail recipients were specified"


def test_wrong_types(fake: Fake) -> None:
    with pytest.raises(TypeError):
        send_mail_message(None, "s", "a@x", [], [], [])  # a str is not a list of recipients
    with pytest.raises(TypeError):
        send_mail_message(None, "s", ["a@x"], [], [], "body")
    with pytest.raises(TypeError):
        send_mail_message(None, b"s", ["a@x"], [], [], [])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        send_mail_message(None, "s", [b"a@x"], [], [], [])  # type: ignore[list-item]
    assert not fake.ran
    with pytest.raises(TypeError):
        send_mail_message(None, "s", ["a@x"], [], [], [b"line"])  # type: ignore[list-item]


# -- finding the program --------------------------------------------------------------------


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tmp_path / "first"
    second = tmp_path / "second"
    on_path = tmp_path / "onpath"
    for d in (first, second, on_path):
        d.mkdir()
    monkeypatch.setattr(sendmail_lookup, "sendmail_search_path", (str(first), str(second)))
    monkeypatch.setenv("PATH", str(on_path))

    make_fake(on_path)
    assert find_sendmail() == str(on_path / "sendmail")  # PATH comes last (fix 1)

    make_fake(second)
    assert find_sendmail() == str(second / "sendmail")  # the search path wins over PATH

    make_fake(first, mode=0o644)  # present but not executable: skipped
    assert find_sendmail() == str(second / "sendmail")

    (first / "sendmail").chmod(0o755)
    assert find_sendmail() == str(first / "sendmail")

    with sendmail_program.parameterize(on_path / "sendmail"):  # the parameter wins
        assert find_sendmail() == str(on_path / "sendmail")


def test_default_search_path_is_racket_s() -> None:
    assert sm.sendmail_search_path == ("/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/lib")


def test_directory_named_sendmail_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "d"
    (d / "sendmail").mkdir(parents=True)
    fallback = make_fake(tmp_path / "p")
    monkeypatch.setattr(sendmail_lookup, "sendmail_search_path", (str(d),))
    monkeypatch.setenv("PATH", str(fallback.directory))
    assert find_sendmail() == str(fallback.path)


def test_search_is_used_when_parameter_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = make_fake(tmp_path / "sbin")
    monkeypatch.setattr(sendmail_lookup, "sendmail_search_path", (str(found.directory),))
    send_mail_message(None, "s", ["a@x"], [], [], ["b"])
    assert found.argv == ["-i", "--", "a@x"]


def test_not_found_message_and_type(no_sendmail: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        send_mail_message(None, "s", ["a@x"], [], [], [])
    assert str(info.value) == (
        f'unable to find a sendmail executable in ("{no_sendmail}") or on PATH'
    )
    assert info.value.errno == 2


def test_failed_search_is_not_cached(no_sendmail: Path) -> None:
    with pytest.raises(FileNotFoundError):
        send_mail_message(None, "s", ["a@x"], [], [], ["first"])
    installed = make_fake(no_sendmail)  # install sendmail after the failure
    send_mail_message(None, "s", ["a@x"], [], [], ["second"])
    assert installed.stdin.endswith(b"\n\nsecond\n")


# -- the parameter --------------------------------------------------------------------------


def test_parameter_guard(tmp_path: Path) -> None:
    assert sendmail_program() is None
    with sendmail_program.parameterize(tmp_path / "x"):
        assert sendmail_program() == str(tmp_path / "x")  # stored as a str
    with sendmail_program.parameterize("/usr/sbin/sendmail"):
        assert sendmail_program() == "/usr/sbin/sendmail"
        with sendmail_program.parameterize(None):
            assert sendmail_program() is None
    for bad in (42, b"/usr/sbin/sendmail", ["/usr/sbin/sendmail"]):
        with pytest.raises(TypeError, match="sendmail_program"):
            sendmail_program(bad)  # type: ignore[call-overload]
    for worse in ("", "a\0b"):
        with pytest.raises(ValueError, match="sendmail_program"):
            sendmail_program(worse)
    assert sendmail_program() is None


# -- run_sendmail ---------------------------------------------------------------------------


def test_run_sendmail_argv_and_bytes(fake: Fake) -> None:
    message = b"Subject: raw\r\n\r\n.\r\nbody\r\n"
    run_sendmail(message, ["a@x", "b@x"], sender="bounce@x", extra_args=["-oem"])
    assert fake.argv == ["-i", "-oem", "-f", "bounce@x", "--", "a@x", "b@x"]
    assert fake.stdin == message


def test_run_sendmail_explicit_program_and_large_message(tmp_path: Path) -> None:
    other = make_fake(tmp_path / "other")
    message = b"Subject: big\n\n" + b"z" * 999 + b"\n" * 3000
    run_sendmail(message, ["a@x"], program=other.path)
    assert other.argv == ["-i", "--", "a@x"]
    assert other.stdin == message


def test_run_sendmail_checks(fake: Fake) -> None:
    with pytest.raises(ValueError, match="no mail recipients"):
        run_sendmail(b"x", [])
    with pytest.raises(ValueError):
        run_sendmail(b"x", ["-bad"])
    with pytest.raises(ValueError):
        run_sendmail(b"x", ["a@x"], sender="s@x\n")
    with pytest.raises(TypeError):
        run_sendmail("text", ["a@x"])  # type: ignore[arg-type]
    assert not fake.ran
    run_sendmail(b"To: a@x\n\nb\n", [], extra_args=["-t"])
    assert fake.argv == ["-i", "-t", "--"]


def test_run_sendmail_failure(tmp_path: Path) -> None:
    bad = make_fake(tmp_path / "bad", status=69, stderr="service unavailable")
    with pytest.raises(SendmailError, match="status 69: service unavailable"):
        run_sendmail(b"x\n", ["a@x"], program=bad.path)


# -- encode_for_header (net/unihead) --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("plain ASCII", "plain ASCII"),
        ("=?not?encoded?=", "=?not?encoded?="),
        ("", ""),
        ("Hello wörld foo", "Hello =?ISO-8859-1?Q?w=F6rld?= foo"),
        ("ö ö", "=?ISO-8859-1?Q?=F6_=F6?="),
        ("a=b ö", "=?ISO-8859-1?Q?a=3Db_=F6?="),
        ("ö? _x", "=?ISO-8859-1?Q?=F6=3F?= _x"),
        ("ö ", "=?ISO-8859-1?Q?=F6?= "),
        ("öx!~", "=?ISO-8859-1?Q?=F6x!~?="),
        ("日本語 subject", "=?UTF-8?B?5pel5pys6Kqe?= subject"),
        ("é and 日", f"=?UTF-8?B?{_b64('é and 日'.encode())}?="),
        ("tab\tö", "=?ISO-8859-1?Q?tab=09=F6?="),
        ("ö\r\nü", "=?ISO-8859-1?Q?=F6?=\r\n=?ISO-8859-1?Q?=FC?="),
    ],
)
def test_encode_for_header(text: str, encoded: str) -> None:
    assert encode_for_header(text) == encoded


def test_encode_for_header_splits_every_70_bytes() -> None:
    text = "x" * 10 + "é" * 80  # 90 Latin-1 bytes
    assert encode_for_header(text) == (
        "=?ISO-8859-1?Q?" + "x" * 10 + "=E9" * 60 + "?=\n =?ISO-8859-1?Q?" + "=E9" * 20 + "?="
    )


def test_encode_for_header_round_trips_through_the_email_package() -> None:
    from email.header import decode_header, make_header

    for text in ("Grüße aus Köln", "日本語のメール 件名", "mixed é and 日本 text " * 5):
        assert str(make_header(decode_header(encode_for_header(text)))) == text


# -- unit and signature ---------------------------------------------------------------------


def test_unit_satisfies_signature() -> None:
    unit: SendmailSignature = sendmail_unit
    assert isinstance(unit, SendmailSignature)
    assert isinstance(sm, SendmailSignature)  # the module itself is an implementation too
    assert unit.send_mail_message is send_mail_message
    assert unit.send_mail_message_port is send_mail_message_port


def test_unit_sends(fake: Fake) -> None:
    sendmail_unit.send_mail_message(None, "via unit", ["a@x"], [], [], ["b"])
    assert b"Subject: via unit\n" in fake.stdin


def test_exports() -> None:
    for name in sm.__all__:
        assert hasattr(sm, name)
