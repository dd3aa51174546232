"""A private Postfix + Dovecot (SASL) instance on 127.0.0.1, run in the foreground by the tests.

Everything lives under one base directory (config, queue, Maildir, certificates, logs) and the
daemons are child processes of the test run, so the system's own Postfix and Dovecot are never
touched.  It needs root (Postfix's master and the local delivery agent switch users), exactly as
on the CI machine.  The measured facts behind every setting are in the project's server recipes.

What the instance does with mail:

- ``*@test.example``: delivered into the Maildir at :attr:`PostfixServer.inbox`, bytes as sent
  (no header rewriting, no MIME conversion), apart from the trace fields that
  :func:`strip_trace` removes;
- ``rejected@test.example``: ``550`` at RCPT; ``tempfail@test.example``: ``450`` at RCPT;
- ``*@discard.test``: accepted, then thrown away (a sink for benchmarks);
- ``*@bounce.test``: accepted at RCPT, then it fails delivery (5.1.1): Postfix sends the
  sender a delivery status notification (RFC 3464) into the inbox when it is a test.example
  address, as asked with DSN (RFC 3461);
- any other domain: ``554`` at RCPT (no relaying, not even for authenticated clients).

The ports: plain SMTP (STARTTLS and AUTH offered), submission (STARTTLS required), implicit
TLS, DKIM (through the OpenDKIM milter), and :attr:`PostfixServer.recording_port`, which asks
for a client certificate, offers XOAUTH2 and OAUTHBEARER besides the password mechanisms
(tokens from :attr:`PostfixServer.oauth`), and writes into each message's ``Received`` field
what it saw: the TLS version, the client certificate's CN and issuer, and the SASL user.
"""

from __future__ import annotations

import atexit
import contextlib
import email
import email.policy
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType

import trustme

from servers.oauth import TokenIntrospection

__all__ = ["DEFAULT_USERS", "PostfixServer", "strip_trace"]

#: SASL accounts in Dovecot's passwd-file.  One ASCII password (CRAM-MD5 and LOGIN friendly)
#: and one UTF-8 password with non-ASCII characters for AUTH PLAIN (RFC 4616 uses UTF-8).
DEFAULT_USERS: Mapping[str, str] = {
    "alice@test.example": "alice-Secret-1",
    "bob@test.example": "pässwörd-Ünïcødé-2",
}

# Only the sbin directories are searched: a non-root PATH on Debian does not contain them.
_SEARCH_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"
_NOBODY = 65534
_MIB = 1024 * 1024

# The header fields Postfix prepends on delivery, in the order the virtual(8) agent writes them.
_TRACE_FIELDS = (b"return-path", b"x-original-to", b"delivered-to", b"received")


def _tool(name: str) -> str:
    path = shutil.which(name, path=_SEARCH_PATH)
    if path is None:
        raise RuntimeError(
            f"{name!r} not found: install the Debian packages postfix and dovecot-core "
            "(`./run tests` does it)"
        )
    return path


def _free_ports(count: int) -> list[int]:
    """Ask the kernel for distinct free TCP ports on 127.0.0.1.

    All sockets stay open until every port is chosen, so the ports differ.  Another process may
    still take one before Postfix binds it; :meth:`PostfixServer.start` retries in that case.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def _split_first_field(raw: bytes) -> tuple[bytes, bytes] | None:
    """Return (first header field with its folded continuation lines, rest), or None."""
    end = raw.find(b"\n")
    while end != -1 and raw[end + 1 : end + 2] in (b" ", b"\t"):
        end = raw.find(b"\n", end + 1)
    if end == -1:
        return None
    return raw[: end + 1], raw[end + 1 :]


def strip_trace(raw: bytes) -> bytes:
    """Undo what Postfix added on delivery, so a test can compare with the bytes it sent.

    Removes the leading ``Return-Path``, ``X-Original-To``, ``Delivered-To`` fields and the one
    ``Received`` field Postfix prepends (folded over several lines), in that order, each at most
    once, so that fields the client itself sent (its own ``Received`` lines, say) are kept.  The
    Maildir file has bare LF line endings; they become CRLF again, as on the wire (RFC 5322 §2.1).
    """
    rest = raw
    for name in _TRACE_FIELDS:
        split = _split_first_field(rest)
        if split is None:
            break
        field, after = split
        if field.split(b":", 1)[0].strip().lower() == name:
            rest = after
    return rest.replace(b"\n", b"\r\n")


def _main_cf(base: Path, compatibility_level: str) -> str:
    dovecot = base / "dovecot"
    tls = base / "tls"
    # Recipient policy: the access map runs after reject_unauth_destination (relay restrictions),
    # so other domains still get 554 and these two get the codes a client must tell apart.
    access = (
        "inline:{ "
        "{ rejected@test.example = 550 5.1.1 Recipient rejected by test policy }, "
        "{ tempfail@test.example = 450 4.2.0 try later } }"
    )
    size = 30 * _MIB
    # bounce.test goes through a pipe that exits EX_NOUSER (67): Postfix accepts the
    # recipient and bounces after delivery fails.  (An error: transport would be refused
    # at RCPT already, and nothing would come back.)
    transports = "inline:{ discard.test=discard:, bounce.test=nouser: }"
    return f"""\
