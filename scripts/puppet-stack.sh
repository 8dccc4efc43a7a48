#!/usr/bin/env bash
# puppet-stack.sh start|wait|stop DIR — a private PostgreSQL + PuppetDB 7 +
# Puppet Server 7 (CA) on free loopback ports, for vmglue's tests.
#
# Everything lives in DIR: configuration, CA, certificates, database, logs,
# pids. The system's /etc/puppet, /etc/puppetdb, /var/lib/puppet* and the
# PostgreSQL cluster 15/main are read (copied) but never changed.
# Recipe and timings: /work/shared/facts/puppet.md.
#
#   start  Set DIR up from scratch, launch the three servers in the
#          background and wait until they answer. If the stack recorded in
#          DIR is already running, do nothing (idempotent).
#   wait   Block until the stack in DIR is ready (PUPPET_STACK_TIMEOUT,
#          default 300 s), e.g. while `start` runs in the background. On
#          failure print the reason and the logs' tails, exit 1.
#   stop   Stop the servers by the pids recorded in DIR/env.
#
# DIR/env (KEY=value) is written as soon as the servers are launched; see
# write_env below for the keys. Environment:
#   PUPPET_STACK_AUTOSIGN  executable run (via DIR/autosign) for every CSR as
#                          "exe <certname>" with the CSR PEM on stdin; exit 0
#                          signs. Default: DIR/autosign-refuse.sh. The target
#                          can be changed at runtime by rewriting the file
#                          named by PUPPET_AUTOSIGN_TARGET_FILE (no reload).
#   PUPPET_STACK_TIMEOUT   seconds for wait (default 300).
# Must run as root (it runs each server as its own system user).
set -euo pipefail

usage() { echo "usage: $0 start|wait|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
DIR=$2
case $DIR in /*) ;; *) DIR=$PWD/$DIR ;; esac
case $DIR in *[[:space:]]*) echo "puppet-stack: DIR must not contain spaces" >&2; exit 2 ;; esac

PGBIN=/usr/lib/postgresql/15/bin
WORKER_CERT=vmglue-worker   # allowed by auth.conf and the PuppetDB allowlist
INTRUDER_CERT=vmglue-intruder  # signed by the CA, allowed nowhere (403 tests)

log() { echo "puppet-stack: $*" >&2; }

. "$(dirname "$0")/stack-lib.sh"

ps_ready() { [ "$(curl -sk --max-time 5 "https://127.0.0.1:$(envval PUPPET_SERVER_PORT)/status/v1/simple" 2>/dev/null)" = running ]; }
pdb_ready() {
  curl -s --max-time 5 "$(envval PUPPETDB_HTTP_URL)/status/v1/services/puppetdb-status" 2>/dev/null |
    grep -q '"state" *: *"running"'
}

running() {
  [ -f "$DIR/env" ] || return 1
  alive "$(envval POSTGRES_PID)" && alive "$(envval PUPPETDB_PID)" && alive "$(envval PUPPETSERVER_PID)"
}

tails() {
  local f
  for f in "$DIR/start.log" "$DIR/ps/log/puppetserver.log" "$DIR/ps/stdout" \
    "$DIR/pdb/log/puppetdb.log" "$DIR/pdb/stdout" "$DIR/pg/pg.log"; do
    [ -s "$f" ] || continue
    echo "----- tail $f" >&2
    tail -n 25 "$f" >&2
  done
}

# do_wait [launched]: wait for status "up" (or "launched", from start) and
# both servers answering.
do_wait() {
  local timeout=${PUPPET_STACK_TIMEOUT:-300} start=$SECONDS st
  while :; do
    st=$(cat "$DIR/status" 2>/dev/null || true)
    case $st in
    failed*)
      log "start failed: ${st#failed: }"
      tails
      return 1
      ;;
    up | launched)
      if ! running; then
        log "a server of the stack in $DIR is not running (pids in $DIR/env)"
        tails
        return 1
      fi
      # "launched": the JVMs run, start still has work once they answer.
      if { [ "$st" = up ] || [ "${1:-}" = launched ]; } && ps_ready && pdb_ready; then
        return 0
      fi
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

do_stop() {
  local pid name pgpid
  [ -f "$DIR/env" ] || [ -f "$DIR/pg/data/postmaster.pid" ] || { log "nothing to stop in $DIR"; return 0; }
  for name in PUPPETSERVER_PID PUPPETDB_PID; do
    pid=$(envval $name)
    alive "$pid" && kill -TERM "$pid" 2>/dev/null || true
  done
  # postgres is up before DIR/env exists: its own pid file covers a failed start.
  pgpid=$(envval POSTGRES_PID)
  [ -n "$pgpid" ] || pgpid=$(head -n1 "$DIR/pg/data/postmaster.pid" 2>/dev/null || true)
  alive "$pgpid" && kill -INT "$pgpid" 2>/dev/null || true # fast shutdown
  for name in PUPPETSERVER_PID PUPPETDB_PID POSTGRES_PID; do
    pid=$(envval $name)
    [ "$name" = POSTGRES_PID ] && pid=$pgpid
    for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && { log "killing $name $pid"; kill -KILL "$pid" 2>/dev/null || true; }
  done
  echo stopped >"$DIR/status"
  log "stopped"
}

stack_command "$cmd" scripts/test-deps.sh "$PGBIN/initdb" /usr/share/puppetserver/puppetserver.jar \
  /usr/share/puppetdb/puppetdb.jar java curl setpriv
chmod 755 "$DIR"
if ! setpriv --reuid=puppet --regid=puppet --clear-groups test -x "$DIR"; then
  log "$DIR is not reachable by the puppet user: choose a DIR whose parents are world-searchable"
  exit 1
fi
. "$(dirname "$0")/puppet-stack-setup.sh"
