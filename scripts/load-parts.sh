#!/usr/bin/env bash
# The parts of the gateway's cost under scripts/load.sh's 1 KB tools/call workload:
#
#   scripts/load-parts.sh guards      one gateway per guard set (off, each guard alone, all
#                                     four), 2 s warm-up then 8 s of wrk -t1 -c64, CPU per
#                                     request from /proc (NAMES="off threat" to pick sets)
#   scripts/load-parts.sh syscalls    system calls per request of the gateway (guards off),
#                                     counted with strace -f -c over 3 s of wrk -t1 -c16
#   scripts/load-parts.sh profile SET where one guard set's time goes: perf (linux-perf)
#                                     cpu-clock samples over 8 s of wrk -t1 -c64, self time
#                                     by symbol, user and kernel
#
# Upstream: one nginx worker answering a small JSON-RPC result. One gateway at a time, so the
# figures of one set are not side by side with nginx: use scripts/load.sh for that.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-guards}
for tool in wrk nginx python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y wrk nginx-light" >&2; exit 1; }
done
[ "$MODE" != profile ] || command -v perf >/dev/null || { echo "missing perf: apt-get install -y linux-perf" >&2; exit 1; }
[ "$MODE" != syscalls ] || command -v strace >/dev/null || { echo "missing strace" >&2; exit 1; }
cargo build --release -q -p mcp-shield-gateway --bin mcp-shield
BIN=target/release/mcp-shield
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UPSTREAM=$(free_port)
mkdir -p "$WORK/up"
cat > "$WORK/up/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/up/nginx.pid; error_log $WORK/up/error.log;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$UPSTREAM; location / { default_type application/json;
  return 200 '{"jsonrpc":"2.0","id":1,"result":{}}'; } } }
CONF
nginx -p "$WORK/up" -c "$WORK/up/nginx.conf" & PIDS+=($!)
# The same ~1 KB tools/call as scripts/load.sh.
sed -n '/^cat > "$WORK\/call.lua"/,/^LUA$/p' scripts/load.sh | sed '1d;$d' > "$WORK/call.lua"

BASE="SECURITY_TRUSTED_PROXIES=127.0.0.1 RUST_LOG=warn SECURITY_MCP_MAX_SESSIONS_PER_CLIENT=0"
RATE="SECURITY_ENABLE_RATE_LIMITING=true SECURITY_RATE_LIMIT_PER_IP_CAPACITY=1000000000 SECURITY_RATE_LIMIT_PER_IP_REFILL_RATE=100000000 SECURITY_RATE_LIMIT_GLOBAL_CAPACITY=1000000000 SECURITY_RATE_LIMIT_GLOBAL_REFILL_RATE=100000000"
DDOS="SECURITY_ENABLE_DDOS_PROTECTION=true SECURITY_DDOS_REQUESTS_PER_SECOND_THRESHOLD=1000000000 SECURITY_DDOS_REQUESTS_PER_MINUTE_THRESHOLD=1000000000 SECURITY_DDOS_EMERGENCY_RPS_THRESHOLD=1000000000 SECURITY_DDOS_CONCURRENT_CONNECTIONS_LIMIT=100000"
IP="SECURITY_ENABLE_IP_MANAGEMENT=true"
THREAT="SECURITY_ENABLE_THREAT_DETECTION=true"
declare -A SETS=([off]="" [ddos]="$DDOS" [rate]="$RATE" [ip]="$IP" [threat]="$THREAT" [all]="$DDOS $RATE $IP $THREAT")

start() { # name -> sets PORT and PID
  PORT=$(free_port)
  # shellcheck disable=SC2086
  env $BASE ${SETS[$1]} "$BIN" serve --upstream "http://127.0.0.1:$UPSTREAM" --listen "127.0.0.1:$PORT" 2>/dev/null &
  PID=$!; PIDS+=($PID)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" -o /dev/null && break; sleep 0.1; done
}

if [ "$MODE" = syscalls ]; then
  start off
  timeout 6 strace -f -c -p "$PID" -o "$WORK/strace.out" &
  STRACE_PID=$!
  sleep 1
  requests=$(wrk -t1 -c16 -d3s -s "$WORK/call.lua" "http://127.0.0.1:$PORT/" | awk '/requests in/ {print $1}')
  wait "$STRACE_PID" || true
  echo "$requests requests; system calls of the gateway (strace -f -c):"
  head -12 "$WORK/strace.out"
  exit 0
fi

if [ "$MODE" = profile ]; then
  start "${2:-all}"
  wrk -t1 -c64 -d2s -s "$WORK/call.lua" "http://127.0.0.1:$PORT/" >/dev/null
  wrk -t1 -c64 -d10s -s "$WORK/call.lua" "http://127.0.0.1:$PORT/" >/dev/null &
  WRK=$!
  sleep 1
  perf record -q -e cpu-clock -F 1999 -p "$PID" -o "$WORK/perf.data" -- sleep 8 2>/dev/null
  wait "$WRK" || true
  perf report -q -i "$WORK/perf.data" --no-children --sort symbol --percent-limit "${PERCENT:-0.4}" --stdio 2>/dev/null \
    | grep -v '^$' | sed -e 's/  *$//' | cut -c1-160
  exit 0
fi

HZ=$(getconf CLK_TCK)
echo "| guards | requests/s | CPU µs per request |"
echo "| --- | --- | --- |"
for name in ${NAMES:-off ddos rate ip threat all}; do
  start "$name"
  wrk -t1 -c64 -d2s -s "$WORK/call.lua" "http://127.0.0.1:$PORT/" >/dev/null
  before=$(awk '{print $14 + $15}' "/proc/$PID/stat")
  out=$(wrk -t1 -c64 -d8s -s "$WORK/call.lua" "http://127.0.0.1:$PORT/")
  after=$(awk '{print $14 + $15}' "/proc/$PID/stat")
  if echo "$out" | grep -q "Non-2xx"; then echo "$name: non-2xx responses" >&2; exit 1; fi
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "| $name | $(echo "$out" | awk '/Requests\/sec/ {print $2}') | $(python3 -c "print(round(($after - $before) / $HZ / $n * 1e6, 1))") |"
  kill "$PID"
done
