"""One-time bootstrap codes: how an instance gets its server's API token without carrying it in user_data.

A cloud's user_data can be read by every unix user of the VM (through the metadata service) and is kept by the
cloud, so it must not hold the server's JupyterHub API token. Instead the spawner puts a one-time *bootstrap
code* there and keeps only the code's hash in its state. On first boot the instance (as root, before it starts
anything as the person) trades the code for the token at the hub::

    POST <JUPYTERHUB_API_URL>/visa/instance-token
    {"user": "alice", "server_name": "", "code": "<bootstrap code>"}
    → 200 {"token": "<API token>"} once; every later use → 403, logged by the hub

The endpoint (:mod:`visa_hub.bootstrap_api`) is the hub's own: only the hub can issue a server token and update
its OAuth client. The instance side is :mod:`visa_hub.instance.start`; the spawner side
``spawners.bootstrap.BootstrapCodes``. This module is pure: both sides import it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

INSTANCE_TOKEN_PATH = "visa/instance-token"  # below the hub's API URL (JUPYTERHUB_API_URL)


def new_code() -> str:
    """A fresh bootstrap code (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def code_hash(code: str) -> str:
    """What spawner state keeps of a code (a code is random, so a plain SHA-256 is enough)."""
    return hashlib.sha256(code.encode()).hexdigest()


def code_matches(code: str, hashed: str) -> bool:
    """Constant-time comparison of a presented code with a stored hash."""
    return hmac.compare_digest(code_hash(code), hashed)
