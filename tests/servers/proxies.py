"""Real proxies on 127.0.0.1: Dante (SOCKS5, Debian ``dante-server``) and tinyproxy (HTTP CONNECT).

Both are started once per test session and log every connection they carry, so a test can
check that its traffic went through the proxy and not straight to the server.
"""

from __future__ import annotations

from .daemon import Daemon, PrivateServer, free_port, require_tool

__all__ = ["HttpProxy", "SocksProxy"]


class _Proxy(PrivateServer):
    kind = ""

    def __init__(self) -> None:
        super().__init__(self.kind)
        self.port = free_port()
        self.log = self.base / f"{self.kind}.log"
        self.log.touch()
        self.log.chmod(0o666)
        self._daemon = self._make()

    def _make(self) -> Daemon:
        raise NotImplementedError

    def url(self) -> str:
        raise NotImplementedError

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


class SocksProxy(_Proxy):
    """danted, SOCKS5 without authentication, to 127.0.0.1 only."""

    kind = "dante"

    def _make(self) -> Daemon:
        conf = self.base / "danted.conf"
        conf.write_text(
            f"""\
logoutput: {self.log}
internal: 127.0.0.1 port = {self.port}
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{
  from: 127.0.0.0/8 to: 0.0.0.0/0
  log: connect disconnect error
}}
socks pass {{
  from: 127.0.0.0/8 to: 127.0.0.0/8
  command: connect
  log: connect disconnect error
}}
""",
            encoding="utf-8",
        )
        pid = self.base / "danted.pid"
        return Daemon(
            "Dante",
            [require_tool("danted"), "-f", str(conf), "-p", str(pid), "-N", "1"],
            self.base / "stdout.log",
            self.port,
        )

    def url(self) -> str:
        return f"socks5://127.0.0.1:{self.port}"


class HttpProxy(_Proxy):
    """tinyproxy, HTTP CONNECT with Basic authentication (user ``proxyuser``)."""

    kind = "tinyproxy"
    user, password = "proxyuser", "proxy-s3cret"

    def _make(self) -> Daemon:
        conf = self.base / "tinyproxy.conf"
        conf.write_text(
            f"""\
Port {self.port}
Listen 127.0.0.1
Timeout 30
Allow 127.0.0.1
BasicAuth {self.user} {self.password}
LogFile "{self.log}"
LogLevel Connect
PidFile "{self.base}/tinyproxy.pid"
MaxClients 50
""",
            encoding="utf-8",
        )
        return Daemon(
            "tinyproxy",
            [require_tool("tinyproxy"), "-d", "-c", str(conf)],
            self.base / "stdout.log",
            self.port,
        )

    def url(self) -> str:
        return f"http://{self.user}:{self.password}@127.0.0.1:{self.port}"
