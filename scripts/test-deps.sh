#!/usr/bin/env bash
# Installs the Debian packages vmglue's tests run against. Idempotent: a
# package that is already installed is not touched, and nothing is started
# (the tests start every server themselves, on loopback): where the machine
# has no policy-rc.d, one that denies every start is in place during the
# install, so the Debian services of bind9, knot and pdns-server (which would
# take port 53), icinga2 and prometheus are never started.
set -euo pipefail
pkgs=(bind9 bind9-dnsutils knot pdns-server pdns-backend-sqlite3 sqlite3 haproxy puppetserver puppet-agent puppetdb puppet-terminus-puppetdb postgresql openssl curl debootstrap lintian icinga2 prometheus chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# The OpenStack stack of the bridge tests has its own idempotent install.
"$(dirname "$0")/openstack-stack.sh" install
if [ ${#missing[@]} -eq 0 ]; then
  echo "test-deps: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "test-deps: installing ${missing[*]}"
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# test-deps.sh: no service starts during the install\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "test-deps: done"
