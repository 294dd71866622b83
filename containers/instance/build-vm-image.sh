#!/usr/bin/env bash
# Build the VM image of visa-hub instances: a Debian or Ubuntu cloud image (with cloud-init) customised with
# the instance environment, provisioned by scripts/provision-instance.sh at /opt/visa-instance, and the
# desktop packages of scripts/install-desktop.sh. Uses virt-customize (Debian: libguestfs-tools; KVM helps).
#
#   containers/instance/build-vm-image.sh BASE.qcow2 OUTPUT.qcow2
#   openstack image create --disk-format qcow2 --container-format bare --file OUTPUT.qcow2 <cloud image name>
#
# The cloud image name is what the site catalog's images call cloud_image (or OpenStackSpawner.image_map).
# The appliance needs the network for apt and the package index. See containers/instance/README.md.
set -euo pipefail
base=${1:?usage: build-vm-image.sh BASE.qcow2 OUTPUT.qcow2}
output=${2:?usage: build-vm-image.sh BASE.qcow2 OUTPUT.qcow2}
repo=$(cd "$(dirname "$0")/../.." && pwd)
command -v virt-customize >/dev/null || { echo "virt-customize missing: apt-get install libguestfs-tools" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip wheel -q --no-deps --wheel-dir "$work" "$repo"
wheel=$(basename "$(ls "$work"/visa_hub-*.whl)")
cp "$base" "$output"

# What user_data needs besides the instance environment: useradd (passwd), mount/mountpoint (util-linux),
# mkfs.ext4/blkid (e2fsprogs), hostname -I (hostname), mount -t nfs for homes and experiment data on the site's
# file server (nfs-common); cloud images have most of them, the list makes sure.
virt-customize -a "$output" \
  --install python3,python3-venv,ca-certificates,cloud-init,passwd,util-linux,e2fsprogs,hostname,nfs-common \
  --mkdir /opt/visa-build \
  --copy-in "$work/$wheel:/opt/visa-build" \
  --copy-in "$repo/scripts/provision-instance.sh:/opt/visa-build" \
  --copy-in "$repo/scripts/install-desktop.sh:/opt/visa-build" \
  --copy-in "$repo/scripts/lib.sh:/opt/visa-build" \
  --run-command "/opt/visa-build/install-desktop.sh" \
  --run-command "/opt/visa-build/provision-instance.sh /opt/visa-instance /opt/visa-build/$wheel" \
  --run-command "rm -rf /opt/visa-build && apt-get clean" \
  --run-command "cloud-init clean --logs"
echo "==> $output: upload it with openstack image create (see the header of this script)"
