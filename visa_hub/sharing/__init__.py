"""Shared sessions: who may do what on someone else's instance. Pure: no I/O.

- :mod:`.roles`  member roles, the JupyterHub custom scopes that carry them, and what each role may do now
  (with the owner present or away)
- :mod:`.rules`  whom an owner may share with, as what (experiment membership, staff, consent, expiry)

The hub side (the sessions service) grants and revokes JupyterHub shares with these scopes; the instance side
(:mod:`visa_hub.singleuser.sharing`) reads them back from the visitor's token and enforces them.
"""
