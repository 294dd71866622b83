"""visa-hub: experiment-aware JupyterHub for the ESS user programme."""

__version__ = "0.1.0"
