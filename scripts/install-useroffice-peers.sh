#!/usr/bin/env bash
# Test peers of the User Office event stream: Debian's rabbitmq-server (idempotent; Debian 12).
#
# The tests start a private broker of their own (tests/peers_rabbitmq.py) on a free loopback port,
# so the system service that the package starts on install is stopped and disabled again here.
set -euo pipefail

source "$(dirname "$0")/lib.sh"

if ! dpkg-query -W -f='${Status}' rabbitmq-server 2>/dev/null | grep -q "ok installed"; then
  # keep the post-install script from starting the broker where the init system allows it
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
    trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt_ensure rabbitmq-server
fi

# the tests run their own broker: no system broker on the default ports
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  as_root systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
else
  as_root service rabbitmq-server stop >/dev/null 2>&1 || true
fi
# a broker the package may have started without an init system (stops it if it runs; quick if not)
as_root timeout 30 rabbitmqctl -q shutdown >/dev/null 2>&1 || true
echo "rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server) installed (system service stopped)"
