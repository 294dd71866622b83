"""E-mail through the site's SMTP server: STARTTLS or TLS, optional login, templated messages.

Templates are Jinja2 text files (``<name>.txt``) whose first line is ``Subject: ...``; the operator's
``template_dir`` is searched before the ones shipped in ``visa_hub/sessions/templates/``. Sending runs in a
thread (smtplib is blocking), so the service's event loop never waits for the mail server.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Any

import jinja2
from traitlets import Bool, Float, Integer, Unicode
from traitlets.config import LoggingConfigurable

TEMPLATES = Path(__file__).parent / "templates"


class VisaMailer(LoggingConfigurable):
    """SMTP settings of the sessions service (warnings, answers to extension requests, admins' notices)."""

    smtp_host = Unicode("", config=True, help="SMTP server host. Empty: no e-mail is sent (only logged).")
    smtp_port = Integer(587, config=True, help="SMTP server port (587 with STARTTLS, 465 with smtp_ssl, 25 plain).")
    smtp_starttls = Bool(True, config=True, help="Upgrade the connection with STARTTLS (refuse to send if the "
                                                 "server does not offer it).")
    smtp_ssl = Bool(False, config=True, help="Connect with TLS from the start (port 465) instead of STARTTLS.")
    smtp_username = Unicode("", config=True, help="SMTP login; empty: no authentication.")
    smtp_password = Unicode("", config=True, help="SMTP password (never logged).")
    smtp_ca_file = Unicode("", config=True, help="CA bundle to verify the SMTP server's certificate; empty: the "
                                                 "system's.")
    smtp_timeout = Float(30.0, config=True, help="Seconds before an SMTP conversation counts as failed.")
    sender = Unicode("visa-hub <visa-hub@localhost>", config=True, help="From: address of every message.")
    reply_to = Unicode("", config=True, help="Reply-To: address (e.g. the support desk); empty: none.")
    template_dir = Unicode("", config=True, help="Directory with your own message templates (<name>.txt, first "
                                                 "line 'Subject: ...'), searched before visa-hub's.")
    site_name = Unicode("visa-hub", config=True, help="The service's name as messages sign it.")

    def _templates(self) -> jinja2.Environment:
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(TEMPLATES))]
        if self.template_dir:
            loaders.insert(0, jinja2.FileSystemLoader(self.template_dir))
        return jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=False,
                                  undefined=jinja2.StrictUndefined, keep_trailing_newline=True)

    def render(self, template: str, **context: Any) -> tuple[str, str]:
        """(subject, body) of ``template`` with ``context``."""
        text = self._templates().get_template(f"{template}.txt").render(site_name=self.site_name, **context)
        first, _, body = text.partition("\n")
        if not first.startswith("Subject:"):
            raise ValueError(f"template {template}.txt must start with a 'Subject: ...' line")
        return first[len("Subject:"):].strip(), body.lstrip("\n")

    def build(self, to: list[str], template: str, **context: Any) -> EmailMessage:
        subject, body = self.render(template, **context)
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain="visa-hub")
        if self.reply_to:
            message["Reply-To"] = self.reply_to
        message.set_content(body)
        return message

    async def send(self, to: list[str] | str, template: str, **context: Any) -> bool:
        """Send one templated message; False (and a log line) when it could not be sent."""
        recipients = [to] if isinstance(to, str) else [t for t in to if t]
        if not recipients:
            self.log.info("No e-mail address for a %s message; not sent", template)
            return False
        message = self.build(recipients, template, **context)
        if not self.smtp_host:
            self.log.info("E-mail disabled (no smtp_host): %r to %s not sent", message["Subject"], recipients)
            return False
        try:
            await asyncio.to_thread(self._deliver, message)
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            self.log.error("Could not send %r to %s via %s:%d: %s", message["Subject"], recipients,
                           self.smtp_host, self.smtp_port, exc)
            return False
        self.log.info("Sent %r to %s", message["Subject"], recipients)
        return True

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.smtp_ca_file or None)

    def _deliver(self, message: EmailMessage) -> None:
        if self.smtp_ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.smtp_host, self.smtp_port, timeout=self.smtp_timeout,
                                                  context=self._context())
        else:
            smtp = smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.smtp_timeout)
        with smtp:
            smtp.ehlo()
            if self.smtp_starttls and not self.smtp_ssl:
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if self.smtp_username:
                smtp.login(self.smtp_username, self.smtp_password)
            smtp.send_message(message)


def display_address(name: str, email: str) -> str:
    return formataddr((name, email)) if name else email
