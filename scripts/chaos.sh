#!/usr/bin/env bash
# The chaos test (issue 7): builds the four services and runs
# libs/mesh/tests/chaos/, which starts its own Postgres and RabbitMQ on free
# ports (never the shared ones on 5432/5672), runs the services as separate
# processes, and with 20 songs in flight kills a generation worker and the
# project service with SIGKILL and restarts RabbitMQ and Postgres, checking every
# song after each fault. Prints a summary table; the services' logs go to
# test-output/chaos/ (and the database, as a SQL dump, when something failed).
#
# Usage: scripts/chaos.sh [faults]   e.g. scripts/chaos.sh worker,postgres
#        (default: worker,project,rabbitmq,postgres; `none` is a baseline round)
# Used by `make chaos`. Needs initdb/pg_ctl (postgresql) and rabbitmq-server
# installed, not running.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
if [ $# -gt 0 ]; then export CADENZA_CHAOS_FAULTS=$1; fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/cadenza-chaos-XXXXXX")
export CADENZA_CHAOS_DIR=$scratch

# The test stops everything it started, even when it fails. Should it be killed
# instead, this stops what is left: only processes whose environment or command
# line names this run's scratch directory (a recorded pid may belong to someone
# else by now).
names_scratch() { # pid file-in-/proc
  [ -r "/proc/$1/$2" ] && tr '\0' '\n' <"/proc/$1/$2" 2>/dev/null | grep -qF "$scratch"
}
cleanup() {
  local pid
  if [ -f "$scratch/pids" ]; then
    while read -r pid; do
      names_scratch "$pid" environ && kill -9 "$pid" 2>/dev/null || true
    done <"$scratch/pids"
  fi
  if [ -f "$scratch/rabbitmq/pid" ]; then
    pid=$(cat "$scratch/rabbitmq/pid")
    names_scratch "$pid" environ && kill -9 "$pid" 2>/dev/null || true
  fi
  if [ -f "$scratch/postgres/data/postmaster.pid" ]; then
    pid=$(head -1 "$scratch/postgres/data/postmaster.pid")
    # SIGQUIT: Postgres's immediate shutdown.
    names_scratch "$pid" cmdline && kill -QUIT "$pid" 2>/dev/null && sleep 1 || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

for tool in rabbitmq-server; do
  command -v "$tool" >/dev/null || [ -x "/usr/lib/rabbitmq/bin/$tool" ] \
    || { echo "error: $tool is not installed (make services installs it)" >&2; exit 1; }
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v pg_config >/dev/null \
  || { echo "error: Postgres (initdb, pg_ctl) is not installed (make services installs it)" >&2; exit 1; }

$CARGO build -p cadenza-gateway -p cadenza-project -p cadenza-generation -p cadenza-storage --bins
$CARGO test -p cadenza-mesh --test chaos -- --ignored --nocapture
