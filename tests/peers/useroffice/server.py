"""A User Office GraphQL server for visa-hub tests.

Serves the part of the UserOfficeProject ``user-office-core`` schema that visa-hub queries
(``schema.graphql`` next to this file) from a YAML or JSON data file, over the same HTTP interface
as the real backend: ``POST /graphql`` with ``Authorization: Bearer <API access token>``.

Access control behaves like user-office-core's:

- an unknown token is refused by the JWT middleware: HTTP 401 with a plain-text reason;
- without a token, or with a token lacking the permission a resolver needs, queries answer
  ``null`` (and lists that may not be null turn into GraphQL errors), HTTP 200;
- a token's permissions are user-office-core's ``"<QueriesClass>.<method>"`` names;
  ``permissions: null`` grants everything.

Test hooks (not part of the real API), all JSON:

- ``GET|PUT|PATCH /_test/data``: read, replace, or patch (``{"upsert": {kind: [records]},
  "delete": {kind: [keys]}}``) the data;
- ``PUT|DELETE /_test/proposals/<primaryKey>/users/<userId>``: add or remove a co-proposer;
- ``PUT|DELETE /_test/faults``: ``{"delay": seconds, "status": 503, "hold": seconds, "times": n}`` slows
  down or fails the next ``times`` (default: all) GraphQL requests; ``hold`` answers from the data as it is
  when the request arrives but sends the answer that many seconds later (an answer in flight);
- ``GET|DELETE /_test/requests``: the GraphQL requests received so far.

Usage: ``python server.py --data sample-data.yaml [--port 0] [--token TOKEN ...]``. Prints one line
``{"ready": true, "url": ..., "port": ...}`` to stdout once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import re
import signal
import stat
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
from graphql import (
    GraphQLError,
    GraphQLSchema,
    StringValueNode,
    build_schema,
    execute,
    parse,
    validate,
)

SCHEMA_PATH = Path(__file__).with_name("schema.graphql")

# user-office-core's roles (apps/backend/src/models/Role.ts), by short code.
ROLES = {
    "user": (1, "User"),
    "user_officer": (2, "User Officer"),
    "fap_chair": (3, "FAP Chair"),
    "fap_secretary": (4, "FAP Secretary"),
    "fap_reviewer": (5, "FAP Reviewer"),
    "instrument_scientist": (6, "Instrument Scientist"),
    "experiment_safety_reviewer": (7, "Experiment Safety Reviewer"),
    "internal_reviewer": (8, "Internal Reviewer"),
}

# The primary key of each kind of record in the data file.
KEYS = {
    "institutions": "id",
    "users": "id",
    "instruments": "id",
    "calls": "id",
    "statuses": "id",
    "proposals": "primaryKey",
    "experiments": "experimentPk",
}

DATE_FIELDS = {
    "users": ("created", "updated"),
    "calls": ("startCall", "endCall", "startCycle", "endCycle"),
    "proposals": ("created", "updated", "submittedDate"),
    "experiments": ("startsAt", "endsAt", "createdAt", "updatedAt"),
}

_RELATIVE = re.compile(r"^now\s*(?:([+-])\s*(\d+(?:\.\d+)?)\s*([smhdw]))?$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_datetime(value: Any, now: datetime) -> datetime | None:
    """ISO 8601 (``Z`` allowed), a YAML timestamp, or relative: ``now``, ``now+2d``, ``now-3h``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    text = str(value).strip()
    if match := _RELATIVE.match(text):
        sign, amount, unit = match.groups()
        if not sign:
            return now
        delta = timedelta(**{_UNITS[unit]: float(amount)})
        return now + delta if sign == "+" else now - delta
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_datetime(value: datetime) -> str:
    """As JavaScript's ``Date.toISOString()``, which user-office-core's DateTime scalar uses."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class DataError(ValueError):
    pass


class Store:
    """The User Office data, keyed like the real database; records use GraphQL field names."""

    def __init__(self, data: dict) -> None:
        self.tables: dict[str, dict[Any, dict]] = {kind: {} for kind in KEYS}
        self.replace(data)

    def replace(self, data: dict) -> None:
        self.tables = {kind: {} for kind in KEYS}
        self.patch(upsert={kind: data.get(kind) or [] for kind in KEYS})

    def patch(self, upsert: dict | None = None, delete: dict | None = None) -> None:
        now = datetime.now(UTC)
        for kind, records in (upsert or {}).items():
            table = self._table(kind)
            for record in records:
                key = record.get(KEYS[kind])
                if key is None:
                    raise DataError(f"{kind} record without {KEYS[kind]!r}: {record}")
                merged = {**table.get(key, {}), **record}
                table[key] = self._normalise(kind, merged, now)
        for kind, keys in (delete or {}).items():
            table = self._table(kind)
            for key in keys:
                table.pop(key, None)

    def _table(self, kind: str) -> dict[Any, dict]:
        if kind not in self.tables:
            raise DataError(f"unknown kind of record {kind!r}; known: {', '.join(KEYS)}")
        return self.tables[kind]

    def _normalise(self, kind: str, record: dict, now: datetime) -> dict:
        record = dict(record)
        for name in DATE_FIELDS.get(kind, ()):
            record[name] = parse_datetime(record.get(name), now)
        if kind == "users":
            record.setdefault("user_title", "")
            record.setdefault("preferredname", None)
            record.setdefault("oidcSub", None)
            record.setdefault("institutionId", 0)
            record.setdefault("roles", ["user"])
            record["created"] = record["created"] or now
            record["updated"] = record["updated"] or now
        elif kind == "institutions":
            record.setdefault("country", None)
        elif kind == "statuses":
            record.setdefault("name", record["shortCode"].replace("_", " ").title())
            record.setdefault("description", "")
            record.setdefault("isDefault", False)
        elif kind == "instruments":
            record.setdefault("description", "")
            record.setdefault("managerUserId", 0)
            record.setdefault("selectable", True)
            record.setdefault("scientists", [])
        elif kind == "calls":
            for name in DATE_FIELDS["calls"]:
                record[name] = record[name] or now
        elif kind == "proposals":
            if "status" in record and isinstance(record["status"], str):
                record["statusId"] = self._status_id(record.pop("status"))
            record.setdefault("statusId", self._status_id("DRAFT"))
            record.setdefault("abstract", "")
            record.setdefault("finalStatus", "UNSET")
            record.setdefault("questionaryId", 0)
            record.setdefault("notified", False)
            record.setdefault("submitted", True)
            record.setdefault("managementDecisionSubmitted", False)
            record.setdefault("users", [])
            record.setdefault("instruments", [])
            record["created"] = record["created"] or now
            record["updated"] = record["updated"] or now
            record["submittedDate"] = record["submittedDate"] or (record["created"] if record["submitted"] else None)
        elif kind == "experiments":
            record.setdefault("experimentId", f"{record['proposalPk']}-{record['experimentPk']}")
            record.setdefault("scheduledEventId", record["experimentPk"])
            record.setdefault("status", "ACTIVE")
            record.setdefault("localContactId", None)
            record["createdAt"] = record["createdAt"] or now
            record["updatedAt"] = record["updatedAt"] or now
        return record

    def _status_id(self, short_code: str) -> int:
        for status in self.tables["statuses"].values():
            if status["shortCode"] == short_code:
                return status["id"]
        new_id = max(self.tables["statuses"], default=0) + 1
        self.tables["statuses"][new_id] = self._normalise(
            "statuses", {"id": new_id, "shortCode": short_code}, datetime.now(UTC)
        )
        return new_id

    def dump(self) -> dict:
        def plain(value: Any) -> Any:
            return format_datetime(value) if isinstance(value, datetime) else value

        return {
            kind: [{name: plain(value) for name, value in record.items()} for record in table.values()]
            for kind, table in self.tables.items()
        }

    # -- lookups ---------------------------------------------------------------------------------
    def get(self, kind: str, key: Any) -> dict | None:
        return self.tables[kind].get(key)

    def all(self, kind: str) -> list[dict]:
        return list(self.tables[kind].values())

    def basic_user(self, user_id: Any) -> dict | None:
        user = self.get("users", user_id)
        if user is None:
            return None
        institution = self.get("institutions", user["institutionId"]) or {}
        return {
            "id": user["id"],
            "firstname": user["firstname"],
            "lastname": user["lastname"],
            "preferredname": user["preferredname"],
            "institution": institution.get("name", ""),
            "institutionId": user["institutionId"],
            "email": user["email"],
            "created": user["created"],
            "country": institution.get("country"),
            "oidc_sub": user["oidcSub"],
        }

    def proposals_of(self, user_id: int) -> list[dict]:
        """Where the user is the principal investigator or a co-proposer."""
        return [p for p in self.all("proposals") if p["proposerId"] == user_id or user_id in p["users"]]


# ---------------------------------------------------------------------------------------------
# Resolvers
# ---------------------------------------------------------------------------------------------
def _store(info) -> Store:
    return info.context["store"]


def _allowed(info, permission: str) -> bool:
    """user-office-core's @Authorized for API access tokens: the token must list the method."""
    permissions = info.context["permissions"]
    return permissions is None or permission in permissions


