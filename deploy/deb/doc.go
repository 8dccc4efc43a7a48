// Package deb holds vmglue's Debian packaging (nfpm configurations, maintainer
// scripts, lintian overrides: scripts/deb.sh builds them with `make deb`) and
// its tests. The tests build both packages, check them with dpkg-deb and
// lintian, then install, run and purge them for real with apt in a
// disposable Debian 12 root (a cached debootstrap, scripts/deb-chroot.sh),
// never on the test machine itself. They need root, debootstrap and lintian
// (scripts/test-deps.sh installs them).
package deb
