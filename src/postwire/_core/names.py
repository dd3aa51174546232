"""The client's name for EHLO/HELO (RFC 5321 §4.1.4)."""

from __future__ import annotations

import ipaddress
import re

__all__ = ["ehlo_name"]

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")


def _is_fqdn(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return (
        len(labels) >= 2
        and all(_LABEL.match(label) for label in labels)
        and (not labels[-1].isdigit())
    )


def ehlo_name(hostname: str, local_address: str | None) -> str:
    """Pick a valid EHLO argument without any DNS lookup.

    RFC 5321 §4.1.4 asks for the client's fully qualified domain name, or an
    address literal when it has none.  ``socket.getfqdn()`` can block for
    seconds on a DNS lookup (and would block an event loop), so we use the
    configured host name when it is already fully qualified, and otherwise
    the literal of the local address of the connection (``[192.0.2.1]`` or
    ``[IPv6:2001:db8::1]``, RFC 5321 §4.1.3).
    """
    name = hostname.strip().rstrip(".")
    if _is_fqdn(name) and name.lower() not in ("localhost.localdomain",):
        return name
    if local_address:
        addr = ipaddress.ip_address(local_address.split("%", 1)[0])
        if isinstance(addr, ipaddress.IPv6Address):
            if addr.ipv4_mapped is not None:
                return f"[{addr.ipv4_mapped}]"
            return f"[IPv6:{addr.compressed}]"
        return f"[{addr}]"
    return "[127.0.0.1]"
