"""Where a password comes from: a variable, a file, a command, or a prompt.

The password itself is never a setting: a config file or a command line
names its source, and it is read only when a connection needs it.  Asking
on a terminal is the caller's business (the command line does it); a
library caller gets :class:`NoPasswordSource` instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping

from .._core.errors import ConfigError, NoPasswordSource
from .settings import Settings

__all__ = ["read_password"]

_PASSWORD_COMMAND_TIMEOUT = 60.0

#: Asks for the password of (user, host), e.g. on a terminal.
Prompt = Callable[[str, str], str]


def _first_line(data: str) -> str:
    return data.splitlines()[0] if data else ""


def read_password(
    settings: Settings,
    host: str,
    *,
    prompt: Prompt | None = None,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """The password for ``settings.user`` from its source; ``None`` without a user.

    ``prompt`` is asked when no other source is configured (the command line
    passes one when ``--password-prompt`` is given or stdin is a terminal).
    Raises :class:`ConfigError` when the source fails, and
    :class:`NoPasswordSource` when there is none.
    """
    user = settings.user
    if user is None:
        return None
    env = os.environ if environ is None else environ
    if settings.password_env:
        value = env.get(settings.password_env)
        if not value:
            raise ConfigError(
                f"the password variable {settings.password_env} is not set (or empty)"
            )
        return value
    if settings.password_file:
        try:
            with open(settings.password_file, encoding="utf-8") as f:
                value = _first_line(f.read())
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(
                f"cannot read the password file {settings.password_file}: {reason}"
            ) from None
        if not value:
            raise ConfigError(f"the password file {settings.password_file} is empty")
        return value
    if settings.password_command:
        return _run_password_command(settings.password_command)
    if prompt is not None:
        return prompt(user, host)
    raise NoPasswordSource(
        f"no password source for user {user}: use --password-env VAR, --password-file PATH, "
        "--password-command CMD or --password-prompt (the password is never taken from argv)"
    )


def _run_password_command(command: str) -> str:
    try:
        done = subprocess.run(
            command,
            shell=True,  # the user's own command line, as msmtp's passwordeval
            stdin=subprocess.DEVNULL,  # stdin may hold the message
            capture_output=True,
            timeout=_PASSWORD_COMMAND_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"the password command did not finish within {_PASSWORD_COMMAND_TIMEOUT:g} s"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot run the password command: {exc.strerror}") from None
    if done.returncode != 0:
        err = _first_line(done.stderr.decode("utf-8", "replace").strip())
        raise ConfigError(
            f"the password command failed with status {done.returncode}"
            + (f": {err}" if err else "")
        )
    value = _first_line(done.stdout.decode("utf-8", "replace"))
    if not value:
        raise ConfigError("the password command printed nothing")
    return value
