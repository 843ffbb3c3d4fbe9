#!/usr/bin/env bash
# The gateway beside nginx as reverse proxies, side by side on loopback, with CPU per request.
#
#   scripts/load.sh [SECONDS_PER_RUN] [ROUNDS]     (defaults: 10 s, 3 rounds)
#   REDIS=1 scripts/load.sh                        (adds the gateway with every guard on and
#                                                   its state in Redis, own redis-server)
#   COMPARE_BIN=/tmp/old/mcp-shield COMPARE_NAME=before scripts/load.sh
#                                                  (adds that binary's gateways, guards off and
#                                                   all four on, side by side in the same run)
#   CLUSTER=1 scripts/load.sh                      (adds the gateway with every guard on and its
#                                                   state in a Redis Cluster of three masters
#                                                   started here; with REDIS=1, beside one server)
#   TLS=1 scripts/load.sh                          (adds HTTPS: nginx with TLS and the gateway with
#                                                   --tls-cert, guards off and all four on, on the
#                                                   same ECDSA P-256 certificate made by openssl)
#   ENGINE=1 scripts/load.sh                       (adds the gateway's proxy engine alone: hyper,
#                                                   axum and the forwarding, no security layer)
#   PINGORA=1 scripts/load.sh                      (adds Cloudflare's pingora as a bare proxy,
#                                                   built from scripts/engines/pingora-proxy)
#   LIST=1 scripts/load.sh                         (adds a third workload, list: POST tools/list
#                                                   answered with 20 tool definitions (~9 KB), which
#                                                   the gateway reads, checks and pins; and the
#                                                   gateway with all four on but responses not read,
#                                                   SECURITY_MCP_TOOLS_INSPECT=false, to isolate
#                                                   what reading costs)
#   RESULT=1 scripts/load.sh                       (adds a workload, result: POST tools/call
#                                                   answered with a 1 KB result (a tool's JSON
#                                                   output as text), which the gateway reads for
#                                                   secrets, personal data and injections; and the
#                                                   gateway with all four on but results not read,
#                                                   SECURITY_MCP_RESULTS_INSPECT=false)
#   PROFILE=call scripts/load.sh 10 1              (then profiles each gateway under that
#                                                   workload with perf: linux-perf; top symbols)
#
# Started, all on 127.0.0.1: an nginx upstream in its own process (one worker, answers 200 with
# a small JSON-RPC result), nginx as a reverse proxy in front of it (worker_processes auto,
# keepalive to the upstream), and `mcp-shield serve` in front of it with every guard off, and
# with all four on (DDoS protection, IP management with reputation, threat detection with
# behaviour, rate limiting; limits far above the load, so every request is decided and none
# refused). Every proxy trusts 127.0.0.1 as a proxy in front of it, and wrk speaks for 10,000
# client addresses through X-Forwarded-For. Two workloads, each request with its own arguments:
#   get:  GET /mcp?q=<a query of its own>
#   call: POST /mcp, a ~1 KB MCP tools/call whose query and session id differ per request
# wrk: one thread, 64 connections. Targets are interleaved round by round, so machine noise hits
# them alike; the table gives medians over rounds. CPU per request is read from /proc/PID/stat
# of the proxy's processes alone (nginx: master and workers), divided by the requests wrk
# completed. Every process is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
CONNECTIONS=64

for tool in wrk nginx python3 curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y wrk nginx-light" >&2; exit 1; }
done
[ -z "${REDIS:-}" ] || command -v redis-server >/dev/null || { echo "missing redis-server" >&2; exit 1; }
[ -z "${CLUSTER:-}" ] || command -v redis-cli >/dev/null || { echo "missing redis-cli (redis-tools)" >&2; exit 1; }
[ -z "${TLS:-}" ] || command -v openssl >/dev/null || { echo "missing openssl" >&2; exit 1; }
cargo build --release -q -p mcp-shield-gateway --bin mcp-shield
BIN=target/release/mcp-shield
if [ -n "${PINGORA:-}" ]; then
  # Its own target directory: not part of the workspace, and a clean build takes minutes.
  PINGORA_TARGET=${PINGORA_TARGET:-$PWD/target/engines}
  CARGO_TARGET_DIR="$PINGORA_TARGET" cargo build --release -q \
    --manifest-path scripts/engines/pingora-proxy/Cargo.toml
  PINGORA_BIN="$PINGORA_TARGET/release/pingora-proxy-bench"
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP_LOGS:-}" ] && cp "$WORK"/*.log /tmp/ 2>/dev/null; rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UPSTREAM=$(free_port); NGINX_PROXY=$(free_port); OFF=$(free_port); ALL=$(free_port)
NGINX_TLS=$(free_port)
REDIS_GW=$(free_port); REDIS_PORT=$(free_port)

