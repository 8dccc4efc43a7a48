#!/usr/bin/env bash
# Builds vmglue's Debian packages, vmglue and vmglue-hook, from the static
# binaries with nfpm (a Go module run at a pinned version: no system tool,
# nothing added to go.mod). The packaging itself lives in deploy/deb/.
#
#   scripts/deb.sh [OUTDIR]              packages for $DEB_ARCH (default: amd64) into OUTDIR (dist)
#   scripts/deb.sh version DESCRIBE DATE the Debian version of a `git describe` output
#
# Environment: VERSION (default: git describe --tags --always --dirty),
# DEB_ARCH (Go architectures, e.g. "amd64 arm64"), DEB_MAINTAINER, GO.
set -euo pipefail

NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
GO=${GO:-go}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

# debversion DESCRIBE DATE prints the Debian version for a `git describe
# --tags --always --dirty` output: v1.2.0 → 1.2.0; v1.2.0-3-gabc1234 →
# 1.2.0+git3.gabc1234; v1.3.0-rc1 → 1.3.0~rc1 (sorts before 1.3.0); no tag
# (a bare hash) → 0.0~gitDATE.HASH; -dirty → +dirty.
debversion() {
	local d=$1 date=$2 dirty="" v
	if [[ $d == *-dirty ]]; then
		dirty=+dirty
		d=${d%-dirty}
	fi
	if [[ $d =~ ^[0-9a-f]{4,40}$ ]]; then
		[[ $date =~ ^[0-9]{8}$ ]] || { echo "deb.sh: date $date is not YYYYMMDD" >&2; return 1; }
		v="0.0~git$date.$d"
	elif [[ $d =~ ^(.+)-([0-9]+)-g([0-9a-f]+)$ ]]; then
		v="${BASH_REMATCH[1]#v}"
		v="${v//-/\~}+git${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}"
	else
		v="${d#v}"
		v="${v//-/\~}"
	fi
	v+=$dirty
	if ! [[ $v =~ ^[0-9][A-Za-z0-9.+~]*$ ]]; then
		echo "deb.sh: cannot make a Debian version of $1" >&2
		return 1
	fi
	echo "$v"
}

if [ "${1:-}" = version ]; then
	debversion "$2" "$3"
	exit
fi

OUT=$(mkdir -p "${1:-$ROOT/dist}" && cd "${1:-$ROOT/dist}" && pwd)
cd "$ROOT"
DESCRIBE=${VERSION:-$(git describe --tags --always --dirty)}
COMMIT_DATE=$(git log -1 --format=%cd --date=format:%Y%m%d)
DEB_VERSION=$(debversion "$DESCRIBE" "$COMMIT_DATE")
export DEB_VERSION
export DEB_MAINTAINER=${DEB_MAINTAINER:-vmglue maintainers <maintainers@vmglue.invalid>}
LDFLAGS="-s -w -X github.com/vmglue/vmglue/internal/cli.Version=$DESCRIBE"

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT

# Files shared by every architecture: units, templates and wrappers name the
# packaged /usr/bin, not the manual install's /usr/local/bin.
mkdir -p "$STAGE/common/onehook" "$STAGE/common/doc"
for f in deploy/systemd/*.service deploy/systemd/*.timer deploy/puppet/vmglue-autosign deploy/onehook/*.tmpl; do
	case $f in deploy/onehook/*) dst=$STAGE/common/onehook ;; *) dst=$STAGE/common ;; esac
	sed 's#/usr/local/bin/#/usr/bin/#g' "$f" >"$dst/$(basename "$f")"
done
cp deploy/systemd/opennebula-hem.service.d/vmglue.conf "$STAGE/common/hem-vmglue.conf"
cp deploy/hook.env deploy/prometheus/vmglue-rules.yaml "$STAGE/common/"
# The conffile: the example with every worker off (a worker runs only when
# its section exists), so that a fresh install validates and starts nothing.
awk '/^workers:/ { print "# Every worker is off until its section is uncommented (see README)."; print "workers: {}"; off = 1; next }
	off && /[^[:space:]]/ { print "#" $0; next } { print }' deploy/vmglue.example.yaml >"$STAGE/common/vmglue.yaml"

# binaries ARCH builds vmglue and vmglue-hook for ARCH into the stage, once.
binaries() {
	local cmd
	mkdir -p "$STAGE/$1"
	for cmd in vmglue vmglue-hook; do
		[ -x "$STAGE/$1/$cmd" ] ||
			CGO_ENABLED=0 GOOS=linux GOARCH=$1 "$GO" build -trimpath -ldflags "$LDFLAGS" -o "$STAGE/$1/$cmd" "./cmd/$cmd"
	done
}
hostarch=$("$GO" env GOARCH)
binaries "$hostarch"
host=$STAGE/$hostarch/vmglue

# Docs: man pages made of `vmglue help` of every command and of the hook's
# usage, the changelog, the copyright.
helptree() {
	echo "vmglue${*:+ $*} --help"
	echo
	"$host" "$@" --help
	echo
	local sub
	for sub in $("$host" "$@" --help | awk '/^Available Commands:/ { on = 1; next } on && NF == 0 { on = 0 } on { print $1 }'); do
		[ "$sub" = help ] || [ "$sub" = completion ] || helptree "$@" "$sub"
	done
}
# manpage NAME SUMMARY: a man page whose body is the help text on stdin.
manpage() {
	{
		echo ".TH ${1^^} 1 \"$(git log -1 --format=%cs)\" \"vmglue $DESCRIBE\" \"vmglue\""
		echo ".SH NAME"
		echo "$1 \\- $2"
		echo ".SH DESCRIPTION"
		echo ".nf"
		sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"
		echo ".fi"
		echo ".SH SEE ALSO"
		echo "https://github.com/vmglue/vmglue (README.md: install, configuration, operations)"
	} | gzip -9n >"$STAGE/common/doc/$1.1.gz"
}
helptree | manpage vmglue "keeps DNS, Puppet and load balancers in step with a cloud's VMs"
# The hook's usage goes to stderr with exit 0 (-h).
"$STAGE/$hostarch/vmglue-hook" -h 2>&1 | manpage vmglue-hook "OpenNebula VM state hook that publishes vmglue events"
date=$(git log -1 --format=%cD)
for pkg in vmglue vmglue-hook; do
	{
		echo "$pkg ($DEB_VERSION) unstable; urgency=medium"
		echo
		echo "  * Built from git $DESCRIBE"
		echo "    (commit $(git rev-parse HEAD))."
		echo
		echo " -- $DEB_MAINTAINER  $date"
	} | gzip -9n >"$STAGE/common/doc/$pkg.changelog.gz"
done
cp deploy/deb/copyright "$STAGE/common/doc/copyright"
cp deploy/deb/*.lintian-overrides "$STAGE/common/"
cp deploy/deb/*.postinst deploy/deb/*.prerm deploy/deb/*.postrm "$STAGE/common/"

for arch in ${DEB_ARCH:-amd64}; do
	binaries "$arch"
	for pkg in vmglue vmglue-hook; do
		# nfpm reads src paths relative to its working directory: the stage.
		(cd "$STAGE" && DEB_GOARCH=$arch "$GO" run "$NFPM" package --config "$ROOT/deploy/deb/$pkg.nfpm.yaml" --packager deb --target "$OUT/")
	done
done
