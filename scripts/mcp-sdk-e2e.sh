#!/usr/bin/env bash
# The official MCP TypeScript SDK client (npm @modelcontextprotocol/sdk) against the reference
# server (@modelcontextprotocol/server-everything, Streamable HTTP on loopback), directly and
# through `mcp-shield serve` with all four protections on: initialize, tools, a long-running
# tool whose progress must arrive as it is sent, resources, prompts, the GET stream and session
# DELETE must all come out the same. Then, through the gateway: a per-tool rate limit and a
# threat in the second element of a batch are enforced. Last, the same client against
# `mcp-shield demo`.
#
#   scripts/mcp-sdk-e2e.sh [path/to/mcp-shield]     (default: target/debug/mcp-shield)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=${1:-${CARGO_TARGET_DIR:-target}/debug/mcp-shield}
[ -x "$bin" ] || { echo "no mcp-shield binary at $bin (cargo build first)"; exit 2; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listening on $1"; cat "$work"/*.log; exit 1
}

echo "== npm packages (e2e/mcp-sdk)"
(cd e2e/mcp-sdk && npm ci --no-audit --no-fund --loglevel=error)
node --version

upstream=$(free_port)
gateway=$(free_port)
demo=$(free_port)
PORT=$upstream node e2e/mcp-sdk/node_modules/@modelcontextprotocol/server-everything/dist/index.js streamableHttp >"$work/everything.log" 2>&1 &
pids+=($!)
wait_port "$upstream"
SECURITY_ADMIN_TOKEN=e2e-token-0123456789abcdef "$bin" --config e2e/mcp-sdk/gateway.toml \
  serve --upstream "http://127.0.0.1:$upstream" --listen "127.0.0.1:$gateway" >"$work/gateway.log" 2>&1 &
pids+=($!)
wait_port "$gateway"

echo "== SDK client: directly, then through mcp-shield"
(cd e2e/mcp-sdk && node client.mjs "http://127.0.0.1:$upstream/mcp") >"$work/direct.json"
(cd e2e/mcp-sdk && node client.mjs "http://127.0.0.1:$gateway/mcp") >"$work/gateway.json" || {
  cat "$work/gateway.json" "$work/gateway.log"; exit 1; }
if ! diff -u "$work/direct.json" "$work/gateway.json"; then
  echo "the client saw something else through the gateway"; cat "$work/gateway.log"; exit 1
fi
cat "$work/gateway.json"
python3 - "$work/gateway.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["long_running"]["incremental"], s
assert s["long_running"]["progress_notifications"] >= 2, s
assert s["deleted"] == "yes" and s["session"] == "yes", s
assert s["resource_read"] and s["prompt_messages"] >= 1, s
assert s["get_stream_notifications"], s
PY

echo "== through mcp-shield: per-tool rate limit, threat in a batch's second element"
python3 - "$gateway" <<'PY'
import json, sys, urllib.request, urllib.error
port = sys.argv[1]
url = f"http://127.0.0.1:{port}/mcp"
headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}

def post(body, session=None):
    h = dict(headers)
    if session:
        h["Mcp-Session-Id"] = session
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=h, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()

status, h, _ = post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "e2e-raw", "version": "1"}}})
assert status == 200, status
session = h["Mcp-Session-Id"]
post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
call = lambda i, a: {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                     "params": {"name": "get-sum", "arguments": {"a": a, "b": 1}}}
# The SDK client above called get-sum once from this address: capacity 3 leaves two.
codes = [post(call(i, i), session)[0] for i in range(1, 4)]
assert codes[:2] == [200, 200] and codes[2] == 429, codes
echo = lambda i, m: {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                     "params": {"name": "echo", "arguments": {"message": m}}}
status, _, body = post([echo(10, "hello"), echo(11, "x' UNION SELECT password FROM users--")], session)
assert status == 403, (status, body)
assert json.loads(body)["type"] == "threat_detected", body
print(f"per-tool limit: {codes}; batch with an injection in element 2: {status}")
PY

echo "== MCP conformance suite (server mode, Node 22): directly, then through mcp-shield"
node22=e2e/mcp-sdk/node_modules/.bin/node
suite=e2e/mcp-sdk/node_modules/@modelcontextprotocol/conformance/dist/index.js
"$node22" --version
conformance_gateway=$(free_port)
SECURITY_ADMIN_TOKEN=e2e-token-0123456789abcdef "$bin" --config e2e/mcp-sdk/conformance.toml \
  serve --upstream "http://127.0.0.1:$upstream" --listen "127.0.0.1:$conformance_gateway" >"$work/conformance-gateway.log" 2>&1 &