mkdir -p "$WORK/upstream" "$WORK/proxy"
# 20 tool definitions as a server lists them, served as a file (too long for nginx's `return`).
python3 - >"$WORK/upstream/list.json" <<'PY'
import json
verbs = ["list", "get", "create", "update", "delete"]
things = ["issues", "pull_requests", "releases", "workflow_runs"]
tools = []
for i, (verb, thing) in enumerate((v, t) for t in things for v in verbs):
    tools.append({
        "name": f"{verb}_{thing}",
        "title": f"{verb.title()} {thing.replace('_', ' ')}",
        "description": (f"{verb.title()} {thing.replace('_', ' ')} of a GitHub repository. Results are "
                        "paginated: pass the cursor from the previous page to get the next one. Requires "
                        "a token with the repo scope; organisation repositories may need SSO authorisation. "
                        "Returns the fields the API returns, with dates in ISO 8601 and users by login."),
        "inputSchema": {"type": "object", "properties": {
            "owner": {"type": "string", "description": "Repository owner (user or organisation)"},
            "repo": {"type": "string", "description": "Repository name"},
            "state": {"type": "string", "enum": ["open", "closed", "all"], "description": "Filter by state"},
            "per_page": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Results per page"},
            "cursor": {"type": "string", "description": "Pagination cursor from a previous call"}},
            "required": ["owner", "repo"]},
        "annotations": {"readOnlyHint": verb in ("list", "get"), "destructiveHint": verb == "delete"},
    })
print(json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}, separators=(",", ":")))
PY
# nginx's workers (nobody, when started as root) read it.
# A 1 KB tools/call result: a tool's JSON output (issues of a repository) as text, nothing in it
# to find (the shape of crates/shield/benches/results.rs's clean_1kb).
python3 - >"$WORK/upstream/result.json" <<'PY'
import json
issues = [{"number": 4120 + i, "title": f"Build fails on ARM64 runners after the toolchain update #{i}",
           "state": "open" if i % 2 == 0 else "closed", "labels": ["bug", "ci"],
           "updated_at": f"2026-11-{10 + i:02d}T10:15:00Z", "comments": i * 3} for i in range(6)]
text = json.dumps({"total_count": 6, "items": issues}, separators=(",", ":"))
print(json.dumps({"jsonrpc": "2.0", "id": 42, "result": {"content": [{"type": "text", "text": text}], "isError": False}},
                 separators=(",", ":")), end="")
PY
chmod a+rx "$WORK" "$WORK/upstream"; chmod a+r "$WORK/upstream/list.json" "$WORK/upstream/result.json"
if [ -n "${TLS:-}" ]; then
  # One certificate for nginx and the gateway alike: ECDSA P-256, for 127.0.0.1.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
