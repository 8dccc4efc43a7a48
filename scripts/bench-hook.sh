#!/usr/bin/env bash
# make bench-hook: the built vmglue-hook against a running `vmglue serve`
# (embedded NATS on a free port, fresh data dir), and a static hello-world, N
# fresh processes each. Prints p50/p99 of both and their ratio.
set -euo pipefail
N=${N:-200}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bin/vmglue serve --config /dev/null --nats-listen 127.0.0.1:$port --data-dir "$dir/data" --metrics-listen "" > "$dir/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 600); do
  grep -q '"vmglue serve ready"' "$dir/serve.log" && break
  kill -0 $pid 2>/dev/null || { cat "$dir/serve.log"; exit 1; }
  sleep 0.05
done
grep -q '"vmglue serve ready"' "$dir/serve.log" || { echo "vmglue serve not ready"; cat "$dir/serve.log"; exit 1; }
# The hook runs with its role credential, as hook.env gives it.
VMGLUE_NATS_USER=hook VMGLUE_NATS_PASSWORD_FILE="$dir/data/credentials/hook.password" \
  go run ./bench/hook -n "$N" -url "nats://127.0.0.1:$port" -hook bin/vmglue-hook
