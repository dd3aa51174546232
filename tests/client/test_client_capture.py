"""``postwire.client.Client`` over real sockets on 127.0.0.1, against the capture server.

The capture server keeps every message byte for byte, with its envelope and MAIL options, so
these tests see exactly what arrived.  What the client put on the wire is seen either through
its transcript callback or, for plain-text connections, through :class:`WireTap`, a small TCP
relay that records every byte the client sent to the server.
"""

from __future__ import annotations

import base64
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from postwire.capture import CapturedMessage, CaptureServer
from postwire.capture.faults import FaultScript
from postwire.client import Client, Pool
from postwire.errors import (
    AuthenticationError,
    CertificateError,
    PlaintextAuthRefused,
    PossiblyDelivered,
    ServerDisconnected,
    Timeout,
    TLSError,
    TLSRequired,
)

HOST = "127.0.0.1"
TIMEOUT = 5.0  # every network step of every client in this file
WAIT = 5.0  # seconds for the capture server to store a message

USER = "alice"
PASSWORD = "s3cret-Pa55word"
USERS = {USER: PASSWORD, "zoë": "pässwörd-ü"}

SENDER = "sender@example.org"
RCPT = "rcpt@example.org"

# Lines that DATA must dot-stuff (RFC 5321 §4.5.2): a leading dot, a line that is only a dot
# (the end-of-data marker if left alone), two dots, and a dot after an empty line.
DOTTY = (
    b"From: sender@example.org\r\n"
    b"To: rcpt@example.org\r\n"
    b"Subject: dots\r\n"
    b"\r\n"
    b".leading dot\r\n"
    b".\r\n"
    b"..\r\n"
    b"\r\n"
    b". space after dot\r\n"
    b"trailing spaces   \r\n"
    b"last line\r\n"
)

StartCapture = Callable[..., CaptureServer]


# -- helpers ---------------------------------------------------------------------------------


class WireTap:
    """A TCP relay on 127.0.0.1 that records every byte clients send to ``target_port``.

    Only useful for plain-text sessions (TLS bytes are opaque).  Each accepted connection is
    relayed in its own thread; every wait is bounded.
    """

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = bytearray()
        self._active = 0
        self._idle = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    @property
    def client_bytes(self) -> bytes:
        """Everything clients sent so far, in order."""
        with self._lock:
            return bytes(self._sent)

    def wait_idle(self, timeout: float = WAIT) -> bytes:
        """Wait until every relayed connection has ended; return :attr:`client_bytes`."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._active == 0, timeout):
                raise TimeoutError(f"relayed connections still open after {timeout} s")
            return bytes(self._sent)

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join(5)
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._active += 1
            thread = threading.Thread(target=self._relay, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection((HOST, self._target_port), timeout=TIMEOUT)
        except OSError:
            client.close()
            self._done()
            return
        peers = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as sel, client, upstream:
            for sock in peers:
                sock.setblocking(False)
                sel.register(sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select(0.1):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = src.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        self._done()
                        return
                    if src is client:
                        with self._lock:
                            self._sent += data
                    peers[src].setblocking(True)
                    peers[src].settimeout(TIMEOUT)
                    try:
                        peers[src].sendall(data)
                    except OSError:
                        self._done()
                        return
                    finally:
                        peers[src].setblocking(False)
        self._done()

    def _done(self) -> None:
        with self._idle:
            self._active -= 1
            self._idle.notify_all()


@pytest.fixture
def tap_to() -> Iterator[Callable[[int], WireTap]]:
    """Start :class:`WireTap` relays towards a port; all are closed after the test."""
    taps: list[WireTap] = []

    def start(port: int) -> WireTap:
        tap = WireTap(port)
        taps.append(tap)
        return tap

    yield start
    for tap in taps:
        tap.close()


def client_for(server: CaptureServer, **kwargs: Any) -> Client:
    """A client for ``server`` that trusts its CA (unless told otherwise)."""
    kwargs.setdefault("timeout", TIMEOUT)
    if kwargs.get("tls", "starttls") != "none" and "ssl_context" not in kwargs:
        kwargs.setdefault("cafile", server.ca_file)
    return Client(HOST, server.port, **kwargs)


def sent_lines(transcript: list[str]) -> list[str]:
    """The client's lines in a transcript, without the time stamp and arrow."""
    return [line.split(" -> ", 1)[1] for line in transcript if " -> " in line]


