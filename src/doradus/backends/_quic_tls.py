"""The ``quic`` backend's certificates: a self-signed default, generated once per user.

When a link has no ``cert``/``key`` (receiver) or ``ca`` (sender), both sides
use one self-signed P-256 certificate (SAN ``127.0.0.1``, ``::1``,
``localhost``) generated on first use in ``$XDG_CONFIG_HOME/doradus/quic/``
(else ``~/.config/doradus/quic/``; folder 0700, files 0600) and reused
afterwards. Imported only when a QUIC link opens (it needs ``cryptography``).

Example:
    >>> cert, key = generate_certificate()
    >>> key.startswith(b"-----BEGIN PRIVATE KEY-----")
    True
"""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"


def default_cert_dir() -> Path:
    """Where the generated certificate lives: ``$XDG_CONFIG_HOME/doradus/quic`` or ``~/.config/doradus/quic``.

    Example::

        default_cert_dir()   # PosixPath('/home/me/.config/doradus/quic')
    """
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "doradus" / "quic"


def _write_private(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


def generate_certificate(days: int = 3650) -> tuple[bytes, bytes]:
    """A new self-signed P-256 certificate for ``127.0.0.1``, ``::1`` and ``localhost``: (cert PEM, key PEM).

    Example:
        >>> cert, key = generate_certificate()
        >>> cert.startswith(b"-----BEGIN CERTIFICATE-----")
        True
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "doradus quic link")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ensure_certificate(directory: Path | None = None) -> tuple[Path, Path]:
    """The default certificate and key files, generated on first use: (cert path, key path).

    The folder is created 0700 and the files 0600; a file lock keeps nodes
    that start together from generating two different certificates.

    Example::

        cert, key = ensure_certificate()
    """
    folder = directory or default_cert_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    lock_fd = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        if not (cert_path.exists() and key_path.exists()):
            cert_pem, key_pem = generate_certificate()
            _write_private(key_path, key_pem)
            _write_private(cert_path, cert_pem)
    finally:
        os.close(lock_fd)  # releases the lock
    return cert_path, key_path
