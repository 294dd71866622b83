"""A real SMTP server for tests: aiosmtpd with STARTTLS (a self-signed certificate) and login required.

``smtp_server(tmp_dir)`` yields an :class:`SmtpPeer` whose ``messages`` are the parsed e-mails received; point
``c.VisaMailer`` at ``host``/``port`` with ``username``/``password`` and ``ca_file``.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from hubtest import free_port


@dataclass
class SmtpPeer:
    host: str
    port: int
    username: str
    password: str
    ca_file: str
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, to: str | None = None, subject_contains: str = "") -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages
                    if (to is None or to in m["To"]) and subject_contains in (m["Subject"] or "")]

    def hub_config(self) -> str:
        """Lines for a hub config file: the sessions service's mailer pointed at this server."""
        return (f"c.VisaMailer.smtp_host = {self.host!r}\nc.VisaMailer.smtp_port = {self.port}\n"
                f"c.VisaMailer.smtp_starttls = True\nc.VisaMailer.smtp_username = {self.username!r}\n"
                f"c.VisaMailer.smtp_password = {self.password!r}\nc.VisaMailer.smtp_ca_file = {self.ca_file!r}\n"
                "c.VisaMailer.sender = 'visa-hub <noreply@visa-hub.test>'\n")


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@contextlib.contextmanager
def smtp_server(directory: Path, username: str = "visa-mailer", password: str = "s3cret-smtp") -> Iterator[SmtpPeer]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    directory.mkdir(parents=True, exist_ok=True)
    cert, key = _certificate(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    peer = SmtpPeer("127.0.0.1", free_port(), username, password, str(cert))

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
            message = email.message_from_bytes(envelope.original_content or envelope.content,
                                               policy=email.policy.default)
            with peer.lock:
                peer.messages.append(message)
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == username
              and auth_data.password.decode() == password)
        if ok:
            peer.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    controller = Controller(Handler(), hostname=peer.host, port=peer.port, tls_context=context,
                            require_starttls=True, authenticator=authenticator, auth_required=True,
                            auth_require_tls=True)
    controller.start()
    try:
        yield peer
    finally:
        controller.stop()
