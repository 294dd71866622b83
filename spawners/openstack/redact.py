"""Keep secrets out of the hub log when openstacksdk / keystoneauth log their requests.

keystoneauth logs whole request and response bodies at DEBUG. A server create carries ``user_data`` (which
holds the instance's JupyterHub API token) and Keystone requests carry passwords. :class:`RedactingHandler`
masks those before a record reaches any hub handler; :func:`route_sdk_logs` installs it and stops the SDK
loggers from propagating unredacted records to the root logger.
"""

from __future__ import annotations

import logging
import re

SDK_LOGGERS = ("keystoneauth", "openstack")

_SECRET_FIELDS = re.compile(
    r'(["\']?(?:user_data|password|adminPass|admin_pass|secret|application_credential_secret|token|'
    r'api_token|auth_token)["\']?\s*[:=]\s*)("[^"]*"|\'[^\']*\'|[^\s,}&{\[]+)',
    re.IGNORECASE,
)
_SECRET_HEADERS = re.compile(r"((?:X-Auth-Token|X-Subject-Token|Authorization)\s*:\s*)([^\s\"']+)", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with secret-looking JSON fields, query parameters and auth headers masked."""
    text = _SECRET_FIELDS.sub(r'\1"***"', text)
    return _SECRET_HEADERS.sub(r"\1***", text)


class RedactingHandler(logging.Handler):
    """Forward SDK records to ``target`` (the hub's logger) with their message redacted."""

    def __init__(self, target: logging.Logger):
        super().__init__(logging.DEBUG)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = redact(record.getMessage())
        except Exception:  # a broken record must never break a cloud call
            message = f"<unformattable {record.name} record>"
        clean = logging.makeLogRecord({**record.__dict__, "msg": message, "args": None, "exc_info": None,
                                       "exc_text": None})
        if self.target.isEnabledFor(clean.levelno):
            self.target.handle(clean)


def route_sdk_logs(target: logging.Logger, debug: bool) -> None:
    """Send openstacksdk/keystoneauth logs, redacted, to ``target``; DEBUG request logs only if ``debug``."""
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if not isinstance(h, RedactingHandler)]
        logger.addHandler(RedactingHandler(target))
        logger.propagate = False  # unredacted records must not reach the root logger's handlers
        logger.setLevel(logging.DEBUG if debug else logging.WARNING)