def _resolvers() -> dict[str, dict[str, Any]]:
    def user_by_oidc_sub(_root, info, oidcSub):
        if not _allowed(info, "UserQueries.getByOidcSub"):
            return None
        return next((u for u in _store(info).all("users") if u["oidcSub"] == oidcSub), None)

    def basic_user_details_by_email(_root, info, email, role=None):
        if not _allowed(info, "UserQueries.getBasicUserDetailsByEmail"):
            return None
        store = _store(info)
        for user in store.all("users"):
            if user["email"].lower() != email.lower():
                continue
            if role is not None and role.lower() not in user["roles"]:
                continue
            return store.basic_user(user["id"])
        return None

    def basic_user_details(_root, info, userId):
        return _store(info).basic_user(userId) if _allowed(info, "UserQueries.getBasic") else None

    def user(_root, info, userId):
        return _store(info).get("users", userId) if _allowed(info, "UserQueries.get") else None

    def proposal(_root, info, primaryKey):
        return _store(info).get("proposals", primaryKey) if _allowed(info, "ProposalQueries.get") else None

    def proposals(_root, info, first=None, offset=None):
        if not _allowed(info, "ProposalQueries.getAll"):
            return None
        everything = sorted(_store(info).all("proposals"), key=lambda p: p["primaryKey"])
        start = offset or 0
        page = everything[start:] if first is None else everything[start:start + first]
        return {"proposals": page, "totalCount": len(everything)}

    def user_roles(user, _info):
        roles = []
        for code in user["roles"]:
            role_id, title = ROLES.get(code, (0, code))
            roles.append({"id": role_id, "shortCode": code, "title": title, "description": ""})
        return roles

    def user_proposals(user, info, filter=None):
        proposals = _store(info).proposals_of(user["id"])
        filter = filter or {}
        if filter.get("instrumentId") is not None:
            proposals = [p for p in proposals if filter["instrumentId"] in p["instruments"]]
        if filter.get("finalStatus") is not None:
            proposals = [p for p in proposals if p["finalStatus"] == filter["finalStatus"]]
        if filter.get("managementDecisionSubmitted"):
            proposals = [p for p in proposals if p["managementDecisionSubmitted"]]
        return proposals

    def user_experiments(user, info, filter=None):
        store = _store(info)
        proposal_pks = {p["primaryKey"] for p in store.proposals_of(user["id"])}
        experiments = [e for e in store.all("experiments") if e["proposalPk"] in proposal_pks]
        filter = filter or {}
        if filter.get("endsAfter") is not None:
            experiments = [e for e in experiments if e["endsAt"] > filter["endsAfter"]]
        if filter.get("instrumentId") is not None:
            experiments = [e for e in experiments if e["instrumentId"] == filter["instrumentId"]]
        if filter.get("status"):
            experiments = [e for e in experiments if e["status"] in filter["status"]]
        return experiments

    def user_instruments(user, info):
        return [
            i
            for i in _store(info).all("instruments")
            if user["id"] in i["scientists"] or i["managerUserId"] == user["id"]
        ]

    def proposal_users(proposal, info):
        if not _allowed(info, "UserQueries.getProposers"):
            return None  # as in user-office-core: a null in a non-null list, so an error
        store = _store(info)
        return [b for b in (store.basic_user(uid) for uid in proposal["users"]) if b is not None]

    def proposal_proposer(proposal, info):
        if not _allowed(info, "UserQueries.getBasic"):
            return None
        return _store(info).basic_user(proposal["proposerId"])

    def proposal_status(proposal, info):
        return _store(info).get("statuses", proposal["statusId"]) if _allowed(info, "StatusQueries.getStatus") else None

    def proposal_call(proposal, info):
        return _store(info).get("calls", proposal["callId"])

    def proposal_instruments(proposal, info):
        if not _allowed(info, "InstrumentQueries.getInstrumentsByProposalPk"):
            return None
        store = _store(info)
        instruments = (store.get("instruments", iid) for iid in proposal["instruments"])
        return [{"managementTimeAllocation": None, **i} for i in instruments if i is not None]

    def proposal_experiments(proposal, info):
        if not _allowed(info, "ProposalQueries.getExperimentsByProposalPk"):
            return None
        return [e for e in _store(info).all("experiments") if e["proposalPk"] == proposal["primaryKey"]]

    def experiment_local_contact(experiment, info):
        if experiment["localContactId"] is None or not _allowed(info, "UserQueries.getBasic"):
            return None
        return _store(info).basic_user(experiment["localContactId"])

    def experiment_instrument(experiment, info):
        instrument = None
        if _allowed(info, "InstrumentQueries.get"):
            instrument = _store(info).get("instruments", experiment["instrumentId"])
        if instrument is None:
            raise GraphQLError("Unexpected error. Instrument not found")
        return instrument

    def experiment_proposal(experiment, info):
        proposal = None
        if _allowed(info, "ProposalQueries.get"):
            proposal = _store(info).get("proposals", experiment["proposalPk"])
        if proposal is None:
            raise GraphQLError("Unexpected error. Experiment does not have an associated proposal")
        return proposal

    def instrument_scientists(instrument, info):
        store = _store(info)
        return [b for b in (store.basic_user(uid) for uid in instrument["scientists"]) if b is not None]

    def instrument_contact(instrument, info):
        return _store(info).basic_user(instrument["managerUserId"]) if _allowed(info, "UserQueries.getBasic") else None

    def user_created(user, _info):
        return format_datetime(user["created"])

    def user_updated(user, _info):
        return format_datetime(user["updated"])

    instrument_fields = {"scientists": instrument_scientists, "instrumentContact": instrument_contact}
    return {
        "Query": {
            "userByOIDCSub": user_by_oidc_sub,
            "basicUserDetailsByEmail": basic_user_details_by_email,
            "basicUserDetails": basic_user_details,
            "user": user,
            "proposal": proposal,
            "proposals": proposals,
        },
        "User": {
            "roles": user_roles,
            "proposals": user_proposals,
            "experiments": user_experiments,
            "instruments": user_instruments,
            "created": user_created,
            "updated": user_updated,
        },
        "Proposal": {
            "users": proposal_users,
            "proposer": proposal_proposer,
            "status": proposal_status,
            "call": proposal_call,
            "instruments": proposal_instruments,
            "experiments": proposal_experiments,
        },
        "Experiment": {
            "localContact": experiment_local_contact,
            "instrument": experiment_instrument,
            "proposal": experiment_proposal,
        },
        "Instrument": instrument_fields,
        "InstrumentWithManagementTime": instrument_fields,
    }


