"""Certificates for the capture server: a private CA and a server certificate it signs.

Two ways to have them:

- **throw-away** (:func:`generate`): a CA and a server certificate made in memory, valid for a
  day, written to a temporary folder and deleted at stop. The Python API's default: a test
  leaves nothing behind.
- **kept** (:func:`load_or_create_ca`, :func:`load_or_issue`): the CA is created once in a
  folder (by default the user's data directory, as mkcert keeps its ``CAROOT``) and reused at
  every start, with the server certificate it signed, so that a configuration naming
  ``--cafile`` or pinning ``--tls-fingerprint`` keeps working across restarts. The command
  line's default. A folder holding mkcert's ``rootCA.pem`` / ``rootCA-key.pem`` works too.

Keys are EC P-256. Files holding a private key are created with mode 0600.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import ssl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertificateAuthority",
    "CertificateFiles",
    "LocalCertificates",
    "default_ca_dir",
    "fingerprint",
    "generate",
    "load_or_create_ca",
    "load_or_issue",
    "server_context",
    "write_files",
]

DEFAULT_DNS_NAMES: tuple[str, ...] = ("localhost",)
DEFAULT_IP_ADDRESSES: tuple[str, ...] = ("127.0.0.1", "::1")
#: A kept CA lives ten years (mkcert's choice); its server certificate 397 days, the longest a
#: public CA may issue today (CA/Browser Forum baseline requirements, 6.3.2).
CA_LIFETIME = timedelta(days=3650)
SERVER_LIFETIME = timedelta(days=397)
#: A kept server certificate is issued anew when it has less than this left.
RENEW_BEFORE = timedelta(days=30)
# File names in a CA folder: ours first, then mkcert's.
_CA_NAMES = (("ca.pem", "ca-key.pem"), ("rootCA.pem", "rootCA-key.pem"))


@dataclass(frozen=True)
class LocalCertificates:
    """PEM bytes of a private CA and of a server certificate it signed."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class CertificateFiles:
    """Where the PEM files are: the CA (``None`` when unknown), the certificate and its key."""

    ca_file: Path | None
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA's certificate and private key, as PEM, and the file holding the certificate."""

    cert_pem: bytes
    key_pem: bytes
    cert_file: Path


