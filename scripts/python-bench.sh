#!/usr/bin/env bash
# A small FastAPI app under uvicorn (one worker each), side by side in one run: bare, with
# slowapi's rate limiting, with mcp-shield's rate limiting only, and with all four of its guards.
# wrk speaks for 10,000 client addresses through X-Forwarded-For (uvicorn believes it from
# 127.0.0.1, so every middleware sees the address); each request has its own query. Targets are
# interleaved round by round; the table gives medians: requests per second and the server
# process's CPU per request (/proc/PID/stat, all its threads).
#
#   scripts/python-bench.sh [SECONDS_PER_RUN] [ROUNDS]      (defaults: 10 s, 3 rounds)
#
# Needs wrk, python3 with venv, a Rust toolchain (the package is built with pip, release).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
CONNECTIONS=${CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "missing wrk: apt-get install -y wrk" >&2; exit 1; }
VENV=${PYTHON_VENV:-${TMPDIR:-/tmp}/mcp-shield-python-bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/python
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q -r bindings/python/tests/requirements.txt
fi
PY="$VENV/bin/python"
if [ -z "${SKIP_BUILD:-}" ]; then
  "$PY" -m pip install -q --force-reinstall --no-deps ./bindings/python
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

cat > "$WORK/get.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  local ip = string.format("10.%d.%d.%d", math.floor(n % 10000 / 2500) + 1, math.floor(n % 2500 / 250), n % 250 + 1)
  return wrk.format("GET", string.format("/items?q=shoes+size+%d", n % 977), {["X-Forwarded-For"] = ip,
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"})
end
LUA

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TARGETS=(bare slowapi shield-rate shield-all)
declare -A PORT PID
for t in "${TARGETS[@]}"; do
  PORT[$t]=$(free_port)
  (cd bindings/python/bench && VARIANT=$t exec "$PY" -m uvicorn app:app --host 127.0.0.1 --port "${PORT[$t]}" \
      --log-level warning --no-access-log) & PID[$t]=$!
  PIDS+=("${PID[$t]}")
done
for t in "${TARGETS[@]}"; do
  for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:${PORT[$t]}/items?q=up" && break
    sleep 0.1
  done
  curl -sf -o /dev/null "http://127.0.0.1:${PORT[$t]}/items?q=up" || { echo "$t did not start" >&2; exit 1; }
done

HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A RPS CPU
for round in $(seq "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  for t in "${TARGETS[@]}"; do
    before=$(ticks "${PID[$t]}")
    out=$(wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" -s "$WORK/get.lua" "http://127.0.0.1:${PORT[$t]}")
    after=$(ticks "${PID[$t]}")
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    [ -z "$non2xx" ] || { echo "$t answered $non2xx requests with a refusal or an error" >&2; exit 1; }
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    RPS[$t]="${RPS[$t]:-} $rps"
    CPU[$t]="${CPU[$t]:-} $(awk -v a="$before" -v b="$after" -v hz="$HZ" -v n="$requests" 'BEGIN {printf "%.1f", (b - a) / hz * 1e6 / n}')"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
echo
echo "wrk -t1 -c$CONNECTIONS -d${SECONDS_PER_RUN}s, 10,000 client addresses, $ROUNDS rounds interleaved, medians; uvicorn, one worker each"
echo
echo "| app | requests/s | CPU µs per request | added to bare |"
echo "| --- | --- | --- | --- |"
bare_cpu=$(echo "${CPU[bare]}" | median)
for t in "${TARGETS[@]}"; do
  cpu=$(echo "${CPU[$t]}" | median)
  echo "| $t | $(echo "${RPS[$t]}" | median) | $cpu | $(awk -v c="$cpu" -v b="$bare_cpu" 'BEGIN {printf "%+.1f", c - b}') |"
done
