"""Where the command line finds its server, TLS mode, account and password.

Three layers, each overriding the one before: a TOML config file (an account
in it), ``POSTWIRE_*`` environment variables, and command-line options.  The
password itself never comes from the command line or the config file, only
from a source: an environment variable named by ``password_env``, the first
line of ``password_file``, the first line printed by ``password_command``, or
a prompt on the terminal.

The config file is ``--config PATH``, else ``$POSTWIRE_CONFIG``, else
``$XDG_CONFIG_HOME/postwire/config.toml`` (``~/.config/postwire/config.toml``)::

    default = "work"            # the account used when none is named

    [defaults]                  # settings shared by every account
    tls = "starttls"

    [accounts.work]
    server = "smtp.example.com:587"
    user = "me@example.com"
    password_command = "pass show smtp/work"
    from = "me@example.com"
"""

from __future__ import annotations

import dataclasses
import getpass
import importlib
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from .._net.tls import normalize_fingerprint
from ..client import TLSMode
from .exits import CLIError, Exit

__all__ = [
    "ENV_VARS",
    "TLS_MODES",
    "Settings",
    "find_config",
    "load_settings",
    "parse_server",
    "read_password",
]

#: The client's TLS modes, as ``--tls`` and the ``tls`` setting spell them.
TLS_MODES: tuple[str, ...] = get_args(TLSMode)

_PASSWORD_KEYS = ("password_env", "password_file", "password_command", "password_prompt")
_STRING_KEYS = (
    "server",
    "tls",
    "cafile",
    "tls_fingerprint",
    "user",
    "password_env",
    "password_file",
    "password_command",
    "from",
)
_KEYS = (*_STRING_KEYS, "timeout", "allow_plaintext_auth")
_PASSWORD_COMMAND_TIMEOUT = 60.0

#: Environment variables and the setting each one gives (documented in ``--help``).
ENV_VARS: Mapping[str, str] = {
    "POSTWIRE_SERVER": "server",
    "POSTWIRE_TLS": "tls",
    "POSTWIRE_CAFILE": "cafile",
    "POSTWIRE_TLS_FINGERPRINT": "tls_fingerprint",
    "POSTWIRE_USER": "user",
    "POSTWIRE_PASSWORD_ENV": "password_env",
    "POSTWIRE_PASSWORD_FILE": "password_file",
    "POSTWIRE_PASSWORD_COMMAND": "password_command",
    "POSTWIRE_FROM": "from",
    "POSTWIRE_TIMEOUT": "timeout",
}


@dataclass
class Settings:
    """Connection settings; ``None`` means "not given at this layer"."""

    server: str | None = None
    tls: str | None = None
    cafile: str | None = None
    tls_fingerprint: str | None = None
    user: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    password_command: str | None = None
    password_prompt: bool | None = None
    sender: str | None = None
    timeout: float | None = None
    allow_plaintext_auth: bool | None = None

    def over(self, lower: Settings) -> Settings:
        """These settings on top of ``lower`` (a password source replaces all lower ones)."""
        merged = dataclasses.replace(lower)
        if any(getattr(self, key) is not None for key in _PASSWORD_KEYS):
            for key in _PASSWORD_KEYS:
                setattr(merged, key, None)
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is not None:
                setattr(merged, item.name, value)
        return merged

    @property
    def has_password_source(self) -> bool:
        return any(getattr(self, key) for key in _PASSWORD_KEYS)


