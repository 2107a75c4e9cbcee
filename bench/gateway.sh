#!/usr/bin/env bash
# Benchmark: Lectern's gateway and nginx side by side, in one run, in
# front of the same upstream, under the same load.
#
#   bench/gateway.sh [seconds] [connections] [rounds]
#
# - Upstream: nginx (1 worker) answering `GET /api/books` with a static
#   200 "ok", keep-alive, no logs: as cheap as an upstream gets, so the
#   proxies are what is measured.
# - nginx as the proxy: `worker_processes auto`, least_conn, max_fails=3
#   fail_timeout=30s, keepalive 32 to the upstream (HTTP/1.1), the same
#   headers Lectern sets (X-Forwarded-For, X-Request-Id), access log off.
# - Lectern's gateway: release build of the `serve` example (the library's
#   `serve`, as `lectern serve gateway` runs it), `worker_threads` default
#   (one per core), least connections, max_fails=3 fail_timeout=30s,
#   keepalive 32, no active checks (nginx has none).
# - Load: wrk, the same threads and connections for both, `--latency`;
#   a short warm-up, then rounds alternating between the two so that
#   noise from the shared machine falls on both alike.
#
# Besides req/s and latency it reports each proxy's CPU time per request
# (user + system, from /proc/<pid>/stat, nginx's workers included), which
# moves much less than req/s when others share the machine.
#
# Everything listens on 127.0.0.1 ports picked free; every process this
# starts is stopped by its pid on exit. Reports numbers; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
connections="${2:-64}"
rounds="${3:-3}"
threads=2

for tool in nginx wrk python3; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
    { echo "bench/gateway.sh needs $tool" >&2; exit 1; }
done
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"

cargo build --release -q -p lectern-gateway --example serve
gateway_bin=./target/release/examples/serve

dir="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
upstream_port="$(free_port)"
nginx_port="$(free_port)"
lectern_port="$(free_port)"

cat >"$dir/upstream.conf" <<EOF
worker_processes 1;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$upstream_port;
    keepalive_requests 1000000;
    location / { default_type text/plain; return 200 "ok\n"; }
  }
}
EOF

cat >"$dir/nginx.conf" <<EOF
worker_processes auto;
events { worker_connections 4096; }
http {
  access_log off;
  map \$http_x_request_id \$lectern_request_id {
    default \$http_x_request_id;
    ""      \$request_id;
  }
  upstream book_service {
    least_conn;
    server 127.0.0.1:$upstream_port max_fails=3 fail_timeout=30s;
    keepalive 32;
  }
  server {
    listen 127.0.0.1:$nginx_port;
    keepalive_requests 1000000;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Request-Id \$lectern_request_id;
    add_header X-Request-Id \$lectern_request_id always;
    proxy_next_upstream error timeout http_502;
    location /api/books { proxy_pass http://book_service; }
  }
}
EOF

cat >"$dir/gateway.toml" <<EOF
[[routes]]
prefix = "/api/books"
upstream = "book-service"

[upstreams.book-service]
keepalive = 32
next_upstream = ["error", "timeout", "http_502"]
servers = [{ address = "127.0.0.1:$upstream_port", max_fails = 3, fail_timeout = "30s" }]
EOF

start_nginx() {
  local conf="$1" name="$2"
  mkdir -p "$dir/$name"
  "$nginx_bin" -p "$dir/$name" -c "$conf" -e "$dir/$name/error.log" \
    -g "daemon off; pid $dir/$name/nginx.pid;" >/dev/null 2>&1 &
  pids+=("$!")
}
start_nginx "$dir/upstream.conf" upstream
start_nginx "$dir/nginx.conf" nginx
nginx_pid="${pids[-1]}"
"$gateway_bin" "$dir/gateway.toml" "127.0.0.1:$lectern_port" \
  >"$dir/lectern.log" 2>&1 &
pids+=("$!")
lectern_pid="$!"

for port in "$upstream_port" "$nginx_port" "$lectern_port"; do
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/api/books" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$port/api/books" >/dev/null ||
    { echo "nothing answers on port $port" >&2; cat "$dir/lectern.log"; exit 1; }
done

# CPU ticks (1/100 s) used so far by a process and its children.
ticks() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

# One wrk run against the proxy with pid $3: prints
# "rps p50 p99 non2xx cpu_us_per_request" (latencies in ms).
measure() {
  local port="$1" duration="$2" pid="$3" before after
  before="$(ticks "$pid")"
  wrk -t"$threads" -c"$connections" -d"${duration}s" --latency \
    "http://127.0.0.1:$port/api/books" >"$dir/wrk.txt"
  after="$(ticks "$pid")"
  awk -v ticks="$((after - before))" '
      function ms(v) {
        if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
        if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
        if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
        return v
      }
      $1 == "50%" { p50 = ms($2) }
      $1 == "99%" { p99 = ms($2) }
      /^Requests\/sec:/ { rps = $2 }
      / requests in / { n = $1 }
      /Non-2xx or 3xx/ { bad = $NF }
      END { printf "%.0f %.3f %.3f %s %.1f\n", rps, p50, p99,
            (bad == "" ? 0 : bad), (n ? ticks * 10000 / n : 0) }' "$dir/wrk.txt"
}

echo "Gateway benchmark: $(nproc) cores, wrk -t$threads -c$connections" \
  "-d${seconds}s --latency, $rounds rounds each, alternating"
echo "nginx $("$nginx_bin" -v 2>&1 | sed 's/.*\///'), worker_processes auto;" \
  "Lectern gateway release build, worker_threads default"
measure "$nginx_port" 2 "$nginx_pid" >/dev/null
measure "$lectern_port" 2 "$lectern_pid" >/dev/null

printf '%-6s %-8s %9s %8s %8s %8s %12s\n' round proxy "req/s" "p50 ms" \
  "p99 ms" "non-2xx" "CPU us/req"
: >"$dir/results"
for round in $(seq 1 "$rounds"); do
  for proxy in nginx lectern; do
    port="$nginx_port" pid="$nginx_pid"
    [ "$proxy" = lectern ] && port="$lectern_port" pid="$lectern_pid"
    read -r rps p50 p99 bad cpu < <(measure "$port" "$seconds" "$pid")
    printf '%-6s %-8s %9s %8s %8s %8s %12s\n' "$round" "$proxy" "$rps" \
      "$p50" "$p99" "$bad" "$cpu"
    echo "$proxy $rps $p50 $p99 $cpu" >>"$dir/results"
  done
done

echo
echo "Median over $rounds rounds:"
for proxy in nginx lectern; do
  grep "^$proxy " "$dir/results" | awk -v p="$proxy" '
    { rps[NR] = $2; p50[NR] = $3; p99[NR] = $4; cpu[NR] = $5 }
    function median(a, n,   i, j, t) {
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
        if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    END { printf "  %-8s %9.0f req/s  p50 %.3f ms  p99 %.3f ms  %.1f us CPU/req\n",
          p, median(rps, NR), median(p50, NR), median(p99, NR),
          median(cpu, NR) }'
done
