"""A User Office GraphQL server for tests (``tests/peers/useroffice/server.py``), run as a subprocess::

    with user_office() as uo:
        uo.query("query($sub: String!) { userByOIDCSub(oidcSub: $sub) { id } }", {"sub": alice_sub})
        uo.remove_member(101, 2)
        uo.set_faults(status=503)

It needs ``graphql-core`` (and PyYAML for YAML data) in the Python running the tests.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import secrets
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from . import PEERS_DIR, PeerError, PeerProcess, run_peer

USEROFFICE_DIR = PEERS_DIR / "useroffice"
SAMPLE_DATA = USEROFFICE_DIR / "sample-data.yaml"
SCHEMA = USEROFFICE_DIR / "schema.graphql"

# What an API access token needs in user-office-core to answer visa-hub's queries: the
# "<QueriesClass>.<method>" names its @Authorized decorator checks (Settings → API access).
VISA_HUB_PERMISSIONS = (
    "UserQueries.getByOidcSub",
    "UserQueries.getBasicUserDetailsByEmail",
    "UserQueries.get",
    "UserQueries.getBasic",
    "UserQueries.getProposers",
    "ProposalQueries.get",
    "ProposalQueries.getAll",
    "ProposalQueries.getExperimentsByProposalPk",
    "InstrumentQueries.get",
    "InstrumentQueries.getInstrumentsByProposalPk",
    "StatusQueries.getStatus",
)


def load_sample_data() -> dict:
    import yaml

    return yaml.safe_load(SAMPLE_DATA.read_text())


@dataclass
class UserOfficePeer:
    """A running User Office: its GraphQL endpoint, an API token, and the test hooks."""

    url: str  # the GraphQL endpoint, http://127.0.0.1:<port>/graphql
    base_url: str
    token: str
    process: PeerProcess

    def _hook(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, f"{self.base_url}/_test/{path}", json=body, timeout=10)
        if response.status_code >= 400:
            raise PeerError(f"User Office test hook {method} {path} failed: {response.status_code} {response.text}")
        return response.json()

    def post(
        self,
        query: str,
        variables: dict | None = None,
        *,
        token: str | None = None,
        auth: bool = True,
        timeout: float = 10,
    ) -> httpx.Response:
        """The raw HTTP response to a GraphQL request, sent with ``token`` (default: the peer's
        all-permissions token) or, with ``auth=False``, without an Authorization header."""
        headers = {"Authorization": f"Bearer {token or self.token}"} if auth else {}
        body = {"query": query, "variables": variables or {}}
        return httpx.post(self.url, json=body, headers=headers, timeout=timeout)

    def query(self, query: str, variables: dict | None = None, *, token: str | None = None) -> dict:
        """The ``data`` of a GraphQL request that must succeed without errors."""
        response = self.post(query, variables, token=token)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise PeerError(f"GraphQL errors: {json.dumps(body['errors'], indent=2)}")
        return body["data"]

    # -- test hooks --------------------------------------------------------------------------------
    def data(self) -> dict:
        return self._hook("GET", "data")

    def replace_data(self, data: dict) -> dict:
        return self._hook("PUT", "data", data)

    def patch(self, *, upsert: dict[str, list[dict]] | None = None, delete: dict[str, Iterable] | None = None):
        """Insert or update records (merged by key) and delete records by key, per kind."""
        delete = {kind: list(keys) for kind, keys in (delete or {}).items()}
        return self._hook("PATCH", "data", {"upsert": upsert or {}, "delete": delete})

    def add_member(self, proposal_pk: int, user_id: int) -> dict:
        return self._hook("PUT", f"proposals/{proposal_pk}/users/{user_id}")

    def remove_member(self, proposal_pk: int, user_id: int) -> dict:
        return self._hook("DELETE", f"proposals/{proposal_pk}/users/{user_id}")

    def set_faults(self, *, delay: float | None = None, status: int | None = None, hold: float | None = None,
                   times: int | None = None):
        """Delay and/or fail (e.g. ``status=503``) the next ``times`` GraphQL requests (all if None);
        ``hold``: answer from the data as it is on arrival, but only ``hold`` seconds later."""
        faults = {"delay": delay, "status": status, "hold": hold, "times": times}
        return self._hook("PUT", "faults", {name: value for name, value in faults.items() if value is not None})

    def clear_faults(self) -> None:
        self._hook("DELETE", "faults")

    def requests(self) -> list[dict]:
        """The GraphQL requests received so far: ``{"time", "token", "body"}``."""
        return self._hook("GET", "requests")

    def clear_requests(self) -> None:
        self._hook("DELETE", "requests")


def _check_installed() -> None:
    missing = [name for name in ("graphql", "tornado", "yaml") if importlib.util.find_spec(name) is None]
    if missing:
        raise PeerError(
            f"the User Office test peer needs the Python packages {', '.join(missing)}; "
            "install them with `pip install graphql-core tornado pyyaml`"
        )


@contextlib.contextmanager
def user_office(
    data: dict | None = None,
    *,
    token: str | None = None,
    api_tokens: Iterable[dict] = (),
    port: int = 0,
    timeout: float = 30.0,
) -> Iterator[UserOfficePeer]:
    """Run the User Office GraphQL server on loopback for the duration of the ``with`` block.

    ``data`` defaults to ``sample-data.yaml``. ``token`` (random by default) has every permission;
    ``api_tokens`` adds ``{"token": ..., "permissions": [...]}`` entries with limited ones.
    """
    _check_installed()
    data = dict(load_sample_data() if data is None else data)
    token = token or f"uo-{secrets.token_urlsafe(24)}"
    data["api_tokens"] = [*(data.get("api_tokens") or []), {"token": token, "permissions": None}, *api_tokens]
    with tempfile.TemporaryDirectory(prefix="visa-hub-useroffice-") as tmp:
        data_path = Path(tmp) / "data.json"
        data_path.write_text(json.dumps(data, default=str, indent=2))
        argv = [sys.executable, str(USEROFFICE_DIR / "server.py"), "--data", str(data_path), "--port", str(port)]
        with run_peer("useroffice", argv, cwd=USEROFFICE_DIR, timeout=timeout) as process:
            url = process.ready["url"]
            yield UserOfficePeer(
                url=url,
                base_url=url.removesuffix("/graphql"),
                token=token,
                process=process,
            )
