"""What runs on an instance at boot, before JupyterLab: fetch the server's token, become the person, start.

Installed with the instance environment (``scripts/provision-instance.sh``); the hub never imports it.
"""