def _serialize_datetime(value: Any) -> str:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, str):
        return format_datetime(parse_datetime(value, datetime.now(UTC)))
    raise GraphQLError(f"DateTime cannot represent value: {value!r}")


def _parse_datetime_value(value: Any) -> datetime:
    try:
        return parse_datetime(str(value), datetime.now(UTC))
    except ValueError as error:
        raise GraphQLError(f"DateTime cannot represent an invalid date-time-string {value!r}.") from error


def _parse_datetime_literal(node: Any, _variables: Any = None) -> datetime:
    if not isinstance(node, StringValueNode):
        raise GraphQLError("DateTime cannot represent non-string value")
    return _parse_datetime_value(node.value)


def make_schema() -> GraphQLSchema:
    schema = build_schema(SCHEMA_PATH.read_text())
    for type_name, fields in _resolvers().items():
        graphql_type = schema.get_type(type_name)
        for field_name, resolver in fields.items():
            graphql_type.fields[field_name].resolve = resolver
    date_time = schema.get_type("DateTime")
    date_time.serialize = _serialize_datetime
    date_time.parse_value = _parse_datetime_value
    date_time.parse_literal = _parse_datetime_literal
    if hasattr(date_time, "coerce_input_value"):  # graphql-core 3.3 reads these instead
        date_time.coerce_output_value = _serialize_datetime
        date_time.coerce_input_value = _parse_datetime_value
    return schema


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------
class State:
    def __init__(self, store: Store, tokens: dict[str, set[str] | None]) -> None:
        self.store = store
        self.tokens = tokens
        self.schema = make_schema()
        self.faults: dict[str, Any] = {}
        self.requests: list[dict] = []


