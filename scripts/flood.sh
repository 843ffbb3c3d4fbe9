#!/usr/bin/env bash
# Floods against the gateway on loopback, with legitimate traffic alongside.
#
#   scripts/flood.sh [SECONDS_PER_PHASE]     (default 10)
#
# One mcp-shield `serve` with DDoS protection and rate limiting at their defaults (but for the
# global bucket, whose seed default of 100 requests/s would refuse nearly everything), in front of
# an nginx upstream answering 200, trusting 127.0.0.1 as a proxy so that wrk can speak for many
# client addresses through X-Forwarded-For. Phases, each SECONDS_PER_PHASE long:
#   1. legitimate traffic alone (60,000 client addresses in turn, each well under the limits);
#   2. the same, beside a flood from one address (32 connections);
#   3. the same, beside a flood from random addresses, each new (32 connections);
#   4. RSS before and after 1,000,000 distinct addresses (random, as in phase 3).
# For each: legitimate requests/s and how many were refused, flood requests/s and how many
# were refused, and the gateway's CPU (percent of one core) from /proc.
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE=${1:-10}
for tool in wrk nginx; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y wrk nginx-light" >&2; exit 1; }
done
cargo build --release -q -p mcp-shield-gateway
BIN=target/release/mcp-shield
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UPSTREAM=$(free_port); GATEWAY=$(free_port)

mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$UPSTREAM; location / { return 200 "ok\n"; } } }
CONF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" & PIDS+=($!)
SECURITY_ENABLE_DDOS_PROTECTION=true SECURITY_ENABLE_RATE_LIMITING=true \
SECURITY_TRUSTED_PROXIES=127.0.0.1 SECURITY_ADMIN_TOKEN=flood-test-token RUST_LOG=error \
SECURITY_DDOS_CONCURRENT_CONNECTIONS_LIMIT=1000 \
SECURITY_RATE_LIMIT_GLOBAL_CAPACITY=10000000 SECURITY_RATE_LIMIT_GLOBAL_REFILL_RATE=10000000 \
  "$BIN" serve --upstream "http://127.0.0.1:$UPSTREAM" --listen "127.0.0.1:$GATEWAY" 2>"$WORK/gateway.log" &
GW_PID=$!; PIDS+=($GW_PID)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GATEWAY/health" >/dev/null && break; sleep 0.1; done

cat > "$WORK/legit.lua" <<'LUA'
-- 60,000 client addresses in turn: at wrk's pace each sends about one request a second,
-- well under the per-address limits.
local n = 0
request = function()
  n = (n + 1) % 60000
  local ip = string.format("10.20.%d.%d", math.floor(n / 250), n % 250 + 1)
  return wrk.format("GET", "/mcp", {["X-Forwarded-For"] = ip})
end
LUA
cat > "$WORK/one.lua" <<'LUA'
request = function() return wrk.format("GET", "/mcp", {["X-Forwarded-For"] = "203.0.113.66"}) end
LUA
cat > "$WORK/random.lua" <<'LUA'
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  local ip = string.format("%d.%d.%d.%d", math.random(1, 223), math.random(0, 255), math.random(0, 255), math.random(1, 254))
  return wrk.format("GET", "/mcp", {["X-Forwarded-For"] = ip})
end
LUA

cpu_ticks() { awk '{print $14 + $15}' "/proc/$GW_PID/stat"; }
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$GW_PID/status"; }
HZ=$(getconf CLK_TCK)
summary() { # wrk output -> "requests/s refused"
  local rps refused
  rps=$(echo "$1" | awk '/Requests\/sec/ {print $2}')
  refused=$(echo "$1" | awk '/Non-2xx/ {print $5}')
  echo "${rps:-0} ${refused:-0}"
}
phase() { # name flood-script-or-empty
  local before after legit flood="" cpu
  before=$(cpu_ticks)
  if [ -n "$2" ]; then
    wrk -t1 -c32 -d"${PHASE}s" -s "$WORK/$2" "http://127.0.0.1:$GATEWAY/" > "$WORK/flood.out" &
    local flood_pid=$!
  fi
  legit=$(wrk -t1 -c8 -d"${PHASE}s" -s "$WORK/legit.lua" "http://127.0.0.1:$GATEWAY/")
  if [ -n "$2" ]; then wait "$flood_pid"; flood=$(cat "$WORK/flood.out"); fi
  after=$(cpu_ticks)
  cpu=$(python3 -c "print(f'{($after - $before) / $HZ / $PHASE * 100:.0f}')")
  read -r lrps lref <<<"$(summary "$legit")"
  if [ -n "$2" ]; then read -r frps fref <<<"$(summary "$flood")"; else frps="-"; fref="-"; fi
  echo "| $1 | $lrps | $lref | $frps | $fref | $cpu % |"
}

echo "wrk: legitimate -t1 -c8, flood -t1 -c32, ${PHASE} s per phase; $(nproc) cores shared by wrk, nginx and the gateway"
echo
echo "| phase | legitimate req/s | legitimate refused | flood req/s | flood refused | gateway CPU |"
echo "| --- | --- | --- | --- | --- | --- |"
phase "legitimate only" ""
phase "flood from one address" "one.lua"
sleep 2
phase "flood from random addresses" "random.lua"
echo
before=$(rss_mib)
total=0
start=$(date +%s)
while [ "$total" -lt 1000000 ] && [ $(( $(date +%s) - start )) -lt 300 ]; do
  out=$(wrk -t1 -c32 -d10s -s "$WORK/random.lua" "http://127.0.0.1:$GATEWAY/")
  total=$(( total + $(echo "$out" | awk '/requests in/ {print $1}') ))
done
after=$(rss_mib)
status=$(curl -s "http://127.0.0.1:$GATEWAY/api/security/status" -H 'Authorization: Bearer flood-test-token')
tracked=$(echo "$status" | python3 -c 'import json,sys; s=json.load(sys.stdin)["components"]; print(s["ddos_protection"]["details"]["tracked_ips"], s["rate_limiting"]["details"]["tracked_keys"])')
echo "RSS before: ${before} MiB; after ${total} requests from random addresses: ${after} MiB (DDoS table, rate-limit table: ${tracked})"