def only(server: CaptureServer) -> CapturedMessage:
    (message,) = server.wait_for(1, WAIT)
    return message


# -- TLS -------------------------------------------------------------------------------------


def test_starttls_with_cafile(start_capture: StartCapture) -> None:
    server = start_capture(tls="starttls")
    with client_for(server, cafile=server.ca_file) as client:
        assert client.tls_active
        # After STARTTLS the extensions come from the second EHLO (RFC 3207 §4.2).
        assert not client.extensions.starttls
        result = client.send(DOTTY, sender=SENDER, recipients=[RCPT])
    assert result.accepted == [RCPT]
    assert result.ok
    message = only(server)
    assert message.tls is True
    assert message.data == DOTTY


def test_starttls_with_ssl_context(start_capture: StartCapture) -> None:
    server = start_capture(tls="starttls")
    with client_for(server, ssl_context=server.client_ssl_context()) as client:
        assert client.tls_active
        client.send(DOTTY, sender=SENDER, recipients=[RCPT])
    assert only(server).tls is True


def test_starttls_without_the_ca_fails_verification_and_sends_nothing(
    start_capture: StartCapture,
) -> None:
    server = start_capture(tls="starttls")
    # The system trust store does not know the capture server's private CA.
    client = Client(HOST, server.port, timeout=TIMEOUT)
    with pytest.raises(CertificateError) as err:
        client.connect()
    assert "cafile" in str(err.value)
    assert not client.connected
    assert server.messages == []


def test_implicit_tls(start_capture: StartCapture) -> None:
    server = start_capture(tls="implicit")
    transcript: list[str] = []
    with client_for(server, tls="implicit", transcript=transcript.append) as client:
        assert client.tls_active
        client.send(DOTTY, sender=SENDER, recipients=[RCPT])
    message = only(server)
    assert message.tls is True
    assert message.data == DOTTY
    # TLS came before the greeting: no STARTTLS command was needed.
    assert "STARTTLS" not in sent_lines(transcript)


def test_starttls_required_but_not_offered_sends_nothing(
    start_capture: StartCapture, tap_to: Callable[[int], WireTap]
) -> None:
    server = start_capture(tls="none")
    tap = tap_to(server.port)
    client = Client(HOST, tap.port, tls="starttls", timeout=TIMEOUT)
    with pytest.raises(TLSRequired) as err:
        client.connect()
    assert err.value.step == "STARTTLS"
    assert not client.connected
    wire = tap.wait_idle()
    # Only the EHLO went out: no STARTTLS, no MAIL, no QUIT after the refusal.
    assert wire.startswith(b"EHLO ")
    assert wire.count(b"\r\n") == 1
    assert b"MAIL" not in wire
    assert server.messages == []


def test_tls_implicit_against_a_starttls_port_says_to_use_starttls(
    start_capture: StartCapture,
) -> None:
    server = start_capture(tls="starttls")
    client = client_for(server, tls="implicit")
    with pytest.raises(TLSError) as err:
        client.connect()
    assert not isinstance(err.value, CertificateError)
    assert "tls='starttls'" in str(err.value)
    assert not client.connected


def test_tls_starttls_against_an_implicit_port_times_out_and_says_to_use_implicit(
    start_capture: StartCapture,
) -> None:
    server = start_capture(tls="implicit")
    client = client_for(server, tls="starttls", timeout=2)
    started = time.monotonic()
    # The server waits for a TLS ClientHello, the client for a 220 greeting.
    with pytest.raises(Timeout) as err:
        client.connect()
    elapsed = time.monotonic() - started
    assert elapsed < 6, f"took {elapsed:.1f} s with timeout=2"
    assert err.value.step == "greeting"
    assert "tls='implicit'" in str(err.value)
    assert not client.connected
    assert server.messages == []


# -- AUTH ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_auth_mechanism_is_used_and_authenticates(
    start_capture: StartCapture, mechanism: str
) -> None:
    server = start_capture(tls="starttls", auth=USERS, require_auth=True)
    transcript: list[str] = []
    with client_for(
        server,
        username=USER,
        password=PASSWORD,
        auth_mechanism=mechanism,
        transcript=transcript.append,
    ) as client:
        client.send(DOTTY, sender=SENDER, recipients=[RCPT])
    auth = [line for line in sent_lines(transcript) if line.startswith("AUTH ")]
    assert len(auth) == 1
    assert auth[0].split()[1] == mechanism
    message = only(server)
    assert message.auth_user == USER
    assert message.tls is True


