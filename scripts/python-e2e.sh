#!/usr/bin/env bash
# The Python package (bindings/python): its wheel built (maturin, abi3, Python 3.9+), installed
# into a fresh virtual environment, and its pytest suite run against real uvicorn servers
# (FastAPI, the official MCP Python SDK's MCPServer, Redis for several workers).
#
#   scripts/python-e2e.sh            (CI runs it; needs python3 with venv, a Rust toolchain)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${PYTHON_VENV:-${TMPDIR:-/tmp}/mcp-shield-python-venv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/python

if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q -r bindings/python/tests/requirements.txt

echo "-- the binding crate: fmt and clippy"
cargo fmt --manifest-path bindings/python/Cargo.toml -- --check
PYO3_PYTHON="$PY" cargo clippy --manifest-path bindings/python/Cargo.toml --all-targets -- -D warnings

echo "-- the wheel (pip wheel bindings/python: maturin from PyPI, release build)"
rm -rf "$ROOT/target/wheels"
"$PY" -m pip wheel -q --no-deps -w "$ROOT/target/wheels" bindings/python
ls -l "$ROOT"/target/wheels/
"$PY" -m pip install -q --force-reinstall "$ROOT"/target/wheels/mcp_shield-*.whl

echo "-- pytest"
cd bindings/python/tests
"$PY" -m pytest -q -p no:cacheprovider .