# Generated by tests/servers/postfix.py: a private test instance, loopback only.
compatibility_level = {compatibility_level}
queue_directory = {base}/spool
data_directory = {base}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postwire-test.localhost
mydomain = localhost
myorigin = $myhostname
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = {base}/maillog
maillog_file_prefixes = {base}, /dev/stdout
biff = no
append_dot_mydomain = no
readme_directory = no
smtpd_banner = $myhostname ESMTP postwire test instance

# No local delivery, no aliases: only the virtual Maildir below and the discard sink.
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
virtual_mailbox_domains = test.example
virtual_mailbox_base = {base}/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{_NOBODY}
virtual_gid_maps = static:{_NOBODY}
relay_domains = discard.test, bounce.test
transport_maps = {transports}
default_transport = discard:no default transport in the test instance
relay_transport = discard:no relay transport in the test instance
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access {access}

# Keep the bytes as sent: no headers added, no 8BITMIME downgrade, no MIME checks.
local_header_rewrite_clients =
disable_mime_input_processing = yes
disable_mime_output_conversion = yes
smtputf8_enable = yes
message_size_limit = {size}
mailbox_size_limit = 0
virtual_mailbox_limit = 0

# No throttling: tests make many connections and provoke errors on purpose.
in_flow_delay = 0
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 100
smtpd_junk_command_limit = 1000

smtpd_tls_chain_files = {tls}/server.key, {tls}/server.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = no

smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {dovecot}/auth-postfix
# Dovecot also offers XOAUTH2 and OAUTHBEARER; only the recording port announces them.
smtpd_sasl_mechanism_filter = plain, login, cram-md5
"""


def _master_cf(ports: tuple[int, int, int, int, int], milter: int, base: Path) -> str:
    smtp, submission, smtps, dkim, recording = ports
    tls = base / "tls"
    # Every service runs without chroot (column 5 = n): the queue lives outside /var/spool.
    services = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""
    nouser = (
        "nouser    unix  -       n       n       -       -       pipe\n"
        f"  user=nobody argv={base}/nouser.sh\n"
    )
    return f"""\
# Generated by tests/servers/postfix.py.
# Plain SMTP: STARTTLS offered, AUTH offered before it too.
127.0.0.1:{smtp} inet n - n - - smtpd
# Submission-like: STARTTLS required before MAIL and AUTH.
127.0.0.1:{submission} inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
# Implicit TLS (RFC 8314 §3.3): the TLS handshake comes before the greeting.
127.0.0.1:{smtps} inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
# DKIM checked: every message goes through the OpenDKIM milter (tests/servers/opendkim.py);
# without it running, the message is refused with 451 rather than delivered unchecked.
127.0.0.1:{dkim} inet n - n - - smtpd
  -o smtpd_milters=inet:127.0.0.1:{milter}
  -o milter_default_action=tempfail
  -o milter_connect_timeout=5s
# Recording: asks for a client certificate (verified against the test CA) and writes the TLS
# details, the certificate's CN and issuer and the SASL user into the Received field; also
# announces XOAUTH2 and OAUTHBEARER (Dovecot asks the token introspection endpoint).
127.0.0.1:{recording} inet n - n - - smtpd
  -o smtpd_tls_ask_ccert=yes
  -o smtpd_tls_CAfile={tls}/ca.pem
  -o smtpd_tls_received_header=yes
  -o smtpd_sasl_authenticated_header=yes
  -o smtpd_sasl_mechanism_filter=plain,login,cram-md5,xoauth2,oauthbearer
{services}{nouser}"""


def _dovecot_conf(base: Path) -> str:
    dovecot = base / "dovecot"
    return f"""\
