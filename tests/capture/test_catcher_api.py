"""The catcher's HTTP API over real sockets: Mailpit's paths and fields, events, faults,
release, persistence, and the rules that keep other sites and addresses out."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from catcher_support import BINARY, WAIT, call, get_json, rich_message, wait_until
from postwire import Client
from postwire.capture import CaptureServer


@pytest.fixture
def catcher() -> Iterator[CaptureServer]:
    with CaptureServer(tls="none", web=("127.0.0.1", 0)) as server:
        yield server


def send(
    server: CaptureServer, *messages: object, rcpts: tuple[str, ...] = ("b@example.org",)
) -> None:
    with Client(server.host, server.port, tls="none", timeout=WAIT) as client:
        for message in messages:
            client.send(message, sender="a@example.org", recipients=list(rcpts))


def simple(subject: str, to: str = "b@example.org") -> bytes:
    return (
        f"From: a@example.org\r\nTo: {to}\r\nSubject: {subject}\r\n\r\ntext {subject}\r\n".encode()
    )


def test_messages_list_paging_and_mailpit_fields(catcher: CaptureServer) -> None:
    send(catcher, *(simple(f"m{i}") for i in range(7)))
    catcher.wait_for(7)
    api = catcher.web_url + "api/v1/"
    page = get_json(api + "messages?start=2&limit=3")
    assert (page["total"], page["unread"], page["count"], page["messages_count"]) == (7, 7, 3, 7)
    assert page["start"] == 2
    assert [m["Subject"] for m in page["messages"]] == ["m4", "m3", "m2"]  # newest first
    first = page["messages"][0]
    for key in (
        "ID",
        "MessageID",
        "Read",
        "From",
        "To",
        "Cc",
        "Bcc",
        "ReplyTo",
        "Subject",
        "Created",
        "Username",
        "Tags",
        "Size",
        "Attachments",
        "Snippet",
    ):
        assert key in first
    assert first["From"] == {"Name": "", "Address": "a@example.org"}
    assert first["Snippet"] == "text m4"


def test_one_message_latest_raw_headers_and_parts(catcher: CaptureServer) -> None:
    send(catcher, rich_message(), rcpts=("bob@example.org", "hidden@example.org"))
    (captured,) = catcher.wait_for(1)
    api = catcher.web_url + "api/v1/"
    message = get_json(api + "message/latest")
    assert message["ID"] == captured.id
    assert message["Subject"] == "Quarterly report"
    assert message["MessageID"] == "report-1@example.org"
    assert message["Text"].startswith("Plain text body.")
    assert 'src="cid:logo@example.org"' in message["HTML"]
    assert message["Bcc"] == [{"Name": "", "Address": "hidden@example.org"}]
    assert [a["FileName"] for a in message["Attachments"]] == ["data.bin"]
    assert [a["ContentID"] for a in message["Inline"]] == ["logo@example.org"]
    assert get_json(api + "messages")["unread"] == 0  # reading it marked it read
    with urllib.request.urlopen(api + f"message/{captured.id}/raw", timeout=WAIT) as r:
        assert r.read() == captured.data
    headers = get_json(api + f"message/{captured.id}/headers")
    assert headers["X-Custom"] == ["custom value"]
    part_id = message["Attachments"][0]["PartID"]
    with urllib.request.urlopen(api + f"message/{captured.id}/part/{part_id}", timeout=WAIT) as r:
        assert r.read() == BINARY
        assert r.headers["Content-Disposition"].startswith("attachment;")
    status, _ = call(api + "message/nope", "GET")
    assert status == 404


def test_search_delete_and_read_flags(catcher: CaptureServer) -> None:
    send(catcher, simple("invoice 1"), simple("welcome"), simple("invoice 2", to="c@example.org"))
    catcher.wait_for(3)
    api = catcher.web_url + "api/v1/"
    found = get_json(api + "search?query=invoice")
    assert [m["Subject"] for m in found["messages"]] == ["invoice 2", "invoice 1"]
    assert found["messages_count"] == 2 and found["total"] == 3
    assert [m["Subject"] for m in get_json(api + "search?query=to:c@example.org")["messages"]] == [
        "invoice 2"
    ]
    assert [m["Subject"] for m in get_json(api + "search?query=-invoice")["messages"]] == [
        "welcome"
    ]
    ids = {m["Subject"]: m["ID"] for m in get_json(api + "messages")["messages"]}
    assert call(api + "messages", "PUT", {"IDs": [ids["welcome"]], "Read": True})[0] == 200
    assert [m["Subject"] for m in get_json(api + "search?query=is:read")["messages"]] == ["welcome"]
    assert call(api + "messages", "DELETE", {"IDs": [ids["invoice 1"]]}) == (200, b"ok")
    assert call(api + "search?query=welcome", "DELETE")[0] == 200
    assert [m.email()["Subject"] for m in catcher.messages] == ["invoice 2"]
    assert call(api + "messages", "DELETE") == (200, b"ok")
    assert catcher.messages == []


def test_event_stream_reports_new_and_deleted_messages(catcher: CaptureServer) -> None:
    with urllib.request.urlopen(catcher.web_url + "api/v1/events", timeout=WAIT) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"

        def next_event() -> tuple[str, object]:
            event, data = "", ""
            while True:
                line = stream.readline().decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and event:
                    return event, json.loads(data)

        assert next_event() == ("stats", {"Total": 0, "Unread": 0})
        send(catcher, simple("live one"))
        event, data = next_event()
        assert event == "new" and isinstance(data, dict) and data["Subject"] == "live one"
        assert next_event() == ("stats", {"Total": 1, "Unread": 1})
        catcher.store.delete([data["ID"]])
        assert next_event() == ("delete", {"IDs": [data["ID"]]})


def test_faults_through_the_api(catcher: CaptureServer) -> None:
    api = catcher.web_url + "api/v1/faults"
    status, body = call(
        api, "PUT", {"RefuseRecipients": [{"Pattern": "*@bad.example", "Code": 550}]}
    )
    assert status == 200 and json.loads(body)["RefuseRecipients"][0]["Pattern"] == "*@bad.example"
    with Client(catcher.host, catcher.port, tls="none", timeout=WAIT) as client:
        result = client.send(
            simple("x"), sender="a@example.org", recipients=["ok@example.org", "no@bad.example"]
        )
    assert list(result.accepted) == ["ok@example.org"]
    assert result.refused["no@bad.example"].code == 550
    assert call(api, "PUT", {"Bogus": 1})[0] == 400
    assert call(api, "DELETE")[0] == 200
    assert get_json(api)["RefuseRecipients"] == []


def test_release_through_the_api(tmp_path: Path) -> None:
    with (
        CaptureServer(tls="none") as downstream,
        CaptureServer(
            tls="none", web=("127.0.0.1", 0), release_to=f"smtp://127.0.0.1:{downstream.port}"
        ) as catcher,
    ):
        send(catcher, simple("release me"))
        (captured,) = catcher.wait_for(1)
        url = catcher.web_url + f"api/v1/message/{captured.id}/release"
        status, body = call(url, "POST", {"To": ["z@example.org"]})
        assert status == 200, body
        assert json.loads(body)["Accepted"] == ["z@example.org"]
        assert downstream.wait_for(1)[0].data == captured.data
        assert call(url, "POST", {"To": []})[0] == 400
    # Without --release-to, release is refused rather than sent anywhere.
    with CaptureServer(tls="none", web=("127.0.0.1", 0)) as catcher:
        send(catcher, simple("x"))
        (captured,) = catcher.wait_for(1)
        url = catcher.web_url + f"api/v1/message/{captured.id}/release"
        assert call(url, "POST", {"To": ["z@example.org"]})[0] == 400


def test_maildir_messages_are_listed_again_after_a_restart(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    with CaptureServer(tls="none", maildir=maildir) as first:
        send(first, simple("before restart"), rcpts=("x@example.org", "y@example.org"))
        (before,) = first.wait_for(1)
    with CaptureServer(tls="none", maildir=maildir, web=("127.0.0.1", 0)) as second:
        (after,) = second.messages
        assert (after.id, after.data, after.rcpt_tos) == (before.id, before.data, before.rcpt_tos)
        assert after.transcript == before.transcript
        assert get_json(second.web_url + "api/v1/messages")["messages"][0]["ID"] == before.id
        get_json(second.web_url + f"api/v1/message/{before.id}")  # reading marks it read
    with CaptureServer(tls="none", maildir=maildir, web=("127.0.0.1", 0)) as second:
        assert get_json(second.web_url + "api/v1/messages")["unread"] == 0  # still read
        # Deleting removes the files too: the message does not come back.
        second.store.delete()
    with CaptureServer(tls="none", maildir=maildir) as third:
        assert third.messages == []
    # A file another program put there is listed, its envelope read from its headers.
    (maildir / "new" / "1.foreign.host").write_bytes(simple("dropped in", to="q@example.org"))
    with CaptureServer(tls="none", maildir=maildir) as fourth:
        (foreign,) = fourth.messages
        assert foreign.rcpt_tos == ["q@example.org"]


# -- what keeps others out ---------------------------------------------------------------------


def test_security_headers(catcher: CaptureServer) -> None:
    with urllib.request.urlopen(catcher.web_url, timeout=WAIT) as page:
        policy = page.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
    with urllib.request.urlopen(catcher.web_url + "api/v1/messages", timeout=WAIT) as api:
        assert "sandbox" in api.headers["Content-Security-Policy"]
    with urllib.request.urlopen(catcher.web_url + "api/v1/events", timeout=WAIT) as events:
        assert events.headers["X-Frame-Options"] == "DENY"
    status, _ = call(catcher.web_url + "api/v1/message/nope", "GET")
    assert status == 404


def test_cross_site_writes_and_foreign_host_names_are_refused(catcher: CaptureServer) -> None:
    send(catcher, simple("keep"))
    catcher.wait_for(1)
    url = catcher.web_url + "api/v1/messages"
    assert call(url, "DELETE", Origin="http://evil.example")[0] == 403
    assert call(url, "DELETE", **{"Sec-Fetch-Site": "cross-site"})[0] == 403
    # A form can only send form encodings: refused (a JSON body needs a CORS preflight).
    request = urllib.request.Request(
        url,
        data=b"IDs=x",
        method="PUT",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=WAIT)
    assert err.value.code == 415
    # DNS rebinding: the right address under another name is refused.
    assert call(url, "GET", Host="evil.example:80")[0] == 421
    assert len(catcher.messages) == 1
    assert (
        call(url, "GET", Host=f"localhost:{catcher.web_url.rsplit(':', 1)[1].strip('/')}")[0] == 200
    )


def test_the_api_answers_only_on_the_address_it_was_given() -> None:
    with CaptureServer(tls="none", web=("127.0.0.2", 0)) as server:
        port = int(server.web_url.rsplit(":", 1)[1].strip("/"))
        assert get_json(server.web_url + "api/v1/info")["Messages"] == 0
        for other in ("127.0.0.1", "127.0.0.3"):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((other, port), timeout=WAIT).close()


def test_mailboxes_keep_mail_apart(catcher: CaptureServer) -> None:
    with catcher.open_mailbox("app-a") as a, catcher.open_mailbox("app-b") as b:
        with Client(a.host, a.port, tls="none", timeout=WAIT) as client:
            client.send(simple("for a"), sender="x@example.org", recipients=["a@example.org"])
        with Client(b.host, b.port, tls="none", timeout=WAIT) as client:
            client.send(simple("for b"), sender="x@example.org", recipients=["b@example.org"])
        assert [m.rcpt_tos for m in a.wait_for(1)] == [["a@example.org"]]
        assert [m.rcpt_tos for m in b.wait_for(1)] == [["b@example.org"]]
        found = get_json(catcher.web_url + "api/v1/search?query=mailbox:app-a")
        assert [m["Subject"] for m in found["messages"]] == ["for a"]
    wait_until(lambda: len(catcher.messages) == 2)


def test_release_urls() -> None:
    from postwire.capture.release import parse_release_url

    plain = parse_release_url("smtp://relay.example")
    assert (plain.host, plain.port, plain.tls, plain.username) == (
        "relay.example",
        25,
        "none",
        None,
    )
    assert parse_release_url("smtp+starttls://relay.example").port == 587
    implicit = parse_release_url(
        "smtps://me@relay.example:2465?cafile=/ca.pem", {"POSTWIRE_RELEASE_PASSWORD": "pw"}
    )
    assert (implicit.tls, implicit.port, implicit.username, implicit.password) == (
        "implicit",
        2465,
        "me",
        "pw",
    )
    assert implicit.cafile == "/ca.pem"
    for bad in ("http://x", "smtp://", "smtp://me:pw@x", "smtp://me@x", "smtp://x?what=1"):
        with pytest.raises(ValueError):
            parse_release_url(bad, {})
