#!/usr/bin/env bash
# Failover under load: three book-service replicas behind Lectern's
# gateway, then behind nginx; `kill -9` of one replica a third of the way
# into a steady load of searches and keyed creates; failures and
# duplicates reported for each.
#
#   bench/failover.sh [seconds] [connections]
#
# - Replicas: `lectern serve book-service` x3 on loopback, one shared
#   SQLite file, the sample catalogue. The first starts (and migrates)
#   alone, then the other two.
# - Lectern's gateway: `lectern serve gateway` with a file that mirrors
#   the nginx configuration (least connections, max_fails=3
#   fail_timeout=30s, next_upstream error timeout http_500 http_502
#   http_503, tries 2) plus what nginx lacks: active checks of
#   /health/ready every 2 s and retries of keyed POSTs.
# - nginx: deploy/nginx/nginx.conf.template as shipped (the backup and
#   the other services on a dead port).
# - Load: the `failover_load` example, the same for both; the client never
#   retries, so every failure the proxy lets through counts.
#
# Everything listens on 127.0.0.1; every process this starts is stopped
# by its pid on exit. Reports numbers; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
connections="${2:-8}"

nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$nginx_bin" ] || { echo "bench/failover.sh needs nginx" >&2; exit 1; }

cargo build --release -q -p lectern
cargo build --release -q -p lectern-gateway --example failover_load
lectern=./target/release/lectern
load=./target/release/examples/failover_load

dir="$(mktemp -d)"
pids=()
replica_pids=(0 0 0)
cleanup() {
  for pid in "${pids[@]}" "${replica_pids[@]}"; do
    [ "$pid" != 0 ] && kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}" "${replica_pids[@]}"; do
    [ "$pid" != 0 ] && wait "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
replica_ports=("$(free_port)" "$(free_port)" "$(free_port)")
gateway_port="$(free_port)"
nginx_port="$(free_port)"
dead_port="$(free_port)"
secret="failover-bench-$(date +%s)-secret"

until_ready() {
  local url="$1" what="$2"
  for _ in $(seq 1 240); do
    curl -fsS "$url" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  echo "$what not ready: $url" >&2
  tail -20 "$dir"/*.log >&2 || true
  exit 1
}

start_replica() {
  local i="$1"
  LECTERN_BIND="127.0.0.1:${replica_ports[$i]}" \
    DATABASE_URL="sqlite://$dir/book.db" \
    LECTERN_TOKEN_SECRET="$secret" \
    LECTERN_SAMPLE_CATALOGUE=true \
    "$lectern" serve book-service >>"$dir/replica-$i.log" 2>&1 &
  replica_pids[$i]=$!
  until_ready "http://127.0.0.1:${replica_ports[$i]}/health/ready" "replica $i"
}

start_replica 0
start_replica 1
start_replica 2

cat >"$dir/gateway.toml" <<EOF
[[routes]]
prefix = "/api/books"
upstream = "book-service"

[upstreams.book-service]
next_upstream = ["error", "timeout", "http_500", "http_502", "http_503"]
next_upstream_tries = 2
keepalive = 32
health_check = { interval = "2s", timeout = "1s" }
servers = [
  { address = "127.0.0.1:${replica_ports[0]}", max_fails = 3, fail_timeout = "30s" },
  { address = "127.0.0.1:${replica_ports[1]}", max_fails = 3, fail_timeout = "30s" },
  { address = "127.0.0.1:${replica_ports[2]}", max_fails = 3, fail_timeout = "30s" },
]
EOF
LECTERN_BIND="127.0.0.1:$gateway_port" \
  LECTERN_GATEWAY_CONFIG="$dir/gateway.toml" \
  LECTERN_TOKEN_SECRET="$secret" \
  "$lectern" serve gateway >"$dir/gateway.log" 2>&1 &
pids+=("$!")
until_ready "http://127.0.0.1:$gateway_port/api/books?limit=1" "Lectern's gateway"

mkdir -p "$dir/nginx"
sed -e "s/\${LISTEN}/127.0.0.1:$nginx_port/" \
    -e "s/\${BOOK_SERVICE_1}/127.0.0.1:${replica_ports[0]}/" \
    -e "s/\${BOOK_SERVICE_2}/127.0.0.1:${replica_ports[1]}/" \
    -e "s/\${BOOK_SERVICE_3}/127.0.0.1:${replica_ports[2]}/" \
    -e "s/\${BOOK_SERVICE_BACKUP}/127.0.0.1:$dead_port/" \
    -e "s/\${USER_SERVICE}/127.0.0.1:$dead_port/" \
    -e "s/\${BORROWING_SERVICE}/127.0.0.1:$dead_port/" \
    -e "s|^http {|http {\n    client_body_temp_path $dir/nginx/body;\n    proxy_temp_path $dir/nginx/proxy;|" \
    deploy/nginx/nginx.conf.template >"$dir/nginx/nginx.conf"
"$nginx_bin" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" \
  -g "daemon off; pid $dir/nginx/nginx.pid;" >"$dir/nginx.log" 2>&1 &
pids+=("$!")
until_ready "http://127.0.0.1:$nginx_port/api/books?limit=1" "nginx"

# One run through the proxy on `port`: load, kill -9 replica 2 a third of
# the way in, report; then replica 2 comes back for the next run.
run() {
  local name="$1" port="$2"
  local run_id
  run_id="fo$(date +%s%N | tail -c 9)${name:0:1}"
  "$load" "http://127.0.0.1:$port" "$secret" "$seconds" "$connections" \
    "$run_id" >"$dir/load-$name.txt" 2>&1 &
  local load_pid=$!
  sleep $((seconds / 3))
  kill -9 "${replica_pids[1]}"
  wait "${replica_pids[1]}" 2>/dev/null || true
  replica_pids[1]=0
  wait "$load_pid" || true
  printf '%-16s %s\n' "$name:" "$(cat "$dir/load-$name.txt")"
  if [ "$name" = lectern ]; then
    printf '%-16s %s\n' "" "gateway events: $(grep -o \
      'upstream-[a-z-]*' "$dir/gateway.log" | sort | uniq -c | xargs)"
  fi
  start_replica 1
}

echo "Failover: 3 replicas (shared SQLite), $connections connections," \
  "${seconds}s each, kill -9 of one replica at $((seconds / 3))s"
run lectern "$gateway_port"
run nginx "$nginx_port"
