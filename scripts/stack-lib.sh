# stack-lib.sh — sourced by the test-stack scripts (puppet-stack.sh,
# openstack-stack.sh). The caller sets DIR and defines log, running,
# do_wait and do_stop.

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# envval KEY: the value of KEY in DIR/env.
envval() { sed -n "s/^$1=//p" "$DIR/env" 2>/dev/null | head -n1; }

# free_port VAR [PORT]: set VAR to PORT, refused when something listens on
# it, or else to a TCP port on 127.0.0.1 nobody listens on. The ports come
# from below the kernel's ephemeral range (32768-60999 here): a port in that
# range can be taken at any moment by an outgoing connection of a test
# running at the same time, which makes a later bind fail.
free_port() {
  local p lo=20000 hi=32767
  if [ -n "${2:-}" ]; then
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then log "port $2 ($1) is busy"; return 1; fi
    USED_PORTS="${USED_PORTS:-} $2"
    printf -v "$1" %s "$2"
    return
  fi
  if read -r eph _ < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null && [ "$eph" -gt 12000 ]; then
    hi=$((eph - 1))
    lo=$((hi - 12000))
  fi
  for _ in $(seq 1 200); do
    p=$((lo + RANDOM % (hi - lo)))
    case " ${USED_PORTS:-} " in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      USED_PORTS="${USED_PORTS:-} $p"
      printf -v "$1" %s "$p"
      return
    fi
  done
  log "no free port found"
  return 1
}

# stack_command CMD HINT BIN...: run wait or stop and exit; for start, check
# root and the binaries (HINT says how to install them), wait and exit when
# the stack in DIR already runs, else leave DIR empty with status
# "starting", a failing command recorded in DIR/status and stderr copied to
# DIR/start.log, and return: the caller sets the stack up.
stack_command() {
  local cmd=$1 hint=$2 b
  shift 2
  case $cmd in
  start) ;;
  wait) do_wait; exit ;;
  stop) do_stop; exit ;;
  *) usage ;;
  esac
  [ "$(id -u)" -eq 0 ] || { log "start must run as root"; exit 1; }
  for b in "$@"; do
    [ -e "$b" ] || command -v "$b" >/dev/null || { log "$b missing: run $hint"; exit 1; }
  done
  mkdir -p "$DIR"
  if running; then
    log "already running in $DIR"
    do_wait
    exit
  fi
  # A stale run (stopped, crashed, half set up): stop what is left, start over.
  do_stop >/dev/null 2>&1 || true
  find "$DIR" -mindepth 1 -delete
  echo starting >"$DIR/status"
  set -E
  trap 'echo "failed: \`$BASH_COMMAND\` exited $? (${BASH_SOURCE[0]##*/}:$LINENO; see $DIR/start.log)" >"$DIR/status"' ERR
  exec 2> >(tee -a "$DIR/start.log" >&2)
}