def _js_numbers(value: Any) -> Any:
    """Integral floats as integers, as JavaScript's JSON.stringify writes them (``Float`` ids)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _js_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_js_numbers(item) for item in value]
    return value


def _format_error(error: GraphQLError, code: str) -> dict:
    formatted = error.formatted
    formatted["extensions"] = {"code": code, **(formatted.get("extensions") or {})}
    return formatted


class GraphQLHandler(tornado.web.RequestHandler):
    def initialize(self, state: State) -> None:
        self.state = state

    def check_xsrf_cookie(self) -> None:  # an API, not a form
        pass

    def _send_json(self, status: int, body: dict) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body))

    async def _apply_faults(self) -> bool:
        """Slow down or fail this request as the test asked. True when the request is answered."""
        faults = self.state.faults
        self.hold = float(faults.get("hold") or 0)
        if not faults:
            return False
        if faults.get("times") is not None:
            faults["times"] -= 1
            if faults["times"] <= 0:
                self.state.faults = {}
        if faults.get("delay"):
            await asyncio.sleep(float(faults["delay"]))
        if faults.get("status"):
            self.set_status(int(faults["status"]))
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(f"<html><body><h1>{int(faults['status'])} Service Unavailable</h1></body></html>")
            return True
        return False

    async def post(self) -> None:
        authorization = self.request.headers.get("Authorization", "")
        token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
        body = self._json_body()
        self.state.requests.append({"time": time.time(), "token": token, "body": body})
        if await self._apply_faults():
            return
        if token is not None and token not in self.state.tokens:
            # express-jwt refuses a token it cannot verify before GraphQL runs.
            self.set_status(401)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish("jwt malformed" if token.count(".") != 2 else "invalid signature")
            return
        permissions = self.state.tokens[token] if token is not None else set()

        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            error = {"message": "POST body missing or has no query.", "extensions": {"code": "BAD_REQUEST"}}
            self._send_json(400, {"errors": [error]})
            return
        try:
            document = parse(body["query"])
        except GraphQLError as error:
            self._send_json(400, {"errors": [_format_error(error, "GRAPHQL_PARSE_FAILED")]})
            return
        errors = validate(self.state.schema, document)
        if errors:
            self._send_json(400, {"errors": [_format_error(e, "GRAPHQL_VALIDATION_FAILED") for e in errors]})
            return
        result = execute(
            self.state.schema,
            document,
            variable_values=body.get("variables"),
            operation_name=body.get("operationName"),
            context_value={"store": self.state.store, "permissions": permissions},
        )
        if asyncio.iscoroutine(result) or asyncio.isfuture(result):
            result = await result
        response: dict[str, Any] = {}
        if result.errors:
            code = "BAD_USER_INPUT" if result.data is None else "INTERNAL_SERVER_ERROR"
            response["errors"] = [_format_error(e, code) for e in result.errors]
        response["data"] = _js_numbers(result.data)
        if self.hold:  # computed now, delivered later
            await asyncio.sleep(self.hold)
        self._send_json(200, response)

    def _json_body(self) -> Any:
        try:
            return json.loads(self.request.body or b"null")
        except ValueError:
            return None


class TestHookHandler(tornado.web.RequestHandler):
    def initialize(self, state: State) -> None:
        self.state = state

    def check_xsrf_cookie(self) -> None:
        pass

    def _send(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body))

    def _body(self) -> Any:
        return json.loads(self.request.body or b"{}")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None))[1]
        self.finish({"error": str(error) if error else self._reason})


class DataHook(TestHookHandler):
    def get(self) -> None:
        self._send(self.state.store.dump())

    def put(self) -> None:
        try:
            self.state.store.replace(self._body())
        except (DataError, KeyError, ValueError) as error:
            raise tornado.web.HTTPError(400, str(error)) from error
        self._send(self.state.store.dump())

    def patch(self) -> None:
        body = self._body()
        try:
            self.state.store.patch(upsert=body.get("upsert"), delete=body.get("delete"))
        except (DataError, KeyError, ValueError) as error:
            raise tornado.web.HTTPError(400, str(error)) from error
        self._send(self.state.store.dump())


class MemberHook(TestHookHandler):
    def _proposal(self, primary_key: str) -> dict:
        proposal = self.state.store.get("proposals", int(primary_key))
        if proposal is None:
            raise tornado.web.HTTPError(404, f"no proposal {primary_key}")
        return proposal

    def put(self, primary_key: str, user_id: str) -> None:
        proposal = self._proposal(primary_key)
        if int(user_id) not in proposal["users"]:
            proposal["users"] = [*proposal["users"], int(user_id)]
        self._send({"primaryKey": proposal["primaryKey"], "users": proposal["users"]})

    def delete(self, primary_key: str, user_id: str) -> None:
        proposal = self._proposal(primary_key)
        proposal["users"] = [uid for uid in proposal["users"] if uid != int(user_id)]
        self._send({"primaryKey": proposal["primaryKey"], "users": proposal["users"]})


class FaultHook(TestHookHandler):
    def get(self) -> None:
        self._send(self.state.faults)

    def put(self) -> None:
        body = self._body()
        unknown = set(body) - {"delay", "status", "hold", "times"}
        if unknown:
            raise tornado.web.HTTPError(400, f"unknown fault settings: {', '.join(sorted(unknown))}")
        self.state.faults = body
        self._send(self.state.faults)

    def delete(self) -> None:
        self.state.faults = {}
        self._send(self.state.faults)


class RequestsHook(TestHookHandler):
    def get(self) -> None:
        self._send(self.state.requests)

    def delete(self) -> None:
        self.state.requests.clear()
        self._send([])


class HealthHook(TestHookHandler):
    def get(self) -> None:
        self._send({"status": "ok"})


def make_app(state: State) -> tornado.web.Application:
    args = {"state": state}
    return tornado.web.Application(
        [
            (r"/graphql", GraphQLHandler, args),
            (r"/_test/data", DataHook, args),
            (r"/_test/proposals/(\d+)/users/(\d+)", MemberHook, args),
            (r"/_test/faults", FaultHook, args),
            (r"/_test/requests", RequestsHook, args),
            (r"/_test/health", HealthHook, args),
        ]
    )


def load_data(path: Path) -> dict:
    text = path.read_text()
    if path.suffix in {".yaml", ".yml"}:
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)


def tokens_from(data: dict, extra_tokens: list[str]) -> dict[str, set[str] | None]:
    tokens: dict[str, set[str] | None] = {}
    for entry in data.get("api_tokens") or []:
        permissions = entry.get("permissions")
        tokens[entry["token"]] = None if permissions is None else set(permissions)
    for token in extra_tokens:
        tokens[token] = None
    return tokens


def _wait_for_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    loop.call_soon_threadsafe(stop.set)


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="YAML or JSON data file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", action="append", default=[], help="an API access token with all permissions")
    args = parser.parse_args(argv)

    data = load_data(args.data)
    state = State(Store(copy.deepcopy(data)), tokens_from(data, args.token))
    sockets = tornado.netutil.bind_sockets(args.port, args.host)
    server = tornado.httpserver.HTTPServer(make_app(state))
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # The test fixture holds our stdin (a pipe) open; when it goes away (even killed), so do we.
    if stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
        threading.Thread(target=_wait_for_stdin_eof, args=(loop, stop), daemon=True).start()
    print(json.dumps({"ready": True, "url": f"http://{args.host}:{port}/graphql", "port": port}), flush=True)
    await stop.wait()
    server.stop()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except DataError as error:
        sys.exit(f"useroffice peer: bad data: {error}")
