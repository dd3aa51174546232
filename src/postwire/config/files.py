"""The config file and the environment: the layers below the caller's own settings.

Three layers, each overriding the one before: a TOML config file (an account
in it), ``POSTWIRE_*`` environment variables, and the caller's settings (the
command line's options).  The password itself never comes from the config
file, only from a source (:mod:`postwire.config.passwords`).

The config file is ``config=PATH`` (``--config``), else ``$POSTWIRE_CONFIG``,
else ``$XDG_CONFIG_HOME/postwire/config.toml`` (``~/.config/postwire/config.toml``)::

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

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._core.errors import ConfigError
from .._net.proxy import check_proxy_url
from .._net.tls import normalize_fingerprint
from .settings import TLS_MODES, Settings, parse_server, positive_seconds

__all__ = ["ENV_VARS", "KEYS", "find_config", "load_settings"]

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
    "proxy",
    "dkim_key",
    "dkim_selector",
    "dkim_domain",
    "dkim_headers",
    "dkim_canonicalization",
)
_FLAG_KEYS = ("allow_plaintext_auth", "lmtp")
#: Every setting an account (or ``[defaults]``) may have.
KEYS = (*_STRING_KEYS, "timeout", *_FLAG_KEYS)

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
    "POSTWIRE_PROXY": "proxy",
    "POSTWIRE_DKIM_KEY": "dkim_key",
    "POSTWIRE_DKIM_SELECTOR": "dkim_selector",
    "POSTWIRE_DKIM_DOMAIN": "dkim_domain",
}


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
        raise ConfigError(
            "reading the config file needs the 'tomli' package on Python 3.10: pip install tomli"
        ) from None
    try:
        data: dict[str, Any] = module.loads(text)
    except module.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None
    return data


def _table(path: Path, where: str, raw: Mapping[str, Any]) -> Settings:
    def fail(message: str) -> ConfigError:
        return ConfigError(f"config file {path}: {where}: {message}")

    unknown = sorted(set(raw) - set(KEYS))
    if "password" in unknown:
        raise fail(
            "a password may not be written in the config file; "
            "use password_env, password_file or password_command"
        )
    if unknown:
        raise fail(f"unknown setting {unknown[0]!r} (known: {', '.join(KEYS)})")
    if isinstance(raw.get("dkim_headers"), list):  # a TOML list of names, or "a:b:c"
        names = raw["dkim_headers"]
        if not names or not all(isinstance(n, str) and n for n in names):
            raise fail("dkim_headers must be a list of header field names")
        raw = {**raw, "dkim_headers": ":".join(names)}
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
    for key in _FLAG_KEYS:
        if key in raw:
            if not isinstance(raw[key], bool):
                raise fail(f"{key} must be true or false")
            values[key] = raw[key]
    for key in ("cafile", "password_file", "dkim_key"):
        if key in values:  # relative to the config file's folder
            values[key] = str(path.parent / Path(values[key]).expanduser())
    settings = Settings(**values)
    _check(settings, lambda message: fail(message))
    return settings


def _check(settings: Settings, fail: Callable[[str], ConfigError]) -> None:
    if settings.tls is not None and settings.tls not in TLS_MODES:
        raise fail(f"tls must be one of {', '.join(TLS_MODES)}, not {settings.tls!r}")
    if settings.server is not None:
        try:
            parse_server(settings.server, settings.tls or "starttls")
        except ValueError as exc:
            raise fail(str(exc)) from None
    if settings.proxy is not None:
        try:
            check_proxy_url(settings.proxy)
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
        raise ConfigError(f"cannot read config file {path}: {reason}") from None
    unknown = sorted(set(data) - {"default", "defaults", "accounts"})
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown top-level key {unknown[0]!r} "
            "(expected default, [defaults] and [accounts.NAME] tables)"
        )
    accounts = data.get("accounts", {})
    defaults = data.get("defaults", {})
    if not isinstance(accounts, dict) or not all(isinstance(a, dict) for a in accounts.values()):
        raise ConfigError(f"config file {path}: [accounts.NAME] must be tables")
    if not isinstance(defaults, dict):
        raise ConfigError(f"config file {path}: [defaults] must be a table")
    base = _table(path, "[defaults]", defaults)
    name = account or data.get("default")
    if name is None:
        if len(accounts) > 1:
            raise ConfigError(
                f"config file {path}: several accounts and no default; name one with "
                '--account or POSTWIRE_ACCOUNT, or set default = "NAME"'
            )
        name = next(iter(accounts), None)
    if name is None:
        return base
    if not isinstance(name, str) or name not in accounts:
        known = ", ".join(sorted(accounts)) or "none"
        raise ConfigError(f"config file {path}: no account named {name!r} (accounts: {known})")
    return _table(path, f"[accounts.{name}]", accounts[name]).over(base)


def _from_env(environ: Mapping[str, str]) -> Settings:
    values: dict[str, Any] = {}
    for var, key in ENV_VARS.items():
        value = environ.get(var)
        if not value:
            continue
        if key == "timeout":
            seconds = positive_seconds(value)
            if seconds is None:
                raise ConfigError(f"{var} must be a positive number, not {value!r}")
            values["timeout"] = seconds
        else:
            values["sender" if key == "from" else key] = value
    settings = Settings(**values)

    def fail(message: str) -> ConfigError:
        return ConfigError(f"environment: {message}")

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
        # A named file must exist; it need not be a regular one: sendmail -C /dev/null
        # (an empty configuration) is how scripts say "none of the user's settings".
        if named and (not path.exists() or path.is_dir()):
            raise ConfigError(f"config file {path} does not exist")
        file_settings = _from_file(path, account)
    elif account is not None:
        raise ConfigError(f"account {account!r} named but there is no config file")
    else:
        file_settings = Settings()
    return cli.over(_from_env(env).over(file_settings))
