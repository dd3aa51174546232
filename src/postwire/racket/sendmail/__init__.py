"""Racket's ``net/sendmail``: hand a message to the local ``sendmail`` program.

:func:`send_mail_message` writes a whole message; :func:`send_mail_message_port`
writes the header and returns a text stream for the body.  The header is
Racket's, line for line (``X-Mailer``, ``From``, ``To``, ``CC``, ``Subject``,
the extra headers, a blank line; LF line endings, since sendmail converts them;
non-ASCII text RFC 2047-encoded by :func:`encode_for_header`; Bcc recipients
never written), and sendmail runs as ``sendmail -i -- RECIPIENT...``.

Deliberate differences from Racket (each one a fix):

1. The program is looked up in ``/usr/sbin``, ``/sbin``, ``/usr/local/sbin``,
   ``/usr/lib`` and then on ``PATH``; the :data:`sendmail_program` parameter
   overrides the search, and nothing is cached, so a sendmail installed after a
   failed lookup is found by the next call.
2. Recipients follow ``--`` on the command line; one that starts with ``-`` is
   a :class:`ValueError` (no option injection).
3. CR, LF or NUL in ``from_``, the subject, a recipient or an extra header is a
   :class:`ValueError` (no header injection); so is an empty extra header,
   which would end the header early.
4. The end of the message (closing the port, or the end of
   :func:`send_mail_message`) waits for sendmail and raises
   :class:`~postwire.errors.SendmailError` with its exit status and stderr when
   it fails.  Recipients on the command line are not RFC 2047-encoded.

Smaller choices: the ``X-Mailer`` line keeps Racket's place and layout but
names postwire (:data:`X_MAILER`); a failed lookup raises
:class:`FileNotFoundError` (Racket's ``exn:fail:unsupported``) with Racket's
text; every wait on sendmail is bounded by ``timeout``.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import io
import os
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import IO, TYPE_CHECKING, Protocol, runtime_checkable

from ...errors import SendmailError
from ..parameters import Parameter

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "X_MAILER",
    "SendmailPort",
    "SendmailSignature",
    "encode_for_header",
    "find_sendmail",
    "run_sendmail",
    "send_mail_message",
    "send_mail_message_port",
    "sendmail_program",
    "sendmail_search_path",
    "sendmail_unit",
]

#: The value of the ``X-Mailer`` header line (Racket writes ``Racket (racket-lang.org)``).
X_MAILER = "postwire (Racket net/sendmail compatible)"

#: The directories searched, in order, before ``PATH`` (Racket's ``sendmail-search-path``).
sendmail_search_path: tuple[str, ...] = ("/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/lib")

_KILL_WAIT = 5.0  # seconds to wait for a killed sendmail to be reaped
_STDERR_LIMIT = 64 * 1024  # bytes of sendmail's stderr kept for the error text
_FORBIDDEN = re.compile(r"[\r\n\0]")


# ---------------------------------------------------------------------------
# Finding the program


def _program_guard(value: object) -> str | os.PathLike[str] | None:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if not isinstance(path, str):
            raise TypeError("sendmail_program: expected a str path, got a bytes path")
        if not path or "\0" in path:
            raise ValueError(f"sendmail_program: not a usable path: {path!r}")
        return path
    raise TypeError(
        "sendmail_program: expected a path (str or os.PathLike) or None, "
        f"got {type(value).__name__}"
    )


#: The sendmail program to run, or ``None`` (the default) to search for it.
sendmail_program: Parameter[str | os.PathLike[str] | None] = Parameter(
    "sendmail_program", None, _program_guard
)


def _racket_list(items: Iterable[str]) -> str:
    # Racket's ``~s`` of a list of strings: ("a" "b").
    quoted = ('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in items)
    return "(" + " ".join(quoted) + ")"


def find_sendmail() -> str:
    """Return the sendmail program to run.

    The value of :data:`sendmail_program` when it is set; otherwise the first
    executable ``sendmail`` in :data:`sendmail_search_path`, then on ``PATH``.
    The search is done on every call (a failed one is not cached, unlike
    Racket's).  Raises :class:`FileNotFoundError` when nothing is found.
    """
    program = sendmail_program()
    if program is not None:
        return os.fspath(program)
    name = "sendmail.exe" if sys.platform == "win32" else "sendmail"
    for directory in sendmail_search_path:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("sendmail")
    if found is not None:
        return found
    err = FileNotFoundError(
        f"unable to find a sendmail executable in {_racket_list(sendmail_search_path)} or on PATH"
    )
    err.errno = errno.ENOENT
    raise err


# ---------------------------------------------------------------------------
# RFC 2047 encoding, as Racket's net/unihead does it

_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_NON_LATIN1 = re.compile(r"[^\x00-\xff]")
_LINE_PIECE = re.compile(r"[^\r\n]+")
# ASCII without "=" (so nothing that could look like an encoded word), ending in a space.
_ASCII_PREFIX = re.compile(r"([\x00-\x3c\x3e-\x7f]* )(.*)\Z", re.DOTALL)
_ASCII_SUFFIX = re.compile(r"(.*?)( [\x00-\x3c\x3e-\x7f]*)\Z", re.DOTALL)
_PIECE_BYTES = 70  # Racket splits the encoded text every 70 bytes


def _q_encode(data: bytes) -> str:
    # RFC 2047 §4.2 "Q" encoding as Racket produces it: quoted-printable (RFC 2045
    # §6.7) with "_" for a space, and "?" and "_" encoded.  One difference: a TAB
    # is always "=09", where Racket leaves it literal (which breaks the encoded word).
    out: list[str] = []
    last = len(data) - 1
    for i, byte in enumerate(data):
        if byte == 0x20 and i < last:
            out.append("_")
        elif (33 <= byte <= 126) and byte not in (0x3D, 0x3F, 0x5F):
            out.append(chr(byte))
        else:
            out.append(f"={byte:02X}")
    return "".join(out)


def _b_encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _encode_words(text: str) -> str:
    if _NON_LATIN1.search(text):
        charset, kind, encoding = "UTF-8", "B", "utf-8"
    else:
        charset, kind, encoding = "ISO-8859-1", "Q", "latin-1"
    encode = _b_encode if kind == "B" else _q_encode

    def loop(s: str) -> str:
        m = _ASCII_PREFIX.match(s)
        if m:
            return m.group(1) + loop(m.group(2))
        m = _ASCII_SUFFIX.match(s)
        if m:
            return loop(m.group(1)) + m.group(2)
        # RFC 2047 §2 limits an encoded word to 75 characters; like Racket, cut the
        # raw bytes every 70 and fold between the words (sendmail makes "\n" CRLF).
        data = s.encode(encoding)
        pieces = [data[i : i + _PIECE_BYTES] for i in range(0, len(data), _PIECE_BYTES)]
        return "\n ".join(f"=?{charset}?{kind}?{encode(p)}?=" for p in pieces or [b""])

    return loop(text)


def encode_for_header(s: str) -> str:
    """Encode ``s`` for a mail header as Racket's ``net/unihead`` does (RFC 2047).

    ASCII text is returned unchanged.  Otherwise runs of ASCII words at either
    end (next to a space, and without ``=``) stay as they are and the rest
    becomes ``=?ISO-8859-1?Q?...?=`` when it fits in Latin-1, else
    ``=?UTF-8?B?...?=``, one encoded word per 70 bytes, joined by ``"\\n "``.
    Each line of a multi-line string is encoded on its own.
    """
    if not _NON_ASCII.search(s):
        return s
    if "\r" not in s and "\n" not in s:
        return _encode_words(s)
    return _LINE_PIECE.sub(lambda m: _encode_words(m.group()), s)


# ---------------------------------------------------------------------------
# Checking arguments


def _check_text(who: str, what: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{who}: {what} must be a str, got {type(value).__name__}")
    if _FORBIDDEN.search(value):
        # CR or LF would start a new header line (RFC 5322 §2.2): header injection.
        raise ValueError(f"{who}: {what} may not contain CR, LF or NUL: {value!r}")
    return value


def _check_recipients(who: str, what: str, value: object) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{who}: {what} must be a list of str, got {type(value).__name__}")
    recipients = [_check_text(who, f"a {what} recipient", r) for r in value]
    for r in recipients:
        if not r:
            raise ValueError(f"{who}: empty {what} recipient")
        if r.startswith("-"):
            # It would reach sendmail's command line: refuse rather than rely on "--".
            raise ValueError(f"{who}: a recipient may not start with '-': {r!r}")
    return recipients


def _check_extra_header(who: str, header: object) -> str:
    text = _check_text(who, "an extra header", header)
    if not text.strip():
        # A blank line would end the header here and start the body (RFC 5322 §2.1).
        raise ValueError(f"{who}: an extra header may not be empty")
    return text


# ---------------------------------------------------------------------------
# Running sendmail


def _fail_text(program: str, returncode: int) -> str:
    if returncode < 0:
        return f"sendmail failed: {program} was killed by signal {-returncode}"
    return f"sendmail failed: {program} exited with status {returncode}"


class _Job:
    """One running sendmail: bounded writes to its stdin, a bounded wait for its exit."""

    def __init__(self, argv: list[str], timeout: float | None) -> None:
        self.program = argv[0]
        self.timeout = timeout
        self.aborted = False
        self._finished = False
        # stderr goes to a file, not a pipe: a chatty sendmail can never block on it.
        # It lives as long as the job, so no ``with`` block; finish() or _kill() closes it.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
            )
        except OSError as exc:
            self._stderr.close()
            reason = exc.strerror or str(exc)
            raise SendmailError(f"cannot run sendmail program {self.program!r}: {reason}") from exc
        assert self._proc.stdin is not None
        self._stdin = self._proc.stdin
        self._fd = self._stdin.fileno()
        self._selector: selectors.BaseSelector | None = None
        if os.name == "posix":
            # Non-blocking writes after a readiness wait: a stuck sendmail cannot hang us.
            os.set_blocking(self._fd, False)
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._fd, selectors.EVENT_WRITE)

    def write_some(self, data: ReadableBuffer) -> int:
        """Write part of ``data`` to sendmail's stdin; return how many bytes went."""
        view = memoryview(data).cast("B")
        if self.aborted or self._finished:
            # Thrown away (aborted), or sendmail is gone and its error already raised:
            # a later flush must neither write to a closed descriptor nor raise again.
            return len(view)
        if not view:
            return 0
        try:
            while True:
                self._wait_writable()
                try:
                    return os.write(self._fd, view)
                except BlockingIOError:  # pragma: no cover - the pipe filled up meanwhile
                    continue
        except BrokenPipeError as exc:
            # sendmail went away before reading everything: report why.
            self._close_stdin()
            self.finish()
            raise SendmailError(
                f"sendmail failed: {self.program} exited before reading the whole message"
            ) from exc

    def _wait_writable(self) -> None:
        if self._selector is not None and not self._selector.select(self.timeout):
            self._kill()
            raise SendmailError(
                f"sendmail timed out: {self.program} did not read its input within {self.timeout} s"
            )

    def _close_stdin(self) -> None:
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if not self._stdin.closed:
            self._stdin.close()

    def _kill(self) -> None:
        self._finished = True
        self.aborted = True
        self._close_stdin()
        self._proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # an unkillable process
            self._proc.wait(_KILL_WAIT)
        self._stderr.close()

    def abort(self) -> None:
        """Kill sendmail before it sees the end of its input, so nothing is sent."""
        if not self._finished:
            self._kill()

    def finish(self) -> None:
        """Close sendmail's stdin, wait for it to exit, and raise if it failed."""
        if self._finished:
            return
        self._close_stdin()
        try:
            returncode = self._proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise SendmailError(
                f"sendmail timed out: {self.program} did not exit within {self.timeout} s"
            ) from None
        self._finished = True
        try:
            if returncode != 0:
                self._stderr.seek(0)
                stderr = self._stderr.read(_STDERR_LIMIT).decode("utf-8", "replace").strip()
                message = _fail_text(self.program, returncode)
                if stderr:
                    message += ": " + stderr
                raise SendmailError(message, returncode=returncode, stderr=stderr)
        finally:
            self._stderr.close()


class _PipeWriter(io.RawIOBase):
    """The raw layer under :class:`SendmailPort`: bytes go to sendmail's stdin."""

    def __init__(self, job: _Job) -> None:
        super().__init__()
        self._job = job

    def writable(self) -> bool:
        return True

    def write(self, b: ReadableBuffer, /) -> int:
        if self.closed:
            raise ValueError("write to a closed sendmail port")
        return self._job.write_some(b)


class SendmailPort(io.TextIOWrapper):
    """A text stream onto sendmail's standard input (Racket's output port).

    Write the body to it (UTF-8, ``"\\n"`` written as is) and close it: closing
    waits for sendmail to exit and raises :class:`~postwire.errors.SendmailError`
    when it failed.  Used as a context manager it closes at the end of the
    block, unless the block raised: then it calls :meth:`abort`, so a message
    cut short is not sent.
    """

    def __init__(self, job: _Job) -> None:
        self._job = job
        super().__init__(
            io.BufferedWriter(_PipeWriter(job)), encoding="utf-8", errors="strict", newline="\n"
        )

    def close(self) -> None:
        """Finish the message: flush, close sendmail's input and wait for it."""
        if self.closed:
            return
        try:
            super().close()
        finally:
            self._job.finish()

    def abort(self) -> None:
        """Throw the message away: sendmail is killed before it reaches the end.

        Postfix's sendmail then queues nothing (the tests check this).
        """
        self._job.abort()
        if not self.closed:
            super().close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _start(
    program: str | os.PathLike[str] | None, args: Sequence[str], timeout: float | None
) -> _Job:
    path = find_sendmail() if program is None else _program_guard(program)
    assert path is not None
    return _Job([os.fspath(path), *args], timeout)


def run_sendmail(
    message: bytes,
    recipients: Iterable[str],
    *,
    sender: str | None = None,
    program: str | os.PathLike[str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float | None = 60.0,
) -> None:
    """Run ``program -i [extra_args] [-f sender] -- recipients...`` with ``message`` on stdin.

    ``message`` is the whole message (header, blank line, body), given to
    sendmail as is; ``-i`` means a line holding only ``.`` does not end it.
    ``program`` defaults to :func:`find_sendmail`.  At least one recipient is
    needed unless ``extra_args`` contains ``-t`` (recipients from the header).
    ``timeout`` bounds every wait: each write to sendmail, and its exit.
    Raises :class:`~postwire.errors.SendmailError` when sendmail cannot be run,
    exits with a non-zero status (its stderr is in the error) or times out.
    """
    who = "run_sendmail"
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise TypeError(f"{who}: message must be bytes, got {type(message).__name__}")
    rcpts = _check_recipients(who, "envelope", recipients)
    if isinstance(extra_args, (str, bytes)):
        raise TypeError(f"{who}: extra_args must be a sequence of str")
    args = ["-i", *(_check_text(who, "an extra argument", a) for a in extra_args)]
    if not rcpts and "-t" not in args:
        raise ValueError(f"{who}: no mail recipients were specified")
    if sender is not None:
        args += ["-f", _check_text(who, "the sender", sender)]
    job = _start(program, [*args, "--", *rcpts], timeout)
    try:
        view = memoryview(message).cast("B")
        while view:
            view = view[job.write_some(view) :]
    except BaseException:
        job.abort()
        raise
    job.finish()


# ---------------------------------------------------------------------------
# The Racket API


def _column_after(column: int, text: str) -> int:
    # Racket's port column counting: CR or LF starts a new line, and a TAB
    # moves to the next multiple of 8.
    for ch in text:
        if ch in "\r\n":
            column = 0
        elif ch == "\t":
            column = column // 8 * 8 + 8
        else:
            column += 1
    return column


def _build_header(
    from_: str | None, subject: str, to: list[str], cc: list[str], extra: list[str]
) -> str:
    lines = [f"X-Mailer: {X_MAILER}\n"]
    if from_ is not None:
        lines.append(f"From: {encode_for_header(from_)}\n")
    for name, recipients in (("To", to), ("CC", cc)):
        if not recipients:
            continue
        encoded = [encode_for_header(r) for r in recipients]
        line = f"{name}: {encoded[0]}"
        column = _column_after(0, line)
        for r in encoded[1:]:
            # Fold before a recipient that would pass column 78 (RFC 5322 §2.1.1).
            piece = ("," + ("\n    " if column + 2 + len(r) > 78 else " ")) + r
            column = _column_after(column, piece)
            line += piece
        lines.append(line + "\n")
    lines.append(f"Subject: {encode_for_header(subject)}\n")
    lines.extend(h + "\n" for h in extra)
    lines.append("\n")
    return "".join(lines)


def _open_port(
    who: str,
    from_: str | None,
    subject: str,
    to: Iterable[str],
    cc: Iterable[str],
    bcc: Iterable[str],
    extra_headers: Sequence[str],
    timeout: float | None,
) -> SendmailPort:
    to_list = _check_recipients(who, "To", to)
    cc_list = _check_recipients(who, "CC", cc)
    bcc_list = _check_recipients(who, "BCC", bcc)
    if not (to_list or cc_list or bcc_list):
        raise ValueError(f"{who}: no mail recipients were specified")
    if from_ is not None:
        _check_text(who, "from_", from_)
    _check_text(who, "the subject", subject)
    extra = [_check_extra_header(who, h) for h in extra_headers]
    header = _build_header(from_, subject, to_list, cc_list, extra)
    # Fix 2 and 4: the envelope recipients follow "--" and are not RFC 2047-encoded.
    job = _start(None, ["-i", "--", *to_list, *cc_list, *bcc_list], timeout)
    port = SendmailPort(job)
    try:
        port.write(header)
    except BaseException:
        port.abort()
        raise
    return port


def send_mail_message_port(
    from_: str | None,
    subject: str,
    to: Iterable[str],
    cc: Iterable[str],
    bcc: Iterable[str],
    *extra_headers: str,
    timeout: float | None = 60.0,
) -> SendmailPort:
    """Start sendmail, write the header, and return a stream for the body.

    Write the body lines (ending each with ``"\\n"``) and close the stream, or
    use it in a ``with`` block; closing waits for sendmail and raises
    :class:`~postwire.errors.SendmailError` when it fails.  ``from_`` may be
    ``None`` (sendmail then fills in ``From``).  ``bcc`` recipients get the
    message but appear in no header.  Each extra header is a whole header line
    without its line ending.  Raises :class:`ValueError` when there are no
    recipients at all, for a recipient starting with ``-`` and for CR or LF in
    a header value; :class:`FileNotFoundError` when no sendmail is found.

    ``timeout`` (seconds; ``None`` waits for ever) bounds each wait on
    sendmail: every write to its input, and its exit once the stream is closed.
    On a timeout sendmail is killed and :class:`~postwire.errors.SendmailError`
    is raised.
    """
    return _open_port("send_mail_message_port", from_, subject, to, cc, bcc, extra_headers, timeout)


def send_mail_message(
    from_: str | None,
    subject: str,
    to: Iterable[str],
    cc: Iterable[str],
    bcc: Iterable[str],
    body: Iterable[str],
    *extra_headers: str,
    timeout: float | None = 60.0,
) -> None:
    """Send a message through sendmail: the header, then each ``body`` line + ``"\\n"``.

    Like :func:`send_mail_message_port`, with the body given as lines; returns
    once sendmail has exited successfully.  If iterating ``body`` raises, the
    message is abandoned (sendmail is killed before the end of its input).
    """
    if isinstance(body, (str, bytes)):
        raise TypeError("send_mail_message: body must be a list of str lines")
    with _open_port(
        "send_mail_message", from_, subject, to, cc, bcc, extra_headers, timeout
    ) as port:
        for line in body:
            if not isinstance(line, str):
                raise TypeError(
                    f"send_mail_message: body lines must be str, got {type(line).__name__}"
                )
            port.write(line + "\n")


# ---------------------------------------------------------------------------
# The unit and its signature (Racket's sendmail@ and sendmail^)


@runtime_checkable
class SendmailSignature(Protocol):
    """Racket's ``sendmail^`` signature: the two names ``net/sendmail`` exports."""

    def send_mail_message(
        self,
        from_: str | None,
        subject: str,
        to: Iterable[str],
        cc: Iterable[str],
        bcc: Iterable[str],
        body: Iterable[str],
        *extra_headers: str,
        timeout: float | None = ...,
    ) -> None: ...

    def send_mail_message_port(
        self,
        from_: str | None,
        subject: str,
        to: Iterable[str],
        cc: Iterable[str],
        bcc: Iterable[str],
        *extra_headers: str,
        timeout: float | None = ...,
    ) -> SendmailPort: ...


class _SendmailUnit:
    """Racket's ``sendmail@``: this module's own functions, as one object."""

    send_mail_message = staticmethod(send_mail_message)
    send_mail_message_port = staticmethod(send_mail_message_port)

    def __repr__(self) -> str:
        return "<unit sendmail@>"


#: An object satisfying :class:`SendmailSignature` (Racket's ``sendmail@``).
sendmail_unit: SendmailSignature = _SendmailUnit()