def test_auth_plain_with_a_utf8_user_and_password(start_capture: StartCapture) -> None:
    server = start_capture(tls="starttls", auth=USERS, require_auth=True)
    with client_for(
        server, username="zoë", password=USERS["zoë"], auth_mechanism="PLAIN"
    ) as client:
        client.send(DOTTY, sender=SENDER, recipients=[RCPT])
    assert only(server).auth_user == "zoë"


def test_strongest_common_mechanism_is_chosen(start_capture: StartCapture) -> None:
    server = start_capture(tls="starttls", auth=USERS, require_auth=True)
    transcript: list[str] = []
    with client_for(
        server, username=USER, password=PASSWORD, transcript=transcript.append
    ) as client:
        assert client.extensions.auth_mechanisms == {"PLAIN", "LOGIN", "CRAM-MD5"}
        client.send(DOTTY, sender=SENDER, recipients=[RCPT])
    # CRAM-MD5 never sends the password; it beats PLAIN and LOGIN.
    assert [line for line in sent_lines(transcript) if line.startswith("AUTH")] == ["AUTH CRAM-MD5"]
    assert only(server).auth_user == USER


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_wrong_password_raises_authentication_error_with_the_reply(
    start_capture: StartCapture, mechanism: str
) -> None:
    server = start_capture(tls="starttls", auth=USERS, require_auth=True)
    client = client_for(
        server, username=USER, password="not-the-password", auth_mechanism=mechanism
    )
    with pytest.raises(AuthenticationError) as err:
        client.connect()
    reply = err.value.reply
    assert reply.code == 535
    assert err.value.is_permanent
    assert "535" in str(err.value)
    assert reply.text in str(err.value)
    assert not client.connected
    assert server.messages == []


def test_plaintext_auth_is_refused_without_allow_plaintext_auth(
    start_capture: StartCapture, tap_to: Callable[[int], WireTap]
) -> None:
    server = start_capture(tls="none", auth=USERS)
    tap = tap_to(server.port)
    client = Client(HOST, tap.port, tls="none", username=USER, password=PASSWORD, timeout=TIMEOUT)
    with pytest.raises(PlaintextAuthRefused) as err:
        client.connect()
    assert "allow_plaintext_auth" in str(err.value)
    assert not client.connected
    wire = tap.wait_idle()
    assert wire.startswith(b"EHLO ")
    assert b"AUTH" not in wire
    assert PASSWORD.encode() not in wire
    assert server.messages == []


def test_plaintext_auth_is_sent_with_allow_plaintext_auth(
    start_capture: StartCapture, tap_to: Callable[[int], WireTap]
) -> None:
    server = start_capture(tls="none", auth=USERS, require_auth=True)
    tap = tap_to(server.port)
    with Client(
        HOST,
        tap.port,
        tls="none",
        username=USER,
        password=PASSWORD,
        auth_mechanism="PLAIN",
        allow_plaintext_auth=True,
        timeout=TIMEOUT,
    ) as client:
        assert not client.tls_active
        client.send(DOTTY, sender=SENDER, recipients=[RCPT])
    wire = tap.wait_idle()
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    assert f"AUTH PLAIN {plain}\r\n".encode() in wire
    message = only(server)
    assert message.auth_user == USER
    assert message.tls is False


