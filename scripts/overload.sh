#!/usr/bin/env bash
# Overload: a flood from a fresh address per request beside steady clients, against an upstream
# of limited capacity, through the gateway with and without overload protection, in one run.
#
#   scripts/overload.sh [SECONDS_PER_PHASE] [FLOOD_CONNECTIONS]     (defaults: 20 s, 1000)
#
# On 127.0.0.1: the upstream of `crates/gateway/examples/overload.rs` (works on 32 requests at
# once, 20 ms each; more wait inside it), and `mcp-shield serve` in front of it with every
# guard on at its defaults (DDoS protection, IP management, threat detection with behaviour,
# rate limiting; the global bucket raised, as its seed default of 100/s would refuse nearly
# everything), trusting 127.0.0.1 as a proxy so that load generators can speak for many
# addresses through X-Forwarded-For. Twice: SECURITY_UPSTREAM_ADMISSION=false (the gateway
# without overload protection) and the default. For each, two phases:
#   calm:  40 steady clients (one address each) calling a tool twice a second;
#   flood: the same, beside wrk with FLOOD_CONNECTIONS connections calling the tool from a
#          random new address per request.
# Printed: the steady clients' served share and p50 / p99 latency, the most requests the
# upstream had in flight (and the 99th percentile of 1 ms samples), and the flood's refused
# share. The upstream, the clients and wrk share the machine's cores with the gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE=${1:-20}
FLOOD_CONNECTIONS=${2:-1000}
for tool in wrk python3 curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y wrk python3 curl" >&2; exit 1; }
done
cargo build --release -q -p mcp-shield-gateway --bin mcp-shield --example overload
BIN=target/release/mcp-shield
LAB=target/release/examples/overload
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UPSTREAM=$(free_port)
ulimit -n 65536 2>/dev/null || true

"$LAB" upstream --listen "127.0.0.1:$UPSTREAM" --capacity 32 --service-ms 20 2>"$WORK/upstream.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$UPSTREAM/__stats" >/dev/null && break; sleep 0.1; done

cat > "$WORK/flood.lua" <<'LUA'
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"query":"flood"}}}'
request = function()
  local ip = string.format("%d.%d.%d.%d", math.random(11, 223), math.random(0, 255), math.random(0, 255), math.random(1, 254))
  return wrk.format("POST", "/mcp", {["X-Forwarded-For"] = ip, ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream"}, body)
end
LUA

upstream_stats() { curl -s "http://127.0.0.1:$UPSTREAM/__stats"; }
json() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print($2)" "$1"; }

run_gateway() { # admission(true|false) -> table rows
  local admission=$1 port pid
  port=$(free_port)
  SECURITY_ENABLE_DDOS_PROTECTION=true SECURITY_ENABLE_IP_MANAGEMENT=true \
  SECURITY_ENABLE_THREAT_DETECTION=true SECURITY_ENABLE_RATE_LIMITING=true \
  SECURITY_RATE_LIMIT_GLOBAL_CAPACITY=10000000 SECURITY_RATE_LIMIT_GLOBAL_REFILL_RATE=10000000 \
  SECURITY_TRUSTED_PROXIES=127.0.0.1 SECURITY_ADMIN_TOKEN=overload-token RUST_LOG=warn \
  SECURITY_UPSTREAM_ADMISSION=$admission \
    "$BIN" serve --upstream "http://127.0.0.1:$UPSTREAM" --listen "127.0.0.1:$port" 2>"$WORK/gateway-$admission.log" &
  pid=$!
  PIDS+=($pid)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  local label="without overload protection"
  [ "$admission" = true ] && label="with overload protection"

  # Calm: the steady clients alone.
  upstream_stats >/dev/null
  local calm up
  calm=$("$LAB" clients --target "http://127.0.0.1:$port/mcp" --clients 40 --rate 2 --seconds "$PHASE" --prefix 10.77.0)
  up=$(upstream_stats)
  echo "| $label | calm | $(json "$calm" '"%.1f %% of %d" % (100 * d["served"] / max(d["sent"], 1), d["sent"])') | $(json "$calm" 'd["p50_ms"]') | $(json "$calm" 'd["p99_ms"]') | $(json "$up" 'd["max_in_flight"]') ($(json "$up" 'd["p99_in_flight"]')) | - |"

  # Flood beside them.
  wrk -t1 -c"$FLOOD_CONNECTIONS" -d"$((PHASE + 2))s" --timeout 10s -s "$WORK/flood.lua" "http://127.0.0.1:$port/" > "$WORK/flood.out" 2>&1 &
  local wrk_pid=$!
  sleep 1
  upstream_stats >/dev/null
  local flood
  flood=$("$LAB" clients --target "http://127.0.0.1:$port/mcp" --clients 40 --rate 2 --seconds "$PHASE" --prefix 10.77.0)
  up=$(upstream_stats)
  wait "$wrk_pid" || true
  local total non2xx refused
  total=$(awk '/requests in/ {print $1}' "$WORK/flood.out")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$WORK/flood.out")
  refused=$(python3 -c "print(f'{100*${non2xx:-0}/max(${total:-0},1):.1f} % of ${total:-0}')")
  echo "| $label | flood | $(json "$flood" '"%.1f %% of %d" % (100 * d["served"] / max(d["sent"], 1), d["sent"])') | $(json "$flood" 'd["p50_ms"]') | $(json "$flood" 'd["p99_ms"]') | $(json "$up" 'd["max_in_flight"]') ($(json "$up" 'd["p99_in_flight"]')) | $refused |"
  if [ "$admission" = true ]; then
    sleep 7 # quiet long enough for the line that says shedding stopped
    curl -s "http://127.0.0.1:$port/api/security/status" -H 'Authorization: Bearer overload-token' \
      | python3 -c 'import json,sys; d=json.load(sys.stdin)["components"]["overload_protection"]["details"]; print("overload protection at the end:", json.dumps({k: d[k] for k in ("limit","baseline_latency_ms","admitted_total","queued_total","shed_total")}))' >&2
    grep -E "shedding" "$WORK/gateway-$admission.log" | sed 's/^/  log: /' >&2 || true
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  sleep 2
}

echo "upstream: 32 at once, 20 ms each; 40 steady clients at 2 requests/s; flood: wrk -t1 -c$FLOOD_CONNECTIONS, a random address per request; ${PHASE} s per phase; $(nproc) cores shared"
echo
echo "| gateway | phase | steady served | steady p50 ms | steady p99 ms | upstream in flight, most (p99) | flood refused |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
run_gateway false
run_gateway true