def parse_server(text: str, tls: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (host, port).

    Without a port: 465 for implicit TLS (RFC 8314 §3.3), 587 for STARTTLS
    (submission, RFC 6409), 25 otherwise.
    """
    text = text.strip()
    port_text = ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad server address {text!r}: expected [IPv6]:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text  # a name, an IPv4 address or a bare IPv6 address
    if not host or any(ch.isspace() or ch in "/@" for ch in host):
        raise ValueError(f"bad server address {text!r}: expected host[:port]")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad port in server address {text!r}")
        return host, int(port_text)
    return host, {"implicit": 465, "starttls": 587}.get(tls, 25)


# -- the config file ------------------------------------------------------------------------


def find_config(explicit: str | None, environ: Mapping[str, str]) -> tuple[Path | None, bool]:
    """The config file to read, and whether it was named (then it must exist)."""
    named = explicit or environ.get("POSTWIRE_CONFIG")
    if named:
        return Path(named).expanduser(), True
    base = environ.get("XDG_CONFIG_HOME") or ""
    # XDG Base Directory spec: a relative XDG_CONFIG_HOME is invalid and ignored.
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    path = root / "postwire" / "config.toml"
    return (path if path.exists() else None), False


def _toml_loads(text: str) -> dict[str, Any]:
    # tomllib is in the standard library from 3.11; on 3.10 the same parser is "tomli".
    name = "tomllib" if sys.version_info >= (3, 11) else "tomli"
    try:
        module = importlib.import_module(name)
    except ImportError:
        raise CLIError(
            "reading the config file needs the 'tomli' package on Python 3.10: pip install tomli",
            Exit.CONFIG,
        ) from None
    try:
        data: dict[str, Any] = module.loads(text)
    except module.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None
    return data


def _table(path: Path, where: str, raw: Mapping[str, Any]) -> Settings:
    def fail(message: str) -> CLIError:
        return CLIError(f"config file {path}: {where}: {message}", Exit.CONFIG)

    unknown = sorted(set(raw) - set(_KEYS))
    if "password" in unknown:
        raise fail(
            "a password may not be written in the config file; "
            "use password_env, password_file or password_command"
        )
    if unknown:
        raise fail(f"unknown setting {unknown[0]!r} (known: {', '.join(_KEYS)})")
    values: dict[str, Any] = {}
    for key in _STRING_KEYS:
        if key in raw:
            if not isinstance(raw[key], str) or not raw[key]:
                raise fail(f"{key} must be a non-empty string")
            values["sender" if key == "from" else key] = raw[key]
    if "timeout" in raw:
        timeout = raw["timeout"]
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise fail("timeout must be a positive number of seconds")
        values["timeout"] = float(timeout)
    if "allow_plaintext_auth" in raw:
        if not isinstance(raw["allow_plaintext_auth"], bool):
            raise fail("allow_plaintext_auth must be true or false")
        values["allow_plaintext_auth"] = raw["allow_plaintext_auth"]
    for key in ("cafile", "password_file"):
        if key in values:  # relative to the config file's folder
            values[key] = str(path.parent / Path(values[key]).expanduser())
    settings = Settings(**values)
    _check(settings, lambda message: fail(message))
    return settings


def _check(settings: Settings, fail: Any) -> None:
    if settings.tls is not None and settings.tls not in TLS_MODES:
        raise fail(f"tls must be one of {', '.join(TLS_MODES)}, not {settings.tls!r}")
    if settings.server is not None:
        try:
            parse_server(settings.server, settings.tls or "starttls")
        except ValueError as exc:
            raise fail(str(exc)) from None
    if settings.tls_fingerprint is not None:
        try:
            normalize_fingerprint(settings.tls_fingerprint)
        except ValueError as exc:
            raise fail(str(exc)) from None


def _from_file(path: Path, account: str | None) -> Settings:
    try:
        data = _toml_loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CLIError(f"cannot read config file {path}: {reason}", Exit.CONFIG) from None
    unknown = sorted(set(data) - {"default", "defaults", "accounts"})
    if unknown:
        raise CLIError(
            f"config file {path}: unknown top-level key {unknown[0]!r} "
            "(expected default, [defaults] and [accounts.NAME] tables)",
            Exit.CONFIG,
        )
    accounts = data.get("accounts", {})
    defaults = data.get("defaults", {})
    if not isinstance(accounts, dict) or not all(isinstance(a, dict) for a in accounts.values()):
        raise CLIError(f"config file {path}: [accounts.NAME] must be tables", Exit.CONFIG)
    if not isinstance(defaults, dict):
        raise CLIError(f"config file {path}: [defaults] must be a table", Exit.CONFIG)
    base = _table(path, "[defaults]", defaults)
    name = account or data.get("default")
    if name is None:
        if len(accounts) > 1:
            raise CLIError(
                f"config file {path}: several accounts and no default; name one with "
                '--account or POSTWIRE_ACCOUNT, or set default = "NAME"',
                Exit.CONFIG,
            )
        name = next(iter(accounts), None)
    if name is None:
        return base
    if not isinstance(name, str) or name not in accounts:
        known = ", ".join(sorted(accounts)) or "none"
        raise CLIError(
            f"config file {path}: no account named {name!r} (accounts: {known})", Exit.CONFIG
        )
    return _table(path, f"[accounts.{name}]", accounts[name]).over(base)


def _from_env(environ: Mapping[str, str]) -> Settings:
    values: dict[str, Any] = {}
    for var, key in ENV_VARS.items():
        value = environ.get(var)
        if not value:
            continue
        if key == "timeout":
            try:
                seconds = float(value)
            except ValueError:
                seconds = 0.0
            if not seconds > 0:
                raise CLIError(f"{var} must be a positive number, not {value!r}", Exit.CONFIG)
            values["timeout"] = seconds
        else:
            values["sender" if key == "from" else key] = value
    settings = Settings(**values)

    def fail(message: str) -> CLIError:
        return CLIError(f"environment: {message}", Exit.CONFIG)

    _check(settings, fail)
    return settings


def load_settings(
    cli: Settings,
    *,
    config: str | None,
    account: str | None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The config file's account, then the environment, then ``cli``."""
    env = os.environ if environ is None else environ
    path, named = find_config(config, env)
    account = account or env.get("POSTWIRE_ACCOUNT") or None
    if path is not None and (named or path.exists()):
        if named and not path.is_file():
            raise CLIError(f"config file {path} does not exist", Exit.CONFIG)
        file_settings = _from_file(path, account)
    elif account is not None:
        raise CLIError(f"account {account!r} named but there is no config file", Exit.CONFIG)
    else:
        file_settings = Settings()
    return cli.over(_from_env(env).over(file_settings))


# -- the password ---------------------------------------------------------------------------


def _first_line(data: str) -> str:
    return data.splitlines()[0] if data else ""


def _prompt(user: str, host: str) -> str:
    try:
        os.close(os.open("/dev/tty", os.O_RDWR))
    except OSError:
        raise CLIError("no terminal to ask for the password on", Exit.USAGE) from None
    try:
        return getpass.getpass(f"password for {user} at {host}: ")
    except EOFError:
        raise CLIError("no password given at the prompt", Exit.CONFIG) from None


def read_password(settings: Settings, host: str, *, missing: int) -> str | None:
    """The password for ``settings.user`` from its source; ``None`` without a user.

    ``missing`` is the exit code when no source is configured at all.
    """
    user = settings.user
    if user is None:
        return None
    if settings.password_env:
        value = os.environ.get(settings.password_env)
        if not value:
            raise CLIError(
                f"the password variable {settings.password_env} is not set (or empty)", Exit.CONFIG
            )
        return value
    if settings.password_file:
        try:
            with open(settings.password_file, encoding="utf-8") as f:
                value = _first_line(f.read())
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise CLIError(
                f"cannot read the password file {settings.password_file}: {reason}", Exit.CONFIG
            ) from None
        if not value:
            raise CLIError(f"the password file {settings.password_file} is empty", Exit.CONFIG)
        return value
    if settings.password_command:
        return _run_password_command(settings.password_command)
    if settings.password_prompt or sys.stdin.isatty():
        return _prompt(user, host)
    raise CLIError(
        f"no password source for user {user}: use --password-env VAR, --password-file PATH, "
        "--password-command CMD or --password-prompt (the password is never taken from argv)",
        missing,
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
        raise CLIError(
            f"the password command did not finish within {_PASSWORD_COMMAND_TIMEOUT:g} s",
            Exit.CONFIG,
        ) from None
    except OSError as exc:
        raise CLIError(f"cannot run the password command: {exc.strerror}", Exit.CONFIG) from None
    if done.returncode != 0:
        err = _first_line(done.stderr.decode("utf-8", "replace").strip())
        raise CLIError(
            f"the password command failed with status {done.returncode}"
            + (f": {err}" if err else ""),
            Exit.CONFIG,
        )
    value = _first_line(done.stdout.decode("utf-8", "replace"))
    if not value:
        raise CLIError("the password command printed nothing", Exit.CONFIG)
    return value