# -- transcript ------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_transcript_shows_the_session_and_hides_credentials(
    start_capture: StartCapture, mechanism: str
) -> None:
    server = start_capture(tls="starttls", auth=USERS, require_auth=True)
    transcript: list[str] = []
    marker = "body-marker-7f3a9c"
    body = f"Subject: t\r\n\r\n{marker}\r\n".encode()
    with client_for(
        server,
        username=USER,
        password=PASSWORD,
        auth_mechanism=mechanism,
        transcript=transcript.append,
    ) as client:
        client.send(body, sender=SENDER, recipients=[RCPT])
    text = "\n".join(transcript)
    secrets = [
        PASSWORD,
        base64.b64encode(PASSWORD.encode()).decode(),
        base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode(),
        base64.b64encode(f"{USER}\0{USER}\0{PASSWORD}".encode()).decode(),
    ]
    for secret in secrets:
        assert secret not in text
    sent = sent_lines(transcript)
    assert sent[0].startswith("EHLO ")
    assert "STARTTLS" in sent
    assert any(" ** TLS started" in line for line in transcript)
    assert f"MAIL FROM:<{SENDER}> SIZE={len(body)}" in sent
    assert f"RCPT TO:<{RCPT}>" in sent
    assert sent[-1] == "QUIT"
    # AUTH shows the mechanism, never a payload; client responses are redacted.
    auth_at = next(i for i, line in enumerate(sent) if line.startswith("AUTH "))
    assert sent[auth_at] in (f"AUTH {mechanism}", f"AUTH {mechanism} <redacted>")
    assert "<redacted>" in text
    assert any("<- 235" in line for line in transcript)
    # The content is summarised, not copied.
    assert marker not in text
    assert any(line.startswith("<message content, ") for line in sent)
    assert any("<- 250 2.0.0 OK: message captured" in line for line in transcript)
    assert any("<- 221" in line for line in transcript)
    # Every line starts with the seconds since the client was made.
    for line in transcript:
        float(line.split()[0])


# -- messages --------------------------------------------------------------------------------


def test_email_message_envelope_from_headers_and_bcc_not_in_the_data(
    start_capture: StartCapture,
) -> None:
    server = start_capture(tls="starttls")
    msg = EmailMessage()
    msg["From"] = "Alice Example <alice@example.org>"
    msg["To"] = "Bob <bob@example.org>, carol@example.org"
    msg["Cc"] = "dave@example.org"
    msg["Bcc"] = "Eve Hidden <eve@example.net>"
    msg["Subject"] = "Envelope from headers"
    msg.set_content("Hello.\n.a line with a leading dot\n")
    with client_for(server) as client:
        result = client.send(msg)
    everyone = ["bob@example.org", "carol@example.org", "dave@example.org", "eve@example.net"]
    assert result.accepted == everyone
    assert result.refused == {}
    message = only(server)
    assert message.mail_from == "alice@example.org"
    assert message.rcpt_tos == everyone
    assert b"Bcc" not in message.data
    assert b"eve@example.net" not in message.data
    assert b"Eve Hidden" not in message.data
    assert b"\n" not in message.data.replace(b"\r\n", b"")  # CRLF only
    got = message.email()
    assert got["Subject"] == "Envelope from headers"
    assert got["To"] == "Bob <bob@example.org>, carol@example.org"
    assert got["Cc"] == "dave@example.org"
    assert message.data.endswith(b"\r\n\r\nHello.\r\n.a line with a leading dot\r\n")
    # The caller's message is left as it was.
    assert msg["Bcc"] == "Eve Hidden <eve@example.net>"


def test_explicit_sender_and_recipients_override_the_headers(
    start_capture: StartCapture,
) -> None:
    server = start_capture(tls="starttls")
    msg = EmailMessage()
    msg["From"] = "alice@example.org"
    msg["To"] = "bob@example.org"
    msg["Subject"] = "override"
    msg.set_content("x\n")
    with client_for(server) as client:
        client.send(msg, sender="bounces@example.org", recipients=["list@example.org"])
    message = only(server)
    assert message.mail_from == "bounces@example.org"
    assert message.rcpt_tos == ["list@example.org"]
    assert message.email()["To"] == "bob@example.org"


def test_bytes_are_sent_byte_exact(start_capture: StartCapture) -> None:
    server = start_capture(tls="starttls")
    with client_for(server) as client:
        client.send(DOTTY, sender=SENDER, recipients=[RCPT])
    message = only(server)
    assert message.data == DOTTY
    assert message.mail_from == SENDER
    assert message.rcpt_tos == [RCPT]


def test_data_is_dot_stuffed_on_the_wire(
    start_capture: StartCapture, tap_to: Callable[[int], WireTap]
) -> None:
    server = start_capture(tls="none")
    tap = tap_to(server.port)
    with Client(HOST, tap.port, tls="none", timeout=TIMEOUT) as client:
        client.send(DOTTY, sender=SENDER, recipients=[RCPT])
    wire = tap.wait_idle()
    stuffed = DOTTY.replace(b"\r\n.", b"\r\n..")
    # RFC 5321 §4.5.2: every line starting with "." gets one more; then "." ends the data.
    assert b"DATA\r\n" + stuffed + b".\r\n" in wire
    assert only(server).data == DOTTY


