"""The request handler every simulated service builds on.

It counts the request, applies injected faults, checks the ``X-Auth-Token``,
negotiates the microversion and renders errors in the service's own shape.
"""

from __future__ import annotations

import asyncio
import json
import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import tornado.web

if TYPE_CHECKING:
    from .app import OpenStackSimulator
    from .state import Token

# Nova's (and Cinder's) wsgi Fault names by status; anything else is "computeFault".
FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}

# Neutron exception type names for statuses raised without a specific one.
NEUTRON_TYPES = {
    400: "BadRequest",
    401: "NotAuthorized",
    403: "NotAuthorized",
    404: "NotFound",
    409: "Conflict",
    500: "HTTPInternalServerError",
    503: "ServiceUnavailable",
}

AUTH_REQUIRED = "The request you have made requires authentication."


class ApiError(tornado.web.HTTPError):
    """An error answered in the service's error shape (``kind``: Neutron type / Nova fault name)."""

    def __init__(self, status: int, message: str, kind: str | None = None, **extra: Any) -> None:
        super().__init__(status)
        self.message = message
        self.kind = kind
        self.extra = extra


def route(template: str) -> str:
    """``/servers/{server_id}`` -> a tornado regex with named groups and an optional trailing slash."""
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template.rstrip("/"))
    return pattern + "/?"


def parse_version(text: str) -> tuple[int, int]:
    major, _, minor = text.strip().partition(".")
    return int(major), int(minor or 0)


class SimHandler(tornado.web.RequestHandler):
    """Base of all API handlers. Subclasses set ``style`` and, if versioned, the microversion range."""

    style = "nova"  # error body shape: nova | neutron | glance | keystone
    requires_auth = True
    microversion_service: str | None = None  # "compute" / "volume"
    min_version = "2.1"
    max_version = "2.1"
    legacy_version_header: str | None = None  # X-OpenStack-Nova-API-Version

    sim: OpenStackSimulator
    template: str
    token: Token
    microversion: tuple[int, int]

    def initialize(self, sim: OpenStackSimulator, template: str) -> None:
        self.sim = sim
        self.template = template

    # ------------------------------------------------------------ request flow

    async def prepare(self) -> None:
        self.sim.stats_counter.count(self.request.method or "GET", self.template)
        rule = self.sim.faults.take(self.request.method or "GET", self.request.path)
        if rule is not None:
            if rule.delay:
                await asyncio.sleep(rule.delay)
            if rule.status is not None:
                status = rule.status
                message = rule.message or f"Injected fault: {HTTPStatus(status).phrase}"
                raise ApiError(status, message)
        if self.microversion_service:
            self._negotiate_microversion()
        if self.requires_auth:
            self.token = self._check_token()

    def _check_token(self) -> Token:
        token_id = self.request.headers.get("X-Auth-Token", "")
        token = self.sim.valid_token(token_id)
        if token is None:
            self.set_header("WWW-Authenticate", f'Keystone uri="{self.sim.url}/identity"')
            raise ApiError(401, AUTH_REQUIRED, style="keystone")
        return token

    def _negotiate_microversion(self) -> None:
        service = self.microversion_service
        requested = None
        header = self.request.headers.get("OpenStack-API-Version", "")
        for part in header.split(","):
            name, _, value = part.strip().partition(" ")
            if name.lower() == service and value:
                requested = value.strip()
        if requested is None and self.legacy_version_header:
            requested = self.request.headers.get(self.legacy_version_header)
        minimum, maximum = parse_version(self.min_version), parse_version(self.max_version)
        if not requested:
            version = minimum
        elif requested.lower() == "latest":
            version = maximum
        else:
            try:
                version = parse_version(requested)
            except ValueError:
                raise ApiError(400, f"Invalid API version request string {requested}.") from None
        text = f"{version[0]}.{version[1]}"
        self.set_header("OpenStack-API-Version", f"{service} {text}")
        self.add_header("Vary", "OpenStack-API-Version")
        if self.legacy_version_header:
            self.set_header(self.legacy_version_header, text)
            self.add_header("Vary", self.legacy_version_header)
        if not minimum <= version <= maximum:
            raise ApiError(
                406,
                f"Version {text} is not supported by the API. "
                f"Minimum is {self.min_version} and maximum is {self.max_version}.",
            )
        self.microversion = version

    def version_at_least(self, text: str) -> bool:
        return self.microversion >= parse_version(text)

    # ------------------------------------------------------------ helpers

    def json_body(self, key: str | None = None) -> Any:
        """The JSON body (or its ``key`` member, which must be a dict); 400 when malformed."""
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            raise ApiError(400, "Malformed request body") from None
        if key is not None:
            if not isinstance(body, dict) or not isinstance(body.get(key), dict):
                raise ApiError(400, f"Invalid input for field/attribute {key}. Value: {body!r}.")
            return body[key]
        return body

    def send_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def no_content(self, status: int = 204) -> None:
        self.set_status(status)
        self.finish()

    def query(self, name: str) -> str | None:
        value = self.get_query_argument(name, None)
        return value

    @property
    def project_id(self) -> str:
        return self.token.project.id

    # ------------------------------------------------------------ errors

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            message, kind, style = exc.message, exc.kind, exc.extra.get("style", self.style)
        else:
            message, kind, style = HTTPStatus(status_code).phrase, None, self.style
            if status_code >= 500:
                message = "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ " \
                    "and attach the Nova API log if possible." if style == "nova" else message
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(error_body(style, status_code, message, kind)))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError):
            return  # an API answer, not a simulator bug
        super().log_exception(typ, value, tb)


def error_body(style: str, status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    """The error document a real service returns."""
    phrase = HTTPStatus(status).phrase
    if style == "neutron":
        return {"NeutronError": {"type": kind or NEUTRON_TYPES.get(status, "NeutronError"),
                                 "message": message, "detail": ""}}
    if style == "keystone":
        return {"error": {"code": status, "message": message, "title": phrase}}
    if style == "glance":
        return {"message": message, "code": f"{status} {phrase}", "title": phrase}
    return {kind or FAULT_NAMES.get(status, "computeFault"): {"code": status, "message": message}}


class VersionHandler(SimHandler):
    """Serves a version-discovery document (no auth needed), still counted and fault-injectable."""

    requires_auth = False

    def initialize(self, sim: OpenStackSimulator, template: str, document: Any, status: int = 200) -> None:
        super().initialize(sim, template)
        self.document = document
        self.status = status

    def get(self, **_: str) -> None:
        document = self.document(self.sim) if callable(self.document) else self.document
        self.send_json(document, self.status)
