#!/usr/bin/env bash
# Benchmark: requests per second and p50/p99 through the gateway, for a
# book lookup and for a checkout, against `lectern up` on SQLite.
#
#   bench/http.sh [seconds] [connections]
#
# SKIP_BUILD=1 uses the release binaries already in target/release.
#
# Starts its own system on a free loopback port with a throw-away data
# directory, and stops it (by its pid) when done. Reports numbers; asserts
# nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
connections="${2:-16}"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -q -p lectern -p lectern-loadgen
fi
data="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export LECTERN_ADMIN_PASSWORD="bench-$(date +%s)-password"
log="$data/up.log"

./target/release/lectern up --port "$port" --data-dir "$data/lectern" \
  >"$log" 2>&1 &
up=$!
trap 'kill -TERM $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$data"' EXIT

for _ in $(seq 1 120); do
  grep -q "is ready" "$log" && break
  kill -0 "$up" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.5
done
grep -q "is ready" "$log" || { echo "not ready in 60 s"; tail -50 "$log"; exit 1; }

url="http://127.0.0.1:$port"
replica="http://$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(next(c["address"] for c in d["children"] if c["service"]=="book-service"))' "$data/lectern/pids.json")"
echo "Lectern $(./target/release/lectern --version) at $url, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

load() {
  LECTERN_PASSWORD="$LECTERN_ADMIN_PASSWORD" ./target/release/lectern-load \
    --connections "$connections" --seconds "$seconds" "$@"
}
echo "-- book lookup through the gateway, then straight to one replica"
load --url "$url" --scenario lookup
load --url "$replica" --scenario lookup
echo "-- checkout through the gateway"
load --url "$url" --scenario checkout