def test_several_messages_over_one_connection(start_capture: StartCapture) -> None:
    server = start_capture(tls="starttls")
    bodies = [f"Subject: message {i}\r\n\r\nbody {i}\r\n.\r\n".encode() for i in range(3)]
    with client_for(server) as client:
        for i, body in enumerate(bodies):
            result = client.send(body, sender=f"s{i}@example.org", recipients=[f"r{i}@example.org"])
            assert result.accepted == [f"r{i}@example.org"]
        assert client.connected
    messages = server.wait_for(3, WAIT)
    assert [m.data for m in messages] == bodies
    assert [m.mail_from for m in messages] == [f"s{i}@example.org" for i in range(3)]
    assert [m.rcpt_tos for m in messages] == [[f"r{i}@example.org"] for i in range(3)]
    # All three came from the same client port: one connection.
    assert len({m.peer for m in messages}) == 1


def test_send_many_in_lock_step_keeps_a_possible_delivery(start_capture: StartCapture) -> None:
    """The capture server offers no PIPELINING, so ``send_many`` goes one message at a time.

    When the reply to a message's final "." never comes, that message may have been delivered:
    its outcome is PossiblyDelivered (not "not sent"), only the messages after it are "not
    sent", and a pool sends those again but never the possibly delivered one.
    """
    server = start_capture(tls="none", faults=FaultScript(delay_data_reply=1.5))
    items = [(f"Subject: {s}\r\n\r\n{s}\r\n".encode(), SENDER, [RCPT]) for s in "ab"]
    with Client(HOST, server.port, tls="none", timeout=0.3) as client:
        assert not client.extensions.pipelining
        first, second = client.send_many(items)
    assert isinstance(first, PossiblyDelivered)
    assert isinstance(second, ServerDisconnected) and not isinstance(second, PossiblyDelivered)
    assert str(second).startswith("not sent")
    assert [m.subject for m in server.wait_for(1, WAIT)] == ["a"]
    server.clear()
    with Pool(HOST, server.port, tls="none", timeout=0.3, max_connections=1) as pool:
        first, second = pool.send_many(items)
    # "b" went again on a new connection (and timed out there too); "a" went once only.
    assert isinstance(first, PossiblyDelivered) and isinstance(second, PossiblyDelivered)
    assert sorted(m.subject or "" for m in server.wait_for(2, WAIT)) == ["a", "b"]
    assert len(server.messages) == 2


def test_smtputf8_addresses_in_an_email_message(start_capture: StartCapture) -> None:
    server = start_capture(tls="starttls")
    msg = EmailMessage()
    msg["From"] = "José <josé@exämple.org>"
    msg["To"] = "用户@例子.example"
    msg["Subject"] = "Grüße"
    msg.set_content("Ünïcødé body\n", cte="8bit")
    with client_for(server) as client:
        assert client.extensions.smtputf8
        client.send(msg)
    message = only(server)
    assert message.mail_from == "josé@exämple.org"
    assert message.rcpt_tos == ["用户@例子.example"]
    assert "SMTPUTF8" in message.mail_options
    assert "BODY=8BITMIME" in message.mail_options
    # RFC 6532: with SMTPUTF8 the header fields travel as raw UTF-8, not encoded words.
    assert "From: José <josé@exämple.org>\r\n".encode() in message.data
    assert "Subject: Grüße\r\n".encode() in message.data
    assert message.data.endswith("\r\n\r\nÜnïcødé body\r\n".encode())


def test_smtputf8_addresses_with_bytes(start_capture: StartCapture) -> None:
    server = start_capture(tls="starttls")
    body = "From: ñandú@exämple.org\r\nSubject: x\r\n\r\nplain\r\n".encode()
    with client_for(server) as client:
        client.send(body, sender="ñandú@exämple.org", recipients=["zoë@exämple.org"])
    message = only(server)
    assert message.mail_from == "ñandú@exämple.org"
    assert message.rcpt_tos == ["zoë@exämple.org"]
    assert "SMTPUTF8" in message.mail_options
    assert message.data == body


