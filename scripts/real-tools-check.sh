#!/usr/bin/env bash
# False alarms of the poisoning detector on real tools outside the corpus: installs published
# MCP servers from npm (versions pinned in scripts/real-tools/package-lock.json), lists their
# tools with the official SDK client over stdio (placeholder API keys: only the listing is
# needed), and scans every definition, alone and in its server's whole list, with
# `mcp-shield scan`. Prints each flagged definition; exits 1 when any is flagged.
#
#   scripts/real-tools-check.sh [path/to/mcp-shield]     (default: target/release/mcp-shield)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-${CARGO_TARGET_DIR:-target}/release/mcp-shield}
[ -x "$bin" ] || { echo "no mcp-shield binary at $bin (cargo build --release first)"; exit 2; }
(cd scripts/real-tools && npm ci --no-audit --no-fund --loglevel=error && node list.mjs)
"$bin" scan --format jsonl scripts/real-tools/rows.jsonl 2>/dev/null | python3 -c '
import json, sys
rows = [json.loads(l) for l in open("scripts/real-tools/rows.jsonl")]
flagged = 0
for row, line in zip(rows, sys.stdin):
    found = [t for t in json.loads(line)["threats"] if t.get("in") == "response"]
    if found:
        flagged += 1
        print(row["id"], [(t["kind"], t["snippet"][:60]) for t in found])
tools = sum(1 for r in rows if not r["id"].endswith(":*"))
print(f"{flagged} of {len(rows)} rows flagged ({tools} tools, a row each, and a row per server with its whole list)")
sys.exit(1 if flagged else 0)
'