# Generated by tests/servers/postfix.py: Dovecot only as Postfix's SASL backend.
protocols =
base_dir = {dovecot}/run
state_dir = {dovecot}/state
instance_name = postwire-test-{os.getpid()}
log_path = {dovecot}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 xoauth2 oauthbearer
# Dovecot 2.3 still answers a failed AUTH on its next 0.5 s timer tick, not at once.
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  # A bearer token is never checked as a password.
  mechanisms = plain login cram-md5
  # CRAM-MD5 needs the password itself, hence PLAIN.
  args = scheme=PLAIN {dovecot}/users
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {dovecot}/oauth2.conf.ext
}}
userdb {{
  driver = static
  args = uid={_NOBODY} gid={_NOBODY} home=/nonexistent
}}
service auth {{
  unix_listener {dovecot}/auth-postfix {{
    mode = 0666
  }}
}}
# Without this every failed AUTH from 127.0.0.1 delays the next ones by 2 to 15 s.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def _oauth2_conf(introspection_url: str) -> str:
    # RFC 7662 introspection by POST; the answer must say active and name the SASL user.
    return f"""\
introspection_mode = post
introspection_url = {introspection_url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
"""


class PostfixServer:
    """A private Postfix 3.7 (+ Dovecot SASL) instance under ``base``, on free 127.0.0.1 ports.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.  ``base`` and every
    directory above it must be traversable by other users (the ``postfix``, ``dovecot`` and
    ``nobody`` accounts work inside it), which rules out pytest's own 0700 temporary tree.
    """

    host = "127.0.0.1"
    #: Recipients with a fixed fate (see the module docstring).
    rejected_recipient = "rejected@test.example"
    tempfail_recipient = "tempfail@test.example"

    def __init__(
        self,
        base: Path,
        *,
        users: Mapping[str, str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        base = Path(base).absolute()
        if re.search(r"[\s,${}=]", str(base)):
            raise ValueError(f"base directory must not contain spaces or ,$={{}}: {base}")
        self.base: Path = base
        self.users: dict[str, str] = dict(DEFAULT_USERS if users is None else users)
        for name, password in self.users.items():
            if re.search(r"[:\r\n\x00]", name + password):
                raise ValueError("user names and passwords must not contain ':', CR, LF, NUL")
        self.start_timeout = start_timeout
        self.smtp_port = 0
        self.submission_port = 0
        self.smtps_port = 0
        #: A port whose messages the DKIM milter on ``milter_port`` checks (see opendkim.py).
        self.dkim_port = 0
        self.milter_port = 0
        #: STARTTLS offered, a client certificate asked for, XOAUTH2/OAUTHBEARER offered; the
        #: Received field records TLS, the certificate and the SASL user (module docstring).
        self.recording_port = 0
        #: The token introspection endpoint behind XOAUTH2 and OAUTHBEARER (``oauth.issue(user)``).
        self.oauth = TokenIntrospection()
        self.mail_config: Path = base / "etc"
        self.inbox: Path = base / "mail" / "inbox"
        self.ca_file: Path = base / "tls" / "ca.pem"
        #: A client certificate (CN ``postwire-client.test``) signed by the test CA, and its key.
        self.client_cert_file: Path = base / "tls" / "client.pem"
        self.client_key_file: Path = base / "tls" / "client.key"
        self.maillog: Path = base / "maillog"
        self.dovecot_log: Path = base / "dovecot" / "dovecot.log"
        self._postfix: subprocess.Popen[bytes] | None = None
        self._dovecot: subprocess.Popen[bytes] | None = None
        self._master_pid: int | None = None

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> PostfixServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Write the configuration, start Dovecot and Postfix, wait until every port answers.

        Raises ``RuntimeError`` with the tail of the logs when a daemon fails to come up within
        ``start_timeout`` seconds; nothing is left running in that case.
        """
        if self._postfix is not None:
            raise RuntimeError("PostfixServer already started")
        if os.geteuid() != 0:
            raise RuntimeError("the private Postfix instance must be started as root")
        deadline = time.monotonic() + self.start_timeout
        atexit.register(self.stop)
        try:
            self.oauth.start()
            self._prepare()
            self._start_dovecot(deadline)
            # A port picked as free may be taken by someone else before master binds it.
            for attempt in range(3):
                self._pick_ports()
                self._run_checked("check")
                try:
                    self._start_postfix(deadline)
                    break
                except RuntimeError:
                    if attempt == 2 or "Address already in use" not in _tail(self.maillog, 10):
                        raise
                    self._stop_postfix()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop Postfix and Dovecot (bounded waits, then SIGKILL). Safe to call twice."""
        atexit.unregister(self.stop)
        self._stop_postfix()
        if self._dovecot is not None:
            _terminate(self._dovecot, pgid=self._dovecot.pid)
            self._dovecot = None
        self.oauth.stop()

    # -- mailbox ----------------------------------------------------------------------------

    def messages(self) -> list[bytes]:
        """The raw delivered files (Maildir ``new/`` and ``cur/``), oldest first."""
        files = [p for sub in ("new", "cur") for p in (self.inbox / sub).iterdir() if p.is_file()]
        files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [p.read_bytes() for p in files]

    def clear(self) -> None:
        """Delete every delivered message."""
        for sub in ("new", "cur"):
            for path in (self.inbox / sub).iterdir():
                path.unlink(missing_ok=True)

    def wait_for_messages(self, count: int, timeout: float = 15.0) -> list[bytes]:
        """Wait until at least ``count`` messages were delivered and return all of them.

        Maildir delivery renames a complete file into ``new/``, so no message is partial.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages()
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{len(found)} of {count} messages arrived in {timeout} s; maillog ends:\n"
                    + _tail(self.maillog, 20)
                )
            time.sleep(0.05)

    # -- internals --------------------------------------------------------------------------

    def _pick_ports(self) -> None:
        ports = _free_ports(6)
        self.smtp_port, self.submission_port, self.smtps_port, self.dkim_port = ports[:4]
        self.recording_port, self.milter_port = ports[4:]
        master_cf = _master_cf(self._smtp_ports(), self.milter_port, self.base)
        (self.mail_config / "master.cf").write_text(master_cf, encoding="utf-8")

    def _smtp_ports(self) -> tuple[int, int, int, int, int]:
        return (
            self.smtp_port,
            self.submission_port,
            self.smtps_port,
            self.dkim_port,
            self.recording_port,
        )

    def _prepare(self) -> None:
        """Create the directory tree, certificates, accounts and configuration files."""
        base = self.base
        base.mkdir(parents=True, exist_ok=True)
        _require_traversable(base)
        base.chmod(0o755)
        for sub, mode in (("etc", 0o755), ("spool", 0o755), ("tls", 0o700), ("dovecot", 0o755)):
            (base / sub).mkdir(mode=mode, exist_ok=True)
        for sub in ("run", "state"):
            (base / "dovecot" / sub).mkdir(mode=0o755, exist_ok=True)
        # The virtual(8) agent writes the Maildir as nobody.
        for path in (base / "mail", self.inbox, *(self.inbox / s for s in ("new", "cur", "tmp"))):
            path.mkdir(mode=0o700, exist_ok=True)
            os.chown(path, _NOBODY, _NOBODY)

        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
        ca.cert_pem.write_to_path(str(self.ca_file))
        key_file = base / "tls" / "server.key"
        cert.private_key_pem.write_to_path(str(key_file))
        key_file.chmod(0o600)
        chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
        (base / "tls" / "server.pem").write_bytes(chain)
        client = ca.issue_cert("postwire-client.test", common_name="postwire-client.test")
        client.private_key_pem.write_to_path(str(self.client_key_file))
        self.client_key_file.chmod(0o600)
        client.cert_chain_pems[0].write_to_path(str(self.client_cert_file))

        users = "".join(f"{name}:{{PLAIN}}{pw}::::::\n" for name, pw in self.users.items())
        (base / "dovecot" / "users").write_text(users, encoding="utf-8")
        (base / "dovecot" / "dovecot.conf").write_text(_dovecot_conf(base), encoding="utf-8")
        (base / "dovecot" / "oauth2.conf.ext").write_text(
            _oauth2_conf(self.oauth.url), encoding="utf-8"
        )
        # The bounce.test transport: delivery fails for good (sysexits EX_NOUSER).
        (base / "nouser.sh").write_text("#!/bin/sh\nexit 67\n", encoding="utf-8")
        (base / "nouser.sh").chmod(0o755)

        version = subprocess.run(
            [_tool("postconf"), "-d", "-h", "mail_version"],
            capture_output=True,
            check=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        level = ".".join(version.split(".")[:2])
        (self.mail_config / "main.cf").write_text(_main_cf(base, level), encoding="utf-8")

    def _run_checked(self, *args: str) -> None:
        """Run ``postfix -c BASE/etc ARGS``; it prints nothing when stderr is not a terminal."""
        done = subprocess.run(
            [_tool("postfix"), "-c", str(self.mail_config), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"postfix {' '.join(args)} failed ({done.returncode}): "
                f"{done.stderr.decode(errors='replace')}\nmaillog ends:\n{_tail(self.maillog)}"
            )

    def _start_dovecot(self, deadline: float) -> None:
        conf = self.base / "dovecot" / "dovecot.conf"
        with (self.base / "dovecot" / "stderr.log").open("wb") as err:
            self._dovecot = subprocess.Popen(
                [_tool("dovecot"), "-F", "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        socket_path = self.base / "dovecot" / "auth-postfix"
        while not socket_path.exists():
            if self._dovecot.poll() is not None or time.monotonic() >= deadline:
                raise RuntimeError(
                    "Dovecot did not start; its log ends:\n"
                    + _tail(self.dovecot_log)
                    + "\n"
                    + _tail(self.base / "dovecot" / "stderr.log")
                )
            time.sleep(0.02)

    def _start_postfix(self, deadline: float) -> None:
        # "start-fg" keeps master(8) as our grandchild (postfix -> postfix-script -> master -s).
        with (self.base / "postfix-stdout.log").open("wb") as out:
            self._postfix = subprocess.Popen(
                [_tool("postfix"), "-c", str(self.mail_config), "start-fg"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        for port in self._smtp_ports():
            while not _accepts(self.host, port):
                if self._postfix.poll() is not None or time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"Postfix did not listen on {self.host}:{port}; maillog ends:\n"
                        + _tail(self.maillog)
                    )
                time.sleep(0.02)
        pid_file = self.base / "spool" / "pid" / "master.pid"
        with contextlib.suppress(OSError, ValueError):
            self._master_pid = int(pid_file.read_text().split()[0])

    def _stop_postfix(self) -> None:
        if self._postfix is None:
            return
        if self._postfix.poll() is None:
            if self._master_pid is not None:
                # What "postfix stop" does, without its one-second polling sleeps: SIGTERM makes
                # master(8) stop its children and exit; "start-fg" then returns.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._master_pid, signal.SIGTERM)
            else:
                with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                    subprocess.run(
                        [_tool("postfix"), "-c", str(self.mail_config), "stop"],
                        stdin=subprocess.DEVNULL,
                        capture_output=True,
                        timeout=15,
                    )
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._postfix.wait(timeout=10)
        _terminate(self._postfix, pgid=self._postfix.pid)
        # master(8) makes itself a process group leader; sweep up whatever outlived it.
        if self._master_pid is not None:
            _kill_group(self._master_pid)
            self._master_pid = None
        self._postfix = None


def _require_traversable(base: Path) -> None:
    for path in base.parents:
        if not path.stat().st_mode & 0o001:
            raise RuntimeError(
                f"{path} is not traversable by other users (mode "
                f"{path.stat().st_mode & 0o7777:o}); Postfix's daemons could not reach {base}"
            )


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _terminate(proc: subprocess.Popen[bytes], *, pgid: int, timeout: float = 10.0) -> None:
    """SIGTERM to the process group, a bounded wait, then SIGKILL for whatever is left."""
    if proc.poll() is None:
        # The whole group at once: Dovecot's master alone waits about a second for its children.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    _kill_group(pgid)


def delivered_messages(server: PostfixServer, count: int) -> list[EmailMessage]:
    """The next ``count`` messages of the inbox, parsed (bounded wait)."""
    found = []
    for raw in server.wait_for_messages(count, timeout=30):
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        found.append(msg)
    return found


def delivery_status(report: EmailMessage) -> str:
    """The fields of a delivery status notification (RFC 3464), one per line."""
    part = next(p for p in report.walk() if p.get_content_type() == "message/delivery-status")
    return "\n".join(str(block) for block in part.get_payload())
