"""Message signing: DKIM (RFC 6376) over the bytes postwire sends (``postwire[dkim]``)."""

from .dkim import CANONICALIZATIONS, DKIMSigner, sign_prepared, wire_form
from .keys import PrivateKey, parse_private_key

__all__ = [
    "CANONICALIZATIONS",
    "DKIMSigner",
    "PrivateKey",
    "parse_private_key",
    "sign_prepared",
    "wire_form",
]
