"""The quick-start demo: send one message through an embedded capture server.

It starts :class:`~postwire.capture.CaptureServer` on a free loopback port
with STARTTLS (a freshly generated CA) and AUTH, sends a sample message with
:class:`~postwire.Client` over STARTTLS + AUTH, and prints the SMTP transcript
and the message exactly as the server stored it.
"""

from __future__ import annotations

import sys
import tempfile
from email.message import EmailMessage
from pathlib import Path
from typing import TextIO

from ..client import Client

__all__ = ["run_demo"]


def sample_message() -> EmailMessage:
    """The message the demo sends (with a Bcc, a non-ASCII subject and a leading dot)."""
    msg = EmailMessage()
    msg["From"] = "Ada Lovelace <ada@example.org>"
    msg["To"] = "Charles Babbage <charles@example.org>"
    msg["Bcc"] = "archive@example.org"
    msg["Subject"] = "Hello from postwire ✉"
    msg.set_content(
        "Hello Charles,\n\n"
        "this message went over STARTTLS with AUTH to a local capture server.\n"
        ".A line that starts with a dot arrives intact (RFC 5321 §4.5.2).\n"
        "\nAda\n"
    )
    return msg


def run_demo(maildir: str | Path | None = None, out: TextIO | None = None) -> int:
    """Run the demo; returns a process exit code."""
    from ..capture import CaptureServer  # needs the 'capture' extra (aiosmtpd)

    out = out or sys.stdout
    user, password = "demo", "demo-password"
    with tempfile.TemporaryDirectory(prefix="postwire-demo-") as tmp:
        box = Path(maildir) if maildir is not None else Path(tmp) / "Maildir"
        with CaptureServer(tls="starttls", auth={user: password}, maildir=box) as server:
            print(
                f"capture server listening on {server.host}:{server.port} "
                f"(STARTTLS, AUTH; CA in {server.ca_file})",
                file=out,
            )
            print("\n--- SMTP transcript (AUTH payload redacted) ---", file=out)
            with Client(
                server.host,
                server.port,
                tls="starttls",
                cafile=server.ca_file,
                username=user,
                password=password,
                timeout=10,
                transcript=lambda line: print(line, file=out),
            ) as client:
                result = client.send(sample_message())
            [captured] = server.wait_for(1, timeout=10)
            print("\n--- result ---", file=out)
            print(f"accepted: {', '.join(result.accepted)}", file=out)
            print(f"server reply: {result.reply}", file=out)
            print(f"summary: {captured.summary()}", file=out)
            kept = "" if maildir is not None else " (a temporary Maildir: --maildir DIR keeps it)"
            print(f"stored in: {captured.path}{kept}", file=out)
            print("\n--- the message as it arrived ---", file=out)
            print(captured.data.decode("utf-8", "replace").replace("\r\n", "\n"), file=out)
    return 0
