#!/usr/bin/env bash
# make bench: reads the output of bench-hook, bench-dns, bench-sweep (and
# bench-faults) from the file $1 and prints one table of their figures.
# Lines "bench-exit <target> <status>" (written by make bench) mark the
# benches that failed; the script then exits 1. A figure a bench did not
# print shows as "-".
set -euo pipefail
log=${1:?usage: bench-table.sh LOG}

# last LINE-REGEX SED-EXPRESSION: the figure of the last matching line.
last() {
  local v
  v=$(grep -E "$1" "$log" | tail -n 1 | sed -E -n "$2" || true)
  printf '%s' "${v:--}"
}

row() { printf '%-42s %s\n' "$1" "$2"; }

hook_p='^vmglue-hook \(publish \+ ack\) +p50'
burst='s/.*ratio ([0-9.]+x).*/\1/p'
echo
echo "== make bench: figures (this machine, $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)) =="
row "hook p50 / p99" "$(last "$hook_p" 's/.*p50 +([0-9.]+ms) +p99 +([0-9.]+ms).*/\1 \/ \2/p')"
row "burst ratio vs shell+nsupdate, hook" "$(last '^vmglue [0-9.]+s, shell\+nsupdate .*, ratio ' "$burst")"
row "burst ratio vs shell+nsupdate, listen" "$(last '^vmglue listen [0-9.]+s, shell\+nsupdate .*, ratio ' "$burst")"
row "burst converged after last event, hook" "$(last '^vmglue burst converged within' 's/.*within ([0-9]+) ms.*delete: ([0-9]+) ms.*/create \1 ms, delete \2 ms/p')"
row "burst converged after last event, listen" "$(last '^vmglue listen burst converged within' 's/.*within ([0-9]+) ms.*delete: ([0-9]+) ms.*/create \1 ms, delete \2 ms/p')"
row "single event PUB to resolvable p50" "$(last '^vmglue listen: create .*single event' 's/.*p50 ([0-9.]+ ms).*/\1/p')"
row "serve under the hook burst" "$(last '^vmglue serve \(hook burst\):' 's/.*\(([0-9.]+s) per 1,000 events\), peak RSS (.*)/CPU \1 per 1,000 events, peak RSS \2/p')"
row "serve under the listen burst" "$(last '^vmglue serve \(listen burst\):' 's/.*\(([0-9.]+s) per 1,000 events\), peak RSS (.*)/CPU \1 per 1,000 events, peak RSS \2/p')"
row "sweep of 10k VMs" "$(last '^sweep of [0-9]+ VMs against' 's/^sweep of ([0-9]+) VMs against [0-9]+ snapshots: ([0-9.]+s) \(CPU ([0-9.]+s).*heap in use ([0-9]+ MB), (.*)/\1 VMs \2 (CPU \3), heap \4, \5/p')"
if grep -q '^fault ' "$log"; then
  echo "-- fault suite (bench-faults) --"
  grep '^fault ' "$log"
fi
failed=$(awk '$1 == "bench-exit" && $3 != 0 {print $2}' "$log")
if [ -n "$failed" ]; then
  echo "FAILED:" $failed
  exit 1
fi
