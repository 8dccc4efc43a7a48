#!/usr/bin/env bash
# Installs the Debian packages vmglue's tests run against. Idempotent: a
# package that is already installed is not touched, and nothing is started
# (the tests start every server themselves, on loopback).
set -euo pipefail
pkgs=(bind9 bind9-dnsutils haproxy puppetserver puppet-agent puppetdb puppet-terminus-puppetdb postgresql openssl curl debootstrap lintian)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "test-deps: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "test-deps: installing ${missing[*]}"
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "test-deps: done"
