#!/usr/bin/env bash
# openstack-stack.sh install|start|wait|stop DIR — a private, minimal
# OpenStack (Debian 12's Zed: Keystone, Placement, Glance, Nova with the fake
# virt driver, Neutron without agents, MariaDB, RabbitMQ) on free loopback
# ports, for vmglue's tests of `vmglue bridge openstack`.
#
# Everything lives in DIR: configuration, databases, RabbitMQ's node, logs,
# pids. Recipe and measurements: /work/shared/facts/openstack-box/README.md.
# Only the python3-* library packages are installed (no service packages, no
# init scripts); each service runs as a process group of its own.
#
#   install  Install the Debian packages if missing (idempotent) and the
#            three api-paste.ini files the service packages would bring.
#   start    Set DIR up from scratch, start every service, create the admin
#            endpoints, a flavor, an image and a dual-stack network, and
#            wait until Nova's compute service is up (about 70 s). If the
#            stack recorded in DIR is already running, do nothing.
#   wait     Block until the stack in DIR is ready (OPENSTACK_STACK_TIMEOUT,
#            default 900 s), e.g. while `start` runs in the background.
#   stop     Stop the process groups recorded in DIR/pids, nothing else.
#
# DIR/env (KEY=value, read by internal/testenv) holds the OS_* variables of
# the admin, OPENSTACK_AMQP_URL and every port; DIR/status is "up" when ready.
# Ports are free ones below the ephemeral range unless set in the
# environment (OPENSTACK_STACK_<NAME>_PORT, NAME one of MYSQL AMQP EPMD DIST
# KEYSTONE PLACEMENT GLANCE NOVA NEUTRON); a busy port is refused.
set -euo pipefail

usage() { echo "usage: $0 install|start|wait|stop DIR" >&2; exit 2; }
[ $# -ge 1 ] || usage
cmd=$1
PY=/usr/bin/python3 # Debian's python: the OpenStack libraries live there
SHARE=/usr/local/share/vmglue-openstack
PKGS=(mariadb-server mariadb-client rabbitmq-server uwsgi-core uwsgi-plugin-python3 curl iproute2 procps
  python3-keystone python3-placement python3-glance python3-nova python3-neutron python3-pymysql python3-openstacksdk)
log() { echo "openstack-stack: $*" >&2; }

do_install() {
  local missing=() p tmp
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  local SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    # No daemon may start from a postinst: the tests start their own.
    [ -e /usr/sbin/policy-rc.d ] || printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if [ ! -s "$SHARE/nova-api-paste.ini" ] || [ ! -s "$SHARE/glance-api-paste.ini" ] || [ ! -s "$SHARE/neutron-api-paste.ini" ]; then
    log "unpacking the api-paste.ini files of nova-common, glance-common, neutron-common"
    tmp=$(mktemp -d)
    chmod 777 "$tmp" # apt-get download drops privileges to _apt
    (cd "$tmp" && apt-get -o DPkg::Lock::Timeout=600 download -qq nova-common glance-common neutron-common >/dev/null &&
      for f in *.deb; do dpkg-deb -x "$f" x; done)
    $SUDO mkdir -p "$SHARE"
    $SUDO cp "$tmp/x/usr/share/nova-common/api-paste.ini" "$SHARE/nova-api-paste.ini"
    $SUDO cp "$tmp/x/usr/share/glance-common/glance-api-paste.ini" "$SHARE/glance-api-paste.ini"
    $SUDO cp "$tmp/x/usr/share/neutron-common/api-paste.ini" "$SHARE/neutron-api-paste.ini"
    rm -rf "$tmp"
  fi
  log "install: done"
}

if [ "$cmd" = install ]; then
  do_install
  exit
fi
[ $# -eq 2 ] || usage
DIR=$2
case $DIR in /*) ;; *) DIR=$PWD/$DIR ;; esac
case $DIR in *[[:space:]]*) echo "openstack-stack: DIR must not contain spaces" >&2; exit 2 ;; esac

. "$(dirname "$0")/stack-lib.sh"
SERVICES=(nova-compute nova-api nova-scheduler nova-conductor neutron-server glance-api placement keystone rabbitmq epmd mariadb)

running() {
  local n
  [ -f "$DIR/env" ] || return 1
  for n in "${SERVICES[@]}"; do alive "$(cat "$DIR/pids/$n.pid" 2>/dev/null)" || return 1; done
}

tails() {
  local f
  for f in "$DIR/start.log" "$DIR"/log/*.log; do
    [ -s "$f" ] || continue
    echo "----- tail $f" >&2
    tail -n 15 "$f" >&2
  done
}

do_wait() {
  local timeout=${OPENSTACK_STACK_TIMEOUT:-900} start=$SECONDS st
  while :; do
    st=$(cat "$DIR/status" 2>/dev/null || true)
    case $st in
    failed*) log "start failed: ${st#failed: }"; tails; return 1 ;;
    up)
      running && return 0
      log "a service of the stack in $DIR is not running (pids in $DIR/pids)"
      tails
      return 1
      ;;
    esac
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
      log "not ready after ${timeout}s (status: ${st:-none}; is \`$0 start $DIR\` running?)"
      tails
      return 1
    fi
    sleep 0.5
  done
}

# stop_group NAME: TERM the process group recorded for NAME, KILL it if it
# is still there after 10 s.
stop_group() {
  local f="$DIR/pids/$1.pid" pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if alive "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do alive "$pid" || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

do_stop() {
  local n
  [ -d "$DIR/pids" ] || { log "nothing to stop in $DIR"; return 0; }
  for n in nova-compute nova-api nova-scheduler nova-conductor neutron-server glance-api placement keystone; do
    stop_group "$n" &
  done
  wait
  for n in rabbitmq epmd mariadb; do stop_group "$n"; done
  echo stopped >"$DIR/status"
  log "stopped"
}

stack_command "$cmd" "$0 install" /usr/sbin/mariadbd /usr/lib/rabbitmq/bin/rabbitmq-server /usr/bin/epmd \
  /usr/bin/uwsgi /usr/bin/keystone-wsgi-public /usr/bin/placement-api "$SHARE/nova-api-paste.ini" curl ss setsid
. "$(dirname "$0")/openstack-stack-setup.sh"
