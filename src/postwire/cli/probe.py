"""``postwire probe host[:port]``: what a server offers, and whether its TLS verifies.

It connects as a client would (greeting, EHLO, STARTTLS or implicit TLS, EHLO
again), times a NOOP, and reports the extensions, the TLS version and cipher
and the certificate.  It never authenticates and never sends mail.  When the
certificate does not verify it says why, then reconnects once with an
unverified context only to show the certificate.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import time
from datetime import datetime, timezone
from typing import Any, cast

from ..client import Client
from ..errors import CertificateError, TLSRequired
from .connection import (
    Target,
    add_connection_options,
    make_client,
    settings_from_args,
    target_from,
)
from .exits import Exit, exit_code_for
from .output import Transcript, one_line, print_error, print_json, report_failure
from .x509 import parse_certificate

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[Any], epilog: str) -> None:
    """Add the ``probe`` command and its options to ``sub``."""
    parser = sub.add_parser(
        "probe",
        help="show a server's greeting, extensions, TLS and certificate",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "server",
        nargs="?",
        metavar="HOST[:PORT]",
        help="the server (default: the configured one); without --tls: implicit TLS on port "
        "465, else STARTTLS when offered",
    )
    add_connection_options(parser, server=False)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _unverified_context() -> ssl.SSLContext:
    # Only to display the certificate after verification failed; nothing is sent over it.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _greeting(client: Client | None) -> dict[str, object] | None:
    reply = client.greeting if client is not None else None
    if reply is None:
        return None
    return {"code": reply.code, "lines": list(reply.lines)}


def _would_fail(client: Client, send_tls: str, user: str | None) -> str | None:
    """Why a send with the same options would fail on this server, or None.

    The probe itself connects with STARTTLS only when offered, to show what the
    server does; a send requires what its options say (``--tls``, default
    starttls) and logs in when a user is configured.
    """
    tls_used = client.tls_info() is not None
    if send_tls == "starttls" and not tls_used:
        return (
            "STARTTLS required but not offered: a send with these options would refuse to "
            "go on in plain text (use --tls implicit for a port like 465, or --tls none / "
            "--tls opportunistic only if plain text is really acceptable)"
        )
    if user is not None and not client.extensions.auth_mechanisms:
        return f"--user {user} given, but the server offers no AUTH"
    return None


def _certificate(der: object) -> dict[str, object] | None:
    if not isinstance(der, bytes):
        return None
    try:
        cert = parse_certificate(der)
    except ValueError as exc:
        return {"error": f"cannot decode the certificate: {exc}"}
    data = cert.as_json()
    data["expires_in_days"] = (cert.not_after - datetime.now(timezone.utc)).days
    return data


def _report(
    client: Client,
    transcript: Transcript,
    *,
    verify_error: CertificateError | None,
    problem: str | None,
    connect_ms: float,
    rtt_ms: float,
) -> dict[str, object]:
    ext = client.extensions
    info = client.tls_info()
    first_ehlo = transcript.server_lines("EHLO")
    first_keywords = [line[4:].split(" ")[0].upper() for line in first_ehlo]
    tls: dict[str, object] = {"active": info is not None}
    if info is not None:
        tls.update(
            how="implicit" if client.tls == "implicit" else "starttls",
            version=info.get("version"),
            cipher=info.get("cipher"),
            verified=verify_error is None,
            verify_error=one_line(verify_error) if verify_error is not None else None,
            certificate=_certificate(info.get("peercert_der")),
        )
    else:
        tls["starttls_offered"] = "STARTTLS" in first_keywords[1:]  # line 1 is the name
    code: int = Exit.OK
    if verify_error is not None:
        code = Exit.PROTOCOL
    elif problem is not None:
        # The exit code the send itself would end with.
        failure = TLSRequired(problem, step="STARTTLS") if "STARTTLS" in problem else None
        code = exit_code_for(failure) if failure is not None else Exit.UNAVAILABLE
    return {
        "ok": code == Exit.OK,
        "server": f"{client.host}:{client.port}",
        "greeting": _greeting(client),
        "problem": problem,
        "extensions": dict(ext.keywords),
        "auth_mechanisms": sorted(ext.auth_mechanisms),
        "size_limit": ext.max_size,
        "tls": tls,
        "connect_ms": round(connect_ms, 1),
        "rtt_ms": round(rtt_ms, 1),
        "exit_code": code,
    }


def _expiry(not_after: str) -> str:
    left = datetime.fromisoformat(not_after) - datetime.now(timezone.utc)
    hours = int(left.total_seconds() // 3600)
    if hours < 0:
        return f"EXPIRED {-hours // 24} days ago"
    return f"in {hours} hours" if hours < 48 else f"in {hours // 24} days"


def _print_report(report: dict[str, object]) -> None:
    def row(label: str, value: object) -> None:
        print(f"{label:<13} {value}")

    greeting = cast("dict[str, object] | None", report["greeting"])
    row("server", report["server"])
    if greeting is not None:
        lines = cast("list[str]", greeting["lines"])
        row("greeting", f"{greeting['code']} {' / '.join(lines)}".rstrip())
    tls = cast("dict[str, object]", report["tls"])
    steps = "TCP, greeting, EHLO" + (", TLS, EHLO" if tls["active"] else "")
    row("connected in", f"{report['connect_ms']} ms ({steps})")
    row("round trip", f"{report['rtt_ms']} ms (NOOP)")
    if not tls["active"]:
        offered = "offered but not used" if tls.get("starttls_offered") else "not offered"
        row("TLS", f"none (STARTTLS {offered})")
    else:
        row("TLS", f"{tls['version']}, {tls['cipher']} ({tls['how']})")
        cert = cast("dict[str, object] | None", tls["certificate"])
        if cert is not None and "error" in cert:
            row("certificate", cert["error"])
        elif cert is not None:
            names = cast("list[str]", cert["names"])
            row("certificate", f"subject   {cert['subject']}")
            row("", f"issuer    {cert['issuer']}")
            row("", f"valid     {cert['not_before']} to {cert['not_after']}")
            row("", f"expires   {_expiry(str(cert['not_after']))}")
            row("", f"names     {', '.join(names) or '(none)'}")
            row("", f"sha256    {cert['sha256']}")
        verdict = "yes" if tls["verified"] else f"NO: {tls['verify_error']}"
        row("verified", verdict)
    ext = cast("dict[str, str]", report["extensions"])
    row("extensions", ", ".join(f"{k} {v}".strip() for k, v in ext.items()) or "(none: HELO)")
    auth = cast("list[str]", report["auth_mechanisms"])
    row("AUTH", " ".join(auth) if auth else "not offered")
    size = report["size_limit"]
    if size is None:
        row("SIZE", "not announced")
    elif size == 0:
        row("SIZE", "no fixed limit")
    else:
        row("SIZE", f"{size} bytes ({cast(int, size) / (1 << 20):.1f} MiB)")


def _connect(
    target: Target, transcript: Transcript, attempts: list[Client]
) -> tuple[Client, CertificateError | None, float]:
    """Connect (again, unverified, to show a certificate that did not verify)."""
    start = time.monotonic()
    client = make_client(target, transcript)
    attempts.append(client)
    try:
        client.connect()
        return client, None, (time.monotonic() - start) * 1000
    except CertificateError as exc:
        transcript.note("certificate did not verify; connecting again, unverified, to show it")
        retry = make_client(target, transcript, ssl_context=_unverified_context())
        attempts.append(retry)
        start = time.monotonic()
        retry.connect()
        return retry, exc, (time.monotonic() - start) * 1000


def run(args: argparse.Namespace) -> int:
    """Run ``postwire probe``; returns the exit code."""
    transcript = Transcript(sys.stderr if args.transcript else None)
    attempts: list[Client] = []
    try:
        settings = settings_from_args(args)
        # A send with these options would use this TLS mode (its default: starttls).
        text = args.server or settings.server or ""
        send_tls = settings.tls or ("implicit" if text.rstrip().endswith(":465") else "starttls")
        if settings.tls is None:
            text = args.server or settings.server or ""
            implicit = text.rstrip().endswith(":465")
            settings.tls = "implicit" if implicit else "opportunistic"
        target = target_from(settings, missing_password=Exit.USAGE, server=args.server, auth=False)
        client, verify_error, connect_ms = _connect(target, transcript, attempts)
        try:
            start = time.monotonic()
            client.noop()
            rtt_ms = (time.monotonic() - start) * 1000
            report = _report(
                client,
                transcript,
                verify_error=verify_error,
                problem=_would_fail(client, send_tls, settings.user),
                connect_ms=connect_ms,
                rtt_ms=rtt_ms,
            )
        finally:
            client.quit()
    except Exception as exc:
        greeting = _greeting(attempts[-1] if attempts else None)
        return report_failure(exc, as_json=args.json, extra={"greeting": greeting})
    if args.json:
        print_json(report)
    else:
        _print_report(report)
    if verify_error is not None:
        print_error(verify_error)
    if report["problem"] is not None:
        print_error(f"a send would fail: {report['problem']}")
    return cast(int, report["exit_code"])
