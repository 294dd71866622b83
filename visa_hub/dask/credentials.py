"""Per-session TLS credentials for Dask: a CA of its own for every session, files only the owner can read.

At instance start :func:`write_session_credentials` makes a fresh certificate authority, signs one certificate
for the session's scheduler, workers and clients with it and throws the CA's private key away: only this
session's certificate is trusted by its clusters, and no further one can be made. The files go under
``~/.visa/dask/instances/<instance>/session-*/`` (directories 0700, files 0600; one directory per instance, see
:mod:`visa_hub.dask.per_instance`, so that starting one of her instances never touches another's); worker jobs run
as the same person, so they read them from her home, and the job scripts carry only their paths (never the keys
themselves, which ``Security.temporary()`` would put inline into scripts that Slurm stores).

distributed checks the peer's certificate against the CA both ways (``ssl.CERT_REQUIRED``) and not its host name
(schedulers and workers are reached by IP address), so the CA is what tells this session's processes from
everybody else's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .per_instance import DEFAULT_INSTANCE, credentials_dir

# Session directories older than this are left from ended sessions and removed at the next start.
STALE_AFTER_SECONDS = 24 * 3600
# Certificates outlive any lifetime (extensions included): the CA per session, not the dates, limits them.
VALIDITY = dt.timedelta(days=365)
CLOCK_SKEW = dt.timedelta(minutes=10)  # compute nodes' clocks may be a little behind


@dataclass(frozen=True)
class SessionCredentials:
    """Where one session's Dask TLS files are."""

    directory: Path
    ca_file: Path
    cert_file: Path
    key_file: Path


def credentials_root(home: Path) -> Path:
    """``~/.visa/dask``: the instances' credential directories are below it (earlier versions wrote sessions here)."""
    return home / ".visa" / "dask"


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)  # also when it existed with other modes


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "visa-hub"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(owner: str, now: dt.datetime) -> tuple[bytes, bytes, bytes]:
    """A new CA certificate, a certificate it signed for every Dask role, and that certificate's key (PEM)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"visa-hub Dask session CA of {owner}")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"Dask session of {owner}")).issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("dask-session")]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem


def write_session_credentials(home: Path, owner: str, now: dt.datetime | None = None,
                              instance: str = DEFAULT_INSTANCE) -> SessionCredentials:
    """Fresh credentials for this session of ``instance`` under ``home``; removes those of its sessions that ended
    long ago (other instances' credentials are theirs to clean up: they may be running)."""
    root = credentials_root(home)
    mine = credentials_dir(home, instance)
    for directory in (root.parent, root, mine.parent, mine):
        _private_dir(directory)
    _remove_stale(mine)
    _remove_stale(root)  # sessions of versions that kept no directory per instance
    directory = mine / f"session-{int(time.time())}-{secrets.token_hex(4)}"
    directory.mkdir(mode=0o700)
    ca, cert, key = make_certificates(owner, now or dt.datetime.now(dt.UTC))
    credentials = SessionCredentials(directory, directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    _write_private(credentials.ca_file, ca)
    _write_private(credentials.cert_file, cert)
    _write_private(credentials.key_file, key)
    return credentials


def _remove_stale(root: Path) -> None:
    """Remove session directories not touched for a day (ended sessions; a running one was written recently)."""
    limit = time.time() - STALE_AFTER_SECONDS
    for old in root.glob("session-*"):
        with contextlib.suppress(OSError):
            if old.is_dir() and not old.is_symlink() and old.stat().st_mtime < limit:
                shutil.rmtree(old)