def default_ca_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the kept CA lives: ``$POSTWIRE_CAROOT``, else ``$XDG_DATA_HOME/postwire/ca``.

    Without ``XDG_DATA_HOME`` (or with a relative one, which the XDG Base Directory
    specification says to ignore) it is ``~/.local/share/postwire/ca``.
    """
    env = os.environ if environ is None else environ
    if env.get("POSTWIRE_CAROOT"):
        return Path(env["POSTWIRE_CAROOT"]).expanduser()
    base = env.get("XDG_DATA_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "postwire" / "ca"


def fingerprint(cert_pem: bytes) -> str:
    """The SHA-256 fingerprint of a PEM certificate, as ``AB:CD:...`` (what pinning compares)."""
    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii"))
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "postwire capture server"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, digital_signature: bool, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _new_ca(valid_for: timedelta) -> tuple[bytes, bytes]:
    now = datetime.now(timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("postwire capture test CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Back-date a little so that a client whose clock is slightly behind still accepts it.
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + valid_for)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(digital_signature=False, cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _issue(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    valid_for: timedelta,
) -> tuple[bytes, bytes]:
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError("the CA key must be an EC or RSA key (mkcert's CA is RSA)")
    now = datetime.now(timezone.utc)
    not_after = min(now + valid_for, ca_cert.not_valid_after_utc)
    # OpenSSL's strict verification (default since Python 3.13) wants AKI/SKI, key usage and a
    # SAN on the leaf; hostname checks use the SAN only (RFC 6125 section 6.4.4).
    key = ec.generate_private_key(ec.SECP256R1())
    san: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    san += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    common_name = dns_names[0] if dns_names else ip_addresses[0]
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_cert.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def generate(
    dns_names: Sequence[str] = DEFAULT_DNS_NAMES,
    ip_addresses: Sequence[str] = DEFAULT_IP_ADDRESSES,
    *,
    valid_for: timedelta = timedelta(days=1),
) -> LocalCertificates:
    """Create a fresh CA and a server certificate for ``dns_names`` and ``ip_addresses``."""
    ca_pem, ca_key_pem = _new_ca(valid_for)
    cert_pem, key_pem = _issue(ca_pem, ca_key_pem, dns_names, ip_addresses, valid_for)
    return LocalCertificates(ca_pem=ca_pem, cert_pem=cert_pem, key_pem=key_pem)


def _write_private(path: Path, data: bytes) -> None:
    # Create the key file private from the start rather than chmod-ing it afterwards; write it
    # under a temporary name and rename, so a reader never sees half a key.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_files(certs: LocalCertificates, directory: Path) -> CertificateFiles:
    """Write ``ca.pem``, ``cert.pem`` and ``key.pem`` (mode 0600) into ``directory``."""
    files = CertificateFiles(
        ca_file=directory / "ca.pem",
        cert_file=directory / "cert.pem",
        key_file=directory / "key.pem",
    )
    assert files.ca_file is not None
    _write_public(files.ca_file, certs.ca_pem)
    _write_public(files.cert_file, certs.cert_pem)
    _write_private(files.key_file, certs.key_pem)
    return files


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # Two capture servers starting at once must not both create a CA (one would be lost).
    try:
        import fcntl
    except ImportError:  # not on Windows: there, the last writer wins
        yield
        return
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load_or_create_ca(directory: Path) -> CertificateAuthority:
    """The CA kept in ``directory``, created there (mode 0700) on first use.

    ``ca.pem`` and ``ca-key.pem`` are read, or mkcert's ``rootCA.pem`` and ``rootCA-key.pem``.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(directory):
        for cert_name, key_name in _CA_NAMES:
            cert_file, key_file = directory / cert_name, directory / key_name
            if cert_file.exists() and key_file.exists():
                return CertificateAuthority(
                    cert_file.read_bytes(), key_file.read_bytes(), cert_file
                )
        cert_pem, key_pem = _new_ca(CA_LIFETIME)
        cert_file = directory / _CA_NAMES[0][0]
        _write_private(directory / _CA_NAMES[0][1], key_pem)
        _write_public(cert_file, cert_pem)
        return CertificateAuthority(cert_pem, key_pem, cert_file)


def _still_good(
    cert_file: Path, ca: CertificateAuthority, dns_names: Sequence[str], ips: Sequence[str]
) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
        cert.verify_directly_issued_by(ca_cert)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except Exception:  # unreadable, foreign, not signed by this CA: issue a new one
        return False
    names = set(san.get_values_for_type(x509.DNSName))
    addresses = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    left = cert.not_valid_after_utc - datetime.now(timezone.utc)
    return set(dns_names) <= names and set(ips) <= addresses and left > RENEW_BEFORE


def load_or_issue(
    directory: Path,
    dns_names: Sequence[str] = DEFAULT_DNS_NAMES,
    ip_addresses: Sequence[str] = DEFAULT_IP_ADDRESSES,
) -> CertificateFiles:
    """The kept CA in ``directory`` and its server certificate (``server.pem``/``server-key.pem``).

    The certificate is reused while it is signed by the CA, covers the names and has more
    than 30 days left, so its fingerprint stays the same from one start to the next.
    """
    ca = load_or_create_ca(directory)
    files = CertificateFiles(
        ca_file=ca.cert_file,
        cert_file=directory / "server.pem",
        key_file=directory / "server-key.pem",
    )
    with _locked(directory):
        if not (
            files.key_file.exists() and _still_good(files.cert_file, ca, dns_names, ip_addresses)
        ):
            cert_pem, key_pem = _issue(
                ca.cert_pem, ca.key_pem, dns_names, ip_addresses, SERVER_LIFETIME
            )
            _write_private(files.key_file, key_pem)
            _write_public(files.cert_file, cert_pem)
    return files


def server_context(files: CertificateFiles) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or later) presenting the certificate in ``files``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(files.cert_file, files.key_file)
    return ctx