pids+=($!)
wait_port "$conformance_gateway"
"$node22" "$suite" server --url "http://127.0.0.1:$upstream/mcp" >"$work/conformance-direct.txt" 2>&1 || true
"$node22" "$suite" server --url "http://127.0.0.1:$conformance_gateway/mcp" >"$work/conformance-gateway.txt" 2>&1 || true
python3 - "$work/conformance-direct.txt" "$work/conformance-gateway.txt" "$work/conformance-gateway.log" <<'PY'
import re, sys
def results(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    found = {name: mark == "\u2713"
             for mark, name in re.findall(r"^([\u2713\u2717]) ([\w-]+): \d+ passed", text, re.M)}
    if not found:
        sys.exit(f"no conformance summary in {path}:\n{text[-3000:]}")
    return found
direct, gateway = results(sys.argv[1]), results(sys.argv[2])
lost = sorted(n for n, ok in direct.items() if ok and not gateway.get(n))
print(f"directly: {sum(direct.values())} of {len(direct)} scenarios pass; "
      f"through mcp-shield: {sum(gateway.values())} of {len(gateway)}")
print("dns-rebinding-protection: directly", "passes" if direct.get("dns-rebinding-protection") else "fails",
      "| through mcp-shield", "passes" if gateway.get("dns-rebinding-protection") else "fails")
if lost:
    print(open(sys.argv[2]).read()[-4000:])
    print(open(sys.argv[3]).read()[-4000:])
    sys.exit(f"scenarios that pass directly but not through mcp-shield: {lost}")
if not gateway.get("dns-rebinding-protection"):
    sys.exit("dns-rebinding-protection fails through mcp-shield")
PY

echo "== a server that changes a tool after the first listing (rug pull), through mcp-shield"
rug=$(free_port)
rug_gateway=$(free_port)
PORT=$rug node e2e/mcp-sdk/rug-pull-server.mjs >"$work/rug-pull.log" 2>&1 &
pids+=($!)
wait_port "$rug"
SECURITY_ADMIN_TOKEN=e2e-token-0123456789abcdef "$bin" --config e2e/mcp-sdk/gateway.toml \
  serve --upstream "http://127.0.0.1:$rug" --listen "127.0.0.1:$rug_gateway" >"$work/rug-gateway.log" 2>&1 &
pids+=($!)
wait_port "$rug_gateway"
(cd e2e/mcp-sdk && node rug-pull-client.mjs "http://127.0.0.1:$rug_gateway" e2e-token-0123456789abcdef) \
  >"$work/rug.json" || { cat "$work/rug.json" "$work/rug-gateway.log" "$work/rug-pull.log"; exit 1; }
cat "$work/rug.json"
python3 - "$work/rug.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["first_listing"] == ["add", "weather"], s
assert s["weather_before"] == "sunny in Oslo", s
assert s["after_change"] == ["add"], s
refused = s["weather_call_after_change"]
assert refused["refused"] and refused["code"] == -32001 and "approve" in refused["message"], s
assert s["add_after_change"] == "5", s
assert s["pending"] == [{"name": "weather", "change": "changed", "fields": ["description", "inputSchema"]}], s
assert s["approve_status"] == 200, s
assert s["after_approval"] == ["add", "weather"], s
assert s["weather_after_approval"] == "sunny in Oslo", s
PY
grep -q 'tool_changed tool .weather.' "$work/rug-gateway.log" || { echo "no tool_changed log line"; cat "$work/rug-gateway.log"; exit 1; }

echo "== a server whose tool results leak (a token, a card number, an injected instruction), through mcp-shield"
leaky=$(free_port)
leaky_gateway=$(free_port)
PORT=$leaky node e2e/mcp-sdk/leaky-server.mjs >"$work/leaky.log" 2>&1 &
pids+=($!)
wait_port "$leaky"
"$bin" --config e2e/mcp-sdk/results.toml \
  serve --upstream "http://127.0.0.1:$leaky" --listen "127.0.0.1:$leaky_gateway" >"$work/leaky-gateway.log" 2>&1 &
pids+=($!)
wait_port "$leaky_gateway"
(cd e2e/mcp-sdk && node leaky-client.mjs "http://127.0.0.1:$leaky_gateway") \
  >"$work/leaky.json" || { cat "$work/leaky.json" "$work/leaky-gateway.log" "$work/leaky.log"; exit 1; }
cat "$work/leaky.json"
python3 - "$work/leaky.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
token, card = "ghp_R4nd0mT0k3nV4lu3W1thThirtySixChars12", "4111 1111 1111 1111"
assert s["read_config"] == "service: billing\ngithub_token: [REDACTED:github]\nregion: eu-west-1", s
assert s["read_config_meta"]["mcp-shield/findings"][0]["family"] == "github", s
assert s["lookup_customer"] == "Customer 42: Jane Roe, card [REDACTED:payment_card], plan: team", s
assert s["lookup_customer_structured"] == {"id": 42, "name": "Jane Roe", "card": "[REDACTED:payment_card]"}, s
page = s["fetch_page"]
assert page.startswith("<untrusted-tool-output>") and "<h1>Opening hours</h1>" in page, s
assert any(f["type"] == "prompt_injection" and f["action"] == "wrapped" for f in s["fetch_page_meta"]["mcp-shield/findings"]), s
assert s["progress"] == [1, 2, 3], s
assert s["progress_before_result_ms"] >= 500, s  # the first progress came while the tool ran
assert s["export_report"] == "report ready; upload with token [REDACTED:github]", s
assert token not in json.dumps(s) and card not in json.dumps(s), s
PY
grep -q 'security.results.*prompt_injection' "$work/leaky-gateway.log" || { echo "no prompt_injection log line"; cat "$work/leaky-gateway.log"; exit 1; }

echo "== SDK client against mcp-shield demo"
SECURITY_ADMIN_TOKEN=e2e-token-0123456789abcdef "$bin" demo --listen "127.0.0.1:$demo" >"$work/demo.log" 2>&1 &
pids+=($!)
wait_port "$demo"
(cd e2e/mcp-sdk && node client.mjs "http://127.0.0.1:$demo/mcp" --demo) || { cat "$work/demo.log"; exit 1; }
echo "mcp-sdk e2e: ok"
