"""The OAuth 2.0 token provider the tests name by its dotted path in EMAIL_OAUTH2_TOKEN.

A real one would ask the identity provider for a fresh access token; this one hands out the
tokens a test put in :data:`issued`, in order, the last one for every later call.
"""

from __future__ import annotations

issued: list[str] = []
#: How many times the backend asked for a token.
calls = 0


def token() -> str:
    global calls
    calls += 1
    return issued.pop(0) if len(issued) > 1 else issued[0]
