#!/usr/bin/env bash
# Load through the gateway on loopback, beside nginx as the reference reverse proxy.
#
#   scripts/load.sh [SECONDS_PER_RUN] [ROUNDS]     (defaults: 10 s, 3 rounds)
#   REDIS_TIMEOUT_MS=250 scripts/load.sh           (SECURITY_REDIS_TIMEOUT_MS of the Redis
#                                                   gateway; default 50, the product default)
#
# Starts, all on 127.0.0.1: an nginx "upstream" answering 200 "ok" (the cheapest possible
# upstream, so the proxies' own cost shows), nginx as a reverse proxy in front of it, and
# mcp-shield `serve` in front of it twice: state in memory, and state in Redis (its own
# redis-server). Rate limiting is on in both (limits far above the load, so every request is
# decided and none refused) with 100,000 CIDRs on the deny list. wrk drives each target with
# 64 connections, the targets interleaved round by round so machine noise hits them alike;
# the table gives the median over rounds. Every process is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
CONNECTIONS=64

for tool in wrk nginx redis-server; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y wrk nginx-light redis-server" >&2; exit 1; }
done
cargo build --release -q -p mcp-shield-gateway
BIN=target/release/mcp-shield

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP_LOGS:-}" ] && cp "$WORK"/*.log /tmp/ 2>/dev/null; rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UPSTREAM=$(free_port); NGINX_PROXY=$(free_port); MEMORY=$(free_port); REDIS_GW=$(free_port); REDIS=$(free_port)

mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:$UPSTREAM; keepalive 64; }
  server { listen 127.0.0.1:$UPSTREAM; location / { return 200 "ok\n"; } }
  server {
    listen 127.0.0.1:$NGINX_PROXY;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
CONF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" & PIDS+=($!)
redis-server --port "$REDIS" --bind 127.0.0.1 --save "" --appendonly no >/dev/null & PIDS+=($!)

# 100,000 deny-list CIDRs (none covers 127.0.0.0/8), as the criterion bench uses.
python3 - "$WORK/blacklist.toml" <<'PY'
import random, sys
random.seed(42)
nets = set()
while len(nets) < 100_000:
    a = random.randrange(1, 224)
    if a == 127:
        continue
    length = random.choice([8, 16, 20, 24, 24, 24, 28, 32, 32, 32])
    addr = (a << 24) | random.getrandbits(24)
    mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
    n = addr & mask
    nets.add(f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}/{length}")
with open(sys.argv[1], "w") as f:
    f.write("blacklist = [\n" + ",\n".join(f'"{n}"' for n in sorted(nets)) + "\n]\n")
PY

COMMON=(SECURITY_ENABLE_RATE_LIMITING=true SECURITY_RATE_LIMIT_PER_IP_CAPACITY=1000000000
  SECURITY_RATE_LIMIT_PER_IP_REFILL_RATE=100000000 SECURITY_RATE_LIMIT_GLOBAL_CAPACITY=1000000000
  SECURITY_RATE_LIMIT_GLOBAL_REFILL_RATE=100000000 SECURITY_ADMIN_TOKEN=load-test-token
  SECURITY_IP_HASH_KEY=load-test-key RUST_LOG=warn)
env "${COMMON[@]}" "$BIN" serve --config "$WORK/blacklist.toml" --upstream "http://127.0.0.1:$UPSTREAM" \
  --listen "127.0.0.1:$MEMORY" 2>"$WORK/memory.log" & PIDS+=($!)
env "${COMMON[@]}" REDIS_URL="redis://127.0.0.1:$REDIS/0" SECURITY_REDIS_TIMEOUT_MS="${REDIS_TIMEOUT_MS:-50}" "$BIN" serve --config "$WORK/blacklist.toml" \
  --upstream "http://127.0.0.1:$UPSTREAM" --listen "127.0.0.1:$REDIS_GW" 2>"$WORK/redis.log" & PIDS+=($!)

for port in "$UPSTREAM" "$NGINX_PROXY" "$MEMORY" "$REDIS_GW"; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
done
curl -sf "http://127.0.0.1:$REDIS_GW/ready" | grep -q '"ready"' || { echo "Redis mode is not using Redis" >&2; exit 1; }

declare -A RPS P50 P99
run() { # name port
  local out
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency "http://127.0.0.1:$2/mcp")
  if echo "$out" | grep -q "Non-2xx"; then echo "$1: non-2xx responses" >&2; echo "$out" >&2; exit 1; fi
  RPS[$1]+="$(echo "$out" | awk '/Requests\/sec/ {print $2}') "
  P50[$1]+="$(echo "$out" | awk '$1=="50%" {print $2}') "
  P99[$1]+="$(echo "$out" | awk '$1=="99%" {print $2}') "
}
for round in $(seq "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  run "upstream direct (nginx)" "$UPSTREAM"
  run "nginx reverse proxy" "$NGINX_PROXY"
  run "mcp-shield, memory" "$MEMORY"
  run "mcp-shield, redis" "$REDIS_GW"
done

median() { tr ' ' '\n' | grep -v '^$' | python3 -c '
import sys, re
def us(v):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)?", v)
    n = float(m.group(1)); unit = m.group(2) or ""
    return n * {"us": 1, "ms": 1000, "s": 1e6, "": 1}[unit]
vals = [l.strip() for l in sys.stdin if l.strip()]
key = us if any(c.isalpha() for v in vals for c in v) else float
vals.sort(key=key)
print(vals[len(vals)//2])'; }

echo
echo "wrk -t1 -c$CONNECTIONS -d${SECONDS_PER_RUN}s, $ROUNDS rounds interleaved, medians; $(nproc) cores shared by everything"
echo
echo "| target | requests/s | p50 latency | p99 latency |"
echo "| --- | --- | --- | --- |"
for name in "upstream direct (nginx)" "nginx reverse proxy" "mcp-shield, memory" "mcp-shield, redis"; do
  echo "| $name | $(echo "${RPS[$name]}" | median) | $(echo "${P50[$name]}" | median) | $(echo "${P99[$name]}" | median) |"
done
mem=$(echo "${RPS["mcp-shield, memory"]}" | median); red=$(echo "${RPS["mcp-shield, redis"]}" | median)
ngx=$(echo "${RPS["nginx reverse proxy"]}" | median)
python3 -c "print(f'\nredis / memory throughput: {$red/$mem:.2f}; memory / nginx proxy: {$mem/$ngx:.2f}')"
trips=$(grep -c "Redis connection failed" "$WORK/redis.log" || true)
echo "Redis gateway (SECURITY_REDIS_TIMEOUT_MS=${REDIS_TIMEOUT_MS:-50}): breaker opened $trips times during the runs (each time it served locally until the background reconnect, >= 100 ms)"
