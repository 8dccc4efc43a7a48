#!/usr/bin/env bash
# Makes once, and caches, the disposable Debian 12 root in which the package
# tests (deploy/deb) install, run and purge vmglue's .debs: a minbase
# debootstrap with adduser, from the mirror this machine's apt uses for
# bookworm (or $VMGLUE_DEB_MIRROR). Prints the tarball's path.
#
#   scripts/deb-chroot.sh          cache: $VMGLUE_DEB_CACHE (/var/cache/vmglue-test)
#   scripts/deb-chroot.sh mirror   print the mirror it would use ($APT_ETC: /etc/apt)
#
# A second run waits for the first (flock) and then uses its tarball, so
# `make test` starts one in the background and the test waits for it.
# debootstrap mounts /proc in the new root: it runs in its own mount
# namespace, so no mount outlives it, whatever happens.
set -euo pipefail

# mirror prints the first deb URI of apt's sources that serves bookworm.
mirror() {
	local etc=${APT_ETC:-/etc/apt}
	{
		# One-line format: deb [options] URI SUITE COMPONENT...
		for f in "$etc/sources.list" "$etc"/sources.list.d/*.list; do
			if [ -f "$f" ]; then awk '$1 == "deb" { n = 2; if ($2 ~ /^\[/) { while (n < NF && $n !~ /\]$/) n++; n++ }
				if ($(n + 1) == "bookworm") print $n }' "$f"; fi
		done
		# deb822 format: stanzas of Types, URIs, Suites, Enabled.
		for f in "$etc"/sources.list.d/*.sources; do
			if [ -f "$f" ]; then awk -v RS= '{
				deb = 0; ok = 0; uri = ""; enabled = 1
				n = split($0, line, "\n")
				for (i = 1; i <= n; i++) {
					if (line[i] ~ /^Types:/ && line[i] ~ /[ \t]deb([ \t]|$)/) deb = 1
					if (line[i] ~ /^Suites:/ && line[i] ~ /[ \t]bookworm([ \t]|$)/) ok = 1
					if (line[i] ~ /^Enabled:[ \t]*no/) enabled = 0
					if (line[i] ~ /^URIs:/) { split(line[i], u, /[ \t]+/); uri = u[2] }
				}
				if (deb && ok && enabled && uri != "") print uri
			}' "$f"; fi
		done
	} | awk 'NR == 1'
}
if [ "${1:-}" = mirror ]; then
	mirror
	exit
fi

cache=${VMGLUE_DEB_CACHE:-/var/cache/vmglue-test}
arch=$(dpkg --print-architecture)
tarball=$cache/bookworm-minbase-adduser-$arch.tar.gz
mkdir -p "$cache"
exec 9>"$tarball.lock"
flock 9
if [ -s "$tarball" ]; then
	echo "$tarball"
	exit 0
fi
# What a killed earlier run left (never a mount: see above).
rm -rf "$cache"/build.*

url=${VMGLUE_DEB_MIRROR:-$(mirror)}
if [ -z "$url" ]; then
	echo "deb-chroot: no bookworm mirror in /etc/apt/sources.list[.d]; set VMGLUE_DEB_MIRROR" >&2
	exit 1
fi

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "deb-chroot: debootstrap bookworm from $url" >&2
if ! unshare --mount --propagation private \
	debootstrap --variant=minbase --include=adduser bookworm "$work/root" "$url" >"$work/log" 2>&1; then
	tail -n 30 "$work/log" >&2
	exit 1
fi
rm -f "$work/root/var/cache/apt/archives/"*.deb
tar --numeric-owner -czf "$work/root.tar.gz" -C "$work/root" .
mv "$work/root.tar.gz" "$tarball"
echo "deb-chroot: made $tarball in $(($(date +%s) - start))s" >&2
echo "$tarball"
