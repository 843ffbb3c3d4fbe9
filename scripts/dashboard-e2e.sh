#!/usr/bin/env bash
# The dashboard in real browsers: Debian's chromium and firefox-esr, headless, driven by
# puppeteer-core from e2e/dashboard (no browser download; Firefox through WebDriver BiDi),
# against `mcp-shield demo` (e2e/dashboard/dashboard.mjs says what is checked). Leaves a
# screenshot at $SCREENSHOT (default /tmp/mcp-shield-dashboard.png).
#
#   scripts/dashboard-e2e.sh [path/to/mcp-shield]     (default: target/debug/mcp-shield)
#   BROWSERS="/usr/bin/chromium" scripts/dashboard-e2e.sh   (one browser)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-${CARGO_TARGET_DIR:-target}/debug/mcp-shield}
[ -x "$bin" ] || { echo "no mcp-shield binary at $bin (cargo build first)"; exit 2; }
browsers=${BROWSERS:-$(command -v chromium || true) $(command -v firefox-esr || true)}
for browser in $browsers; do [ -x "$browser" ] || { echo "no browser at $browser"; exit 2; }; done
command -v chromium >/dev/null || [ -n "${BROWSERS:-}" ] || { echo "missing chromium: apt-get install -y chromium firefox-esr"; exit 2; }
work=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

echo "== npm packages (e2e/dashboard)"
(cd e2e/dashboard && npm ci --no-audit --no-fund --loglevel=error)

for browser in $browsers; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  token="dashboard-e2e-token-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  SECURITY_ADMIN_TOKEN="$token" RUST_LOG=warn "$bin" demo --listen "127.0.0.1:$port" >"$work/demo.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  echo "== the dashboard in $("$browser" --version 2>/dev/null | head -1)"
  node e2e/dashboard/dashboard.mjs "http://127.0.0.1:$port" "$token" "$browser" || { cat "$work/demo.log"; exit 1; }
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
done
