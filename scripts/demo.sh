#!/usr/bin/env bash
# `make demo`: start the mesh in the background, generate one song with the CLI,
# print where the file is, stop the mesh.
set -euo pipefail
bin=${1:-target/debug}
mkdir -p data .cadenza
log=.cadenza/demo.log
export CADENZA_DEV_MODE=true
export CADENZA_LOG_FORMAT=plain
"$bin/cadenza-dev" >"$log" 2>&1 &
mesh=$!
trap 'kill -TERM $mesh 2>/dev/null; wait $mesh 2>/dev/null || true' EXIT

echo "starting the mesh (log: $log)..."
for _ in $(seq 1 60); do
  if "$bin/cadenza" dev-token >/dev/null 2>&1; then break; fi
  if ! kill -0 $mesh 2>/dev/null; then echo "the mesh failed to start:"; tail -20 "$log"; exit 1; fi
  sleep 0.5
done
"$bin/cadenza" generate "warm ambient pad with soft piano, slow" --duration 30 --seed 7 --out data/demo.wav
"$bin/cadenza" generate "upbeat folk song about a long road home" --duration 20 --vocals --seed 11 --out data/demo-vocals.wav
echo
echo "Your songs: $(pwd)/data/demo.wav and $(pwd)/data/demo-vocals.wav"
echo "Run the mesh yourself with 'make run'; the gateway listens on ${CADENZA_GATEWAY_ADDR:-127.0.0.1:8080}."
