"""visa-hub spawners: thin backend adapters around the experiment-aware base in :mod:`spawners.base`."""
