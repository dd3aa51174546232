"""The header the sendmail layer writes: Racket's, line for line.

``X-Mailer``, ``From``, ``To``, ``CC``, ``Subject``, the extra headers and a
blank line, non-ASCII text RFC 2047-encoded, ``To`` and ``CC`` folded before
column 78 as Racket counts columns.  Bcc recipients are never written.
"""

from __future__ import annotations

from .unihead import encode_for_header

__all__ = ["X_MAILER", "racket_header"]

#: The value of the ``X-Mailer`` header line (Racket writes ``Racket (racket-lang.org)``).
X_MAILER = "postwire (Racket net/sendmail compatible)"


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


def racket_header(
    *, from_: str | None, subject: str, to: list[str], cc: list[str], extra: list[str]
) -> str:
    """Racket's header, line for line, with LF line endings (sendmail makes them CRLF)."""
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
