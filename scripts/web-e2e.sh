#!/usr/bin/env bash
# The studio's browser test against a real mesh: starts `cadenza-dev` (dev mode)
# on free ports with its own database, queues and data directory, serving the
# built studio, runs web/e2e/studio.mjs in Debian's Chromium, and stops it all.
# Usage: scripts/web-e2e.sh <path to cadenza-dev>. Used by `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1
out=${CADENZA_TEST_OUTPUT:-$PWD/test-output/web}
mkdir -p "$out"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

run_id="web_e2e_$(date +%s)_$$"
db="cadenza_$run_id"
data=$(mktemp -d)
gateway=$(free_port)
files=$(free_port)
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  rm -rf "$data"
}
trap cleanup EXIT

CADENZA_DEV_MODE=true \
CADENZA_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" \
CADENZA_QUEUE_PREFIX="cadenza-$run_id" \
CADENZA_QUEUE_EXPIRES_SECONDS=600 \
CADENZA_DATA_DIR="$data" \
CADENZA_GATEWAY_ADDR="127.0.0.1:$gateway" \
CADENZA_STORAGE_HTTP_ADDR="127.0.0.1:$files" \
CADENZA_GATEWAY_ADMIN_ADDR=127.0.0.1:0 \
CADENZA_PROJECT_ADMIN_ADDR=127.0.0.1:0 \
CADENZA_GENERATION_ADMIN_ADDR=127.0.0.1:0 \
CADENZA_STORAGE_ADMIN_ADDR=127.0.0.1:0 \
CADENZA_WEB_DIR="$PWD/web/dist" \
  "$bin" >"$out/mesh.log" 2>&1 &
pid=$!
for _ in $(seq 1 60); do port_open "$gateway" && break; sleep 1; done
port_open "$gateway" || { echo "the mesh did not start; see $out/mesh.log" >&2; tail -20 "$out/mesh.log" >&2; exit 1; }

if (cd web && CADENZA_WEB_URL="http://127.0.0.1:$gateway" CADENZA_TEST_OUTPUT="$out" node e2e/studio.mjs); then
  # The line CI counts, in the shape of cargo's.
  echo "test result: ok. 1 passed; 0 failed (web studio in Chromium; screenshots in $out)"
else
  echo "test result: FAILED. 0 passed; 1 failed (web studio in Chromium; see $out)"
  exit 1
fi