def test_eight_bit_body_declares_8bitmime(start_capture: StartCapture) -> None:
    server = start_capture(tls="starttls")
    body = (
        "Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße, 世界\r\n".encode()
    )
    with client_for(server) as client:
        assert client.extensions.eightbitmime
        client.send(body, sender=SENDER, recipients=[RCPT])
    message = only(server)
    assert message.data == body
    # RFC 6152: BODY=8BITMIME; ASCII addresses need no SMTPUTF8.
    assert message.mail_options == [f"SIZE={len(body)}", "BODY=8BITMIME"]


def test_seven_bit_body_declares_no_body_type(start_capture: StartCapture) -> None:
    server = start_capture(tls="starttls")
    with client_for(server) as client:
        client.send(DOTTY, sender=SENDER, recipients=[RCPT])
    assert only(server).mail_options == [f"SIZE={len(DOTTY)}"]


def test_send_header_and_lines_from_postwire_head(start_capture: StartCapture) -> None:
    """A header built by postwire.head plus body lines: no glue code (issue 3)."""
    from postwire.head import standard_message_header

    server = start_capture(tls="starttls")
    header = standard_message_header(
        "ada@example.org", ["bob@example.org"], ["carol@example.org"], [], "From net/head"
    )
    with client_for(server) as client:
        result = client.send((header, ["Hello,", ".dotted", "", "bye"]))
        bcc = client.send((header, ["copy"]), recipients=["dave@example.org"])
    assert result.accepted == ["bob@example.org", "carol@example.org"]
    assert bcc.accepted == ["dave@example.org"]
    first, second = server.wait_for(2)
    assert first.mail_from == "ada@example.org"
    assert first.data == header.encode() + b"Hello,\r\n.dotted\r\n\r\nbye\r\n"
    assert second.rcpt_tos == ["dave@example.org"]


# -- Date and Message-ID (issue 10, item 3) --------------------------------------------------


def test_email_message_without_date_or_message_id_gets_both(
    start_capture: StartCapture,
) -> None:
    import email.utils
    from email.message import EmailMessage

    server = start_capture(tls="none")
    msg = EmailMessage()
    msg["From"] = "Ada <ada@example.org>"
    msg["To"] = "b@example.net"
    msg["Subject"] = "no ids"
    msg.set_content("hello\n")
    kept = EmailMessage()
    kept["From"] = "ada@example.org"
    kept["To"] = "b@example.net"
    kept["Date"] = "Mon, 01 Jan 2024 00:00:00 +0000"
    kept["Message-ID"] = "<mine@example.org>"
    kept.set_content("kept\n")
    raw = b"From: ada@example.org\r\nSubject: raw\r\n\r\nbytes go as they are\r\n"
    with Client(HOST, server.port, tls="none", timeout=TIMEOUT) as client:
        client.send(msg)
        client.send(kept)
        client.send(raw, sender="ada@example.org", recipients=["b@example.net"])
    with Client(
        HOST, server.port, tls="none", timeout=TIMEOUT, add_date_and_message_id=False
    ) as client:
        client.send(msg)
    first, second, third, fourth = server.wait_for(4)
    stamped = first.email()
    assert stamped["Message-ID"].endswith("@example.org>")
    assert email.utils.parsedate_to_datetime(stamped["Date"]) is not None
    assert "Message-ID" not in msg and "Date" not in msg  # the caller's object is unchanged
    assert second.email()["Message-ID"] == "<mine@example.org>"
    assert second.email()["Date"] == "Mon, 01 Jan 2024 00:00:00 +0000"
    assert third.data == raw
    assert fourth.email()["Message-ID"] is None and fourth.email()["Date"] is None


def test_utf8_subject_bytes_are_sent_with_smtputf8(start_capture: StartCapture) -> None:
    # mailx writes a raw UTF-8 Subject; the capture server (aiosmtpd) offers SMTPUTF8.
    server = start_capture(tls="none")
    data = "From: a@example.org\r\nSubject: Grüße aus Köln\r\n\r\nhallo\r\n".encode()
    with Client(HOST, server.port, tls="none", timeout=TIMEOUT) as client:
        client.send(data, sender="a@example.org", recipients=["b@example.org"])
    (message,) = server.wait_for(1)
    assert "SMTPUTF8" in message.mail_options
    assert message.data == data


def test_the_greeting_is_public(start_capture: StartCapture) -> None:
    server = start_capture(tls="none")
    client = Client(HOST, server.port, tls="none", timeout=TIMEOUT)
    assert client.greeting is None
    with client:
        assert client.greeting is not None and client.greeting.code == 220
