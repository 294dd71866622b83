"""visa-hub's embedded demo: `jupyterhub -f jupyterhub_config.py` (or `make run`).

Demo identity provider and User Office, local instances, SQLite, all under ./data, hub on
http://127.0.0.1:8000. Environment variables switch to production backends; see visa_hub/hubconfig.py.
"""

from visa_hub.hubconfig import configure

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)
configure(c)