fi
cat > "$WORK/upstream/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/upstream/nginx.pid;
error_log $WORK/upstream/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$UPSTREAM;
    # A POST to a file is 405 in nginx; error_page turns it into a GET of the file, 200.
    location = /list/mcp {
      alias $WORK/upstream/list.json;
      default_type application/json;
      error_page 405 =200 /list.json;
    }
    location = /list.json {
      root $WORK/upstream;
      default_type application/json;
    }
    location = /result/mcp {
      alias $WORK/upstream/result.json;
      default_type application/json;
      error_page 405 =200 /result.json;
    }
    location = /result.json {
      root $WORK/upstream;
      default_type application/json;
    }
    location / {
      default_type application/json;
      return 200 '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}';
    }
  }
}
CONF
cat > "$WORK/proxy/nginx.conf" <<CONF
worker_processes auto;
daemon off;
pid $WORK/proxy/nginx.pid;
error_log $WORK/proxy/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:$UPSTREAM; keepalive 64; }
  set_real_ip_from 127.0.0.1;
  real_ip_header X-Forwarded-For;
  server {
    listen 127.0.0.1:$NGINX_PROXY;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
$(if [ -n "${TLS:-}" ]; then cat <<TLSCONF
  server {
    listen 127.0.0.1:$NGINX_TLS ssl;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
TLSCONF
fi)
}
CONF
nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" & PIDS+=($!)
nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" & NGINX_PROXY_PID=$!; PIDS+=($NGINX_PROXY_PID)

# The MCP session limit per client holds with every guard off too (it is the MCP protocol
# check's): 10,000 clients sending 4,096 session ids pass it in a long run, so it is off.
BASE=(SECURITY_TRUSTED_PROXIES=127.0.0.1 SECURITY_ADMIN_TOKEN=load-test-token
  SECURITY_IP_HASH_KEY=load-test-key RUST_LOG=warn SECURITY_MCP_MAX_SESSIONS_PER_CLIENT=0
  SECURITY_MCP_PATHS=/mcp,/list/mcp,/result/mcp)
ALL_ON=(SECURITY_ENABLE_RATE_LIMITING=true SECURITY_ENABLE_DDOS_PROTECTION=true
  SECURITY_ENABLE_IP_MANAGEMENT=true SECURITY_ENABLE_THREAT_DETECTION=true
  SECURITY_RATE_LIMIT_PER_IP_CAPACITY=1000000000 SECURITY_RATE_LIMIT_PER_IP_REFILL_RATE=100000000
  SECURITY_RATE_LIMIT_GLOBAL_CAPACITY=1000000000 SECURITY_RATE_LIMIT_GLOBAL_REFILL_RATE=100000000
  SECURITY_DDOS_REQUESTS_PER_SECOND_THRESHOLD=1000000000 SECURITY_DDOS_REQUESTS_PER_MINUTE_THRESHOLD=1000000000
  SECURITY_DDOS_EMERGENCY_RPS_THRESHOLD=1000000000 SECURITY_DDOS_CONCURRENT_CONNECTIONS_LIMIT=100000)
env "${BASE[@]}" "$BIN" serve --upstream "http://127.0.0.1:$UPSTREAM" --listen "127.0.0.1:$OFF" \
  2>"$WORK/off.log" & OFF_PID=$!; PIDS+=($OFF_PID)
env "${BASE[@]}" "${ALL_ON[@]}" "$BIN" serve --upstream "http://127.0.0.1:$UPSTREAM" \
  --listen "127.0.0.1:$ALL" 2>"$WORK/all.log" & ALL_PID=$!; PIDS+=($ALL_PID)
TARGETS=("nginx proxy" "mcp-shield, guards off" "mcp-shield, all four guards")
declare -A SCHEME=()
declare -A PORT=(["nginx proxy"]=$NGINX_PROXY ["mcp-shield, guards off"]=$OFF ["mcp-shield, all four guards"]=$ALL)
declare -A PROC=(["nginx proxy"]=$NGINX_PROXY_PID ["mcp-shield, guards off"]=$OFF_PID ["mcp-shield, all four guards"]=$ALL_PID)
if [ -n "${REDIS:-}" ]; then
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null & PIDS+=($!)
  env "${BASE[@]}" "${ALL_ON[@]}" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" "$BIN" serve \
    --upstream "http://127.0.0.1:$UPSTREAM" --listen "127.0.0.1:$REDIS_GW" 2>"$WORK/redis.log" & REDIS_PID=$!
  PIDS+=($REDIS_PID)
  TARGETS+=("mcp-shield, all four, Redis")
  PORT["mcp-shield, all four, Redis"]=$REDIS_GW
  PROC["mcp-shield, all four, Redis"]=$REDIS_PID
fi
if [ -n "${CLUSTER:-}" ]; then
  SEEDS=()
  for _ in 1 2 3; do
    # The cluster bus takes port + 10000.
    while :; do p=$(free_port); [ "$p" -lt 55000 ] && break; done
    mkdir -p "$WORK/cluster-$p"
    (cd "$WORK/cluster-$p" && exec redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file nodes.conf --save "" --appendonly no >/dev/null) & PIDS+=($!)
    SEEDS+=("127.0.0.1:$p")
  done
  for seed in "${SEEDS[@]}"; do
    for _ in $(seq 100); do redis-cli -p "${seed#*:}" ping >/dev/null 2>&1 && break; sleep 0.05; done
  done
  redis-cli --cluster create "${SEEDS[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
  for _ in $(seq 100); do redis-cli -p "${SEEDS[0]#*:}" cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
  CLUSTER_GW=$(free_port)
  NODES=$(printf 'redis://%s,' "${SEEDS[@]}"); NODES=${NODES%,}
  env "${BASE[@]}" "${ALL_ON[@]}" SECURITY_REDIS_CLUSTER_NODES="$NODES" "$BIN" serve \
    --upstream "http://127.0.0.1:$UPSTREAM" --listen "127.0.0.1:$CLUSTER_GW" 2>"$WORK/cluster.log" & CLUSTER_PID=$!
  PIDS+=($CLUSTER_PID)
  TARGETS+=("mcp-shield, all four, Redis Cluster")
  PORT["mcp-shield, all four, Redis Cluster"]=$CLUSTER_GW
  PROC["mcp-shield, all four, Redis Cluster"]=$CLUSTER_PID
fi
if [ -n "${TLS:-}" ]; then
  TLS_OFF=$(free_port); TLS_ALL=$(free_port)
  TLS_ARGS=(--tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
  env "${BASE[@]}" "$BIN" serve --upstream "http://127.0.0.1:$UPSTREAM" --listen "127.0.0.1:$TLS_OFF" \
    "${TLS_ARGS[@]}" 2>"$WORK/tls-off.log" & TLS_OFF_PID=$!; PIDS+=($TLS_OFF_PID)
  env "${BASE[@]}" "${ALL_ON[@]}" "$BIN" serve --upstream "http://127.0.0.1:$UPSTREAM" \
    --listen "127.0.0.1:$TLS_ALL" "${TLS_ARGS[@]}" 2>"$WORK/tls-all.log" & TLS_ALL_PID=$!; PIDS+=($TLS_ALL_PID)
  TARGETS+=("nginx proxy, TLS" "mcp-shield, guards off, TLS" "mcp-shield, all four guards, TLS")
  PORT["nginx proxy, TLS"]=$NGINX_TLS; PROC["nginx proxy, TLS"]=$NGINX_PROXY_PID
  PORT["mcp-shield, guards off, TLS"]=$TLS_OFF; PROC["mcp-shield, guards off, TLS"]=$TLS_OFF_PID
  PORT["mcp-shield, all four guards, TLS"]=$TLS_ALL; PROC["mcp-shield, all four guards, TLS"]=$TLS_ALL_PID
  for t in "nginx proxy, TLS" "mcp-shield, guards off, TLS" "mcp-shield, all four guards, TLS"; do
    SCHEME[$t]=https
  done
fi
if [ -n "${ENGINE:-}" ]; then
  ENGINE_PORT=$(free_port)
  env "${BASE[@]}" "$BIN" serve --bare-proxy-for-benchmarks --upstream "http://127.0.0.1:$UPSTREAM" \
    --listen "127.0.0.1:$ENGINE_PORT" 2>"$WORK/engine.log" & ENGINE_PID=$!; PIDS+=($ENGINE_PID)
  TARGETS+=("mcp-shield engine alone")
  PORT["mcp-shield engine alone"]=$ENGINE_PORT; PROC["mcp-shield engine alone"]=$ENGINE_PID
fi
if [ -n "${PINGORA:-}" ]; then
  PINGORA_PORT=$(free_port)
  "$PINGORA_BIN" "127.0.0.1:$PINGORA_PORT" "127.0.0.1:$UPSTREAM" "$(nproc)" 2>"$WORK/pingora.log" &
  PINGORA_PID=$!; PIDS+=($PINGORA_PID)
  TARGETS+=("pingora, bare proxy")
  PORT["pingora, bare proxy"]=$PINGORA_PORT; PROC["pingora, bare proxy"]=$PINGORA_PID
fi
if [ -n "${LIST:-}" ]; then
  UNREAD=$(free_port)
  env "${BASE[@]}" "${ALL_ON[@]}" SECURITY_MCP_TOOLS_INSPECT=false "$BIN" serve \
    --upstream "http://127.0.0.1:$UPSTREAM" --listen "127.0.0.1:$UNREAD" 2>"$WORK/unread.log" & UNREAD_PID=$!
  PIDS+=($UNREAD_PID)
  TARGETS+=("mcp-shield, all four, responses not read")
  PORT["mcp-shield, all four, responses not read"]=$UNREAD
  PROC["mcp-shield, all four, responses not read"]=$UNREAD_PID
fi
if [ -n "${RESULT:-}" ]; then
  RESULTS_UNREAD=$(free_port)
  env "${BASE[@]}" "${ALL_ON[@]}" SECURITY_MCP_RESULTS_INSPECT=false "$BIN" serve \
    --upstream "http://127.0.0.1:$UPSTREAM" --listen "127.0.0.1:$RESULTS_UNREAD" 2>"$WORK/results-unread.log" & RU_PID=$!
  PIDS+=($RU_PID)
  TARGETS+=("mcp-shield, all four, results not read")
  PORT["mcp-shield, all four, results not read"]=$RESULTS_UNREAD
  PROC["mcp-shield, all four, results not read"]=$RU_PID
fi
if [ -n "${COMPARE_BIN:-}" ]; then
  name=${COMPARE_NAME:-compared}
  C_OFF=$(free_port); C_ALL=$(free_port)
  env "${BASE[@]}" "$COMPARE_BIN" serve --upstream "http://127.0.0.1:$UPSTREAM" --listen "127.0.0.1:$C_OFF" \
    2>"$WORK/compare-off.log" & C_OFF_PID=$!; PIDS+=($C_OFF_PID)
  env "${BASE[@]}" "${ALL_ON[@]}" "$COMPARE_BIN" serve --upstream "http://127.0.0.1:$UPSTREAM" \
    --listen "127.0.0.1:$C_ALL" 2>"$WORK/compare-all.log" & C_ALL_PID=$!; PIDS+=($C_ALL_PID)
  TARGETS+=("$name, guards off" "$name, all four guards")
  PORT["$name, guards off"]=$C_OFF; PROC["$name, guards off"]=$C_OFF_PID
  PORT["$name, all four guards"]=$C_ALL; PROC["$name, all four guards"]=$C_ALL_PID
fi
for t in "${TARGETS[@]}"; do
  url="${SCHEME[$t]:-http}://127.0.0.1:${PORT[$t]}"
  for _ in $(seq 100); do curl -ksf "$url/health" -o /dev/null 2>/dev/null && break; curl -ksf "$url/" -o /dev/null 2>/dev/null && break; sleep 0.1; done
done

# Each request its own arguments; 10,000 client addresses.
cat > "$WORK/get.lua" <<'LUA'
local n = 0
local words = {"invoice", "weather", "report", "customer", "pipeline", "release", "budget", "ticket"}
request = function()
  n = n + 1
  local ip = string.format("10.%d.%d.%d", math.floor(n % 10000 / 2500) + 1, math.floor(n % 2500 / 250), n % 250 + 1)
  local q = string.format("%s+%s+%d", words[n % 8 + 1], words[math.floor(n / 8) % 8 + 1], n)
  return wrk.format("GET", "/mcp?q=" .. q, {["X-Forwarded-For"] = ip, ["Accept"] = "application/json, text/event-stream"})
end
LUA
cat > "$WORK/call.lua" <<'LUA'
local n = 0
local filler = string.rep("The quarterly figures for the northern region, with notes on returns. ", 11)
request = function()
  n = n + 1
  local ip = string.format("10.%d.%d.%d", math.floor(n % 10000 / 2500) + 1, math.floor(n % 2500 / 250), n % 250 + 1)
  local body = string.format(
    '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"search_documents","arguments":{"query":"report %d for customer %d","limit":10,"context":"%s"}}}',
    n, n, n % 977, filler)
  return wrk.format("POST", "/mcp", {["X-Forwarded-For"] = ip, ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream", ["Mcp-Session-Id"] = string.format("s-%08x", n % 4096)}, body)
end
LUA

cat > "$WORK/list.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  local ip = string.format("10.%d.%d.%d", math.floor(n % 10000 / 2500) + 1, math.floor(n % 2500 / 250), n % 250 + 1)
  local body = string.format('{"jsonrpc":"2.0","id":%d,"method":"tools/list","params":{}}', n)
  return wrk.format("POST", "/list/mcp", {["X-Forwarded-For"] = ip, ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream"}, body)
end
LUA
cat > "$WORK/result.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  local ip = string.format("10.%d.%d.%d", math.floor(n % 10000 / 2500) + 1, math.floor(n % 2500 / 250), n % 250 + 1)
  local body = string.format('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"list_issues","arguments":{"repo":"acme/app","page":%d}}}', n, n % 50 + 1)
  return wrk.format("POST", "/result/mcp", {["X-Forwarded-For"] = ip, ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream"}, body)
end
LUA
WORKLOADS=(get call)
[ -z "${LIST:-}" ] || WORKLOADS+=(list)
[ -z "${RESULT:-}" ] || WORKLOADS+=(result)

HZ=$(getconf CLK_TCK)
cpu_ticks() { # all processes of a proxy: the pid and its children
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}

declare -A RPS P50 P99 CPU
run() { # workload target
  local out before after requests
  before=$(cpu_ticks "${PROC[$2]}")
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s "$WORK/$1.lua" "${SCHEME[$2]:-http}://127.0.0.1:${PORT[$2]}")
  after=$(cpu_ticks "${PROC[$2]}")
  if echo "$out" | grep -q "Non-2xx"; then echo "$1 / $2: non-2xx responses" >&2; echo "$out" >&2; exit 1; fi
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  RPS["$1|$2"]+="$(echo "$out" | awk '/Requests\/sec/ {print $2}') "
  P50["$1|$2"]+="$(echo "$out" | awk '$1=="50%" {print $2}') "
  P99["$1|$2"]+="$(echo "$out" | awk '$1=="99%" {print $2}') "
  CPU["$1|$2"]+="$(python3 -c "print(($after - $before) / $HZ / $requests * 1e6)") "
}
for round in $(seq "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  for workload in "${WORKLOADS[@]}"; do
    for t in "${TARGETS[@]}"; do run "$workload" "$t"; done
  done
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
echo "wrk -t1 -c$CONNECTIONS -d${SECONDS_PER_RUN}s, 10,000 client addresses, $ROUNDS rounds interleaved, medians; $(nproc) cores shared by everything"
echo
echo "| workload | target | requests/s | vs nginx | CPU µs per request | p50 latency | p99 latency |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for workload in "${WORKLOADS[@]}"; do
  ngx=$(echo "${RPS["$workload|nginx proxy"]}" | median)
  for t in "${TARGETS[@]}"; do
    key="$workload|$t"
    rps=$(echo "${RPS[$key]}" | median)
    cpu=$(echo "${CPU[$key]}" | median)
    printf '| %s | %s | %s | %.2f | %.1f | %s | %s |\n' "$workload" "$t" "$rps" \
      "$(python3 -c "print($rps / $ngx)")" "$cpu" "$(echo "${P50[$key]}" | median)" "$(echo "${P99[$key]}" | median)"
  done
done

if [ -n "${PROFILE:-}" ]; then
  command -v perf >/dev/null || { echo "missing perf: apt-get install -y linux-perf" >&2; exit 1; }
  for t in "${TARGETS[@]}"; do
    case "$t" in "nginx proxy"|"pingora, bare proxy"|"${COMPARE_NAME:-compared}, "*) continue ;; esac
    echo
    echo "perf, $PROFILE workload, $t: self time by symbol (cpu-clock samples, 8 s)"
    wrk -t1 -c"$CONNECTIONS" -d12s -s "$WORK/$PROFILE.lua" "http://127.0.0.1:${PORT[$t]}" >/dev/null &
    wrk_pid=$!
    sleep 2
    if [ -n "${PROFILE_CHILDREN:-}" ]; then
      # Whole call chains (the release build keeps line tables, not frame pointers).
      perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "${PROC[$t]}" -o "$WORK/perf.data" -- sleep 6 2>/dev/null
    else
      perf record -q -e cpu-clock -F 1999 -p "${PROC[$t]}" -o "$WORK/perf.data" -- sleep 8 2>/dev/null
    fi
    wait "$wrk_pid"
    perf report -q -i "$WORK/perf.data" --no-children --sort symbol --percent-limit 0.7 --stdio -g none 2>/dev/null | grep -v '^$' | head -45
    if [ -n "${PROFILE_CHILDREN:-}" ]; then
      echo "with children (inclusive):"
      perf report -q -i "$WORK/perf.data" --children --sort symbol --percent-limit 1.5 --stdio -g none 2>/dev/null \
        | grep -v '^$' | grep -v '\[k\]' | head -60
    fi
  done
fi
