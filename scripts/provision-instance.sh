#!/usr/bin/env bash
# Provision the instance environment: what runs inside an instance (jupyterhub-singleuser, JupyterLab,
# jupyter-server-proxy, visa-hub's server extension and labextension, Dask), in a virtualenv of its own,
# with visa-hub's Jupyter defaults in that environment's etc/jupyter. The VM image, the apptainer image
# of the Slurm nodes (containers/instance/) and the test suite's simulated VMs are all built with it.
#
# Usage: scripts/provision-instance.sh PREFIX [SOURCE]
#   PREFIX  where the environment goes, as the instance will see it (the spawners' default is
#           /opt/visa-instance); a virtualenv cannot be moved afterwards
#   SOURCE  what to install visa-hub from: a wheel, or a checkout (default: the checkout of this script)
#
# Needs python3 >= 3.11 with venv (Debian: python3-venv) and a package index (pip's own settings apply).
# Idempotent: run it again to update visa-hub (the package itself is always reinstalled from SOURCE).
set -euo pipefail
prefix=${1:?usage: provision-instance.sh PREFIX [SOURCE]}
source=${2:-$(cd "$(dirname "$0")/.." && pwd)}
python=${VISA_INSTANCE_PYTHON:-/usr/bin/python3}
umask 022  # every user of the instance reads the environment

[ -x "$prefix/bin/python" ] || { echo "==> new environment $prefix"; "$python" -m venv "$prefix"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -d "$source" ]; then
  echo "==> building visa-hub's wheel from $source"
  "$prefix/bin/python" -m pip wheel -q --no-deps --wheel-dir "$work" "$source"
  wheel=$(ls "$work"/*.whl)
else
  wheel=$(cd "$(dirname "$source")" && pwd)/$(basename "$source")
fi
echo "==> installing visa-hub[instance] into $prefix"
"$prefix/bin/python" -m pip install -q "$wheel[instance]"
"$prefix/bin/python" -m pip install -q --no-deps --force-reinstall "$wheel"

# visa-hub's Jupyter defaults (e.g. no news feed: instances have no internet). Jupyter reads
# <prefix>/etc/jupyter for every server started from this environment, before the user's own ~/.jupyter.
defaults=$("$prefix/bin/python" -c 'import pathlib, visa_hub.singleuser as s; print(pathlib.Path(s.__file__).parent / "jupyter_config")')
mkdir -p "$prefix/etc/jupyter"
cp "$defaults"/*.json "$prefix/etc/jupyter/"

"$prefix/bin/jupyter" server extension list 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | grep -q "visa_hub.singleuser enabled" \
  || { echo "provision-instance.sh: visa-hub's server extension is not enabled in $prefix" >&2; exit 1; }
echo "==> instance environment ready: $prefix/bin/jupyterhub-singleuser"
