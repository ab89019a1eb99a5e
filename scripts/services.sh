#!/usr/bin/env bash
# Makes sure Postgres and RabbitMQ answer on localhost: starts them when they are
# installed but down, installs them from the OS packages when missing. Used by
# `make services`, `make demo` and CI. Safe to run again and again.
set -euo pipefail

PG_PORT=${PGPORT:-5432}
AMQP_PORT=5672

have() { command -v "$1" >/dev/null 2>&1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif have sudo; then sudo "$@"; else echo "need root for: $*" >&2; return 1; fi; }

wait_for() { # name port seconds
  for _ in $(seq 1 "$3"); do port_open "$2" && return 0; sleep 1; done
  echo "error: $1 did not come up on 127.0.0.1:$2" >&2; return 1
}

# Where a Docker engine runs and nothing is installed, compose provides both.
compose_up() {
  if have docker && docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    echo "starting $1 with docker compose..."
    docker compose up -d --wait "$1"
    return 0
  fi
  return 1
}

apt_install() {
  if have apt-get; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  else
    echo "error: cannot install $* (no apt-get); install it yourself or run 'docker compose up -d postgres rabbitmq'" >&2
    return 1
  fi
}

ensure_postgres() {
  if port_open "$PG_PORT"; then return 0; fi
  if ! have pg_ctlcluster && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    if ! have apt-get && compose_up postgres; then return 0; fi
    echo "installing PostgreSQL from the OS packages..."
    apt_install postgresql
  fi
  echo "starting PostgreSQL..."
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  if [ -z "$version" ]; then echo "error: no PostgreSQL cluster found under /etc/postgresql" >&2; return 1; fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for PostgreSQL "$PG_PORT" 30
  # Local development trusts loopback connections as user postgres.
  if ! psql -h 127.0.0.1 -U postgres -c 'select 1' >/dev/null 2>&1; then
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    echo "allowing trust auth on loopback in $hba"
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  fi
}

ensure_rabbitmq() {
  if port_open "$AMQP_PORT"; then return 0; fi
  if ! have rabbitmq-server; then
    if ! have apt-get && compose_up rabbitmq; then return 0; fi
    echo "installing RabbitMQ from the OS packages..."
    apt_install rabbitmq-server
  fi
  echo "starting RabbitMQ..."
  as_root rabbitmq-server -detached || true
  wait_for RabbitMQ "$AMQP_PORT" 90
}

# The storage tests run an S3-compatible server from PyPI (moto's server mode).
ensure_s3_server() {
  if python3 -c 'import moto.server, flask_cors' >/dev/null 2>&1; then return 0; fi
  echo "installing moto (an S3-compatible test server) from PyPI..."
  if ! python3 -m pip --version >/dev/null 2>&1; then apt_install python3-pip; fi
  # A distribution's own Python refuses system-wide installs (PEP 668): fall
  # back to the user's site-packages, which the same python3 reads.
  python3 -m pip install --quiet 'moto[server]==5.2.5' \
    || python3 -m pip install --quiet --user --break-system-packages 'moto[server]==5.2.5'
}

# The studio builds with Node.js and npm, and its test drives Debian's Chromium
# (browsers cannot be downloaded by test tools here).
ensure_web_tools() {
  if ! have node || ! have npm; then
    echo "installing Node.js and npm from the OS packages..."
    apt_install nodejs npm
  fi
  if [ -z "${CHROMIUM:-}" ] && ! [ -x /usr/bin/chromium ]; then
    echo "installing Chromium from the OS packages (for the studio's browser test)..."
    apt_install chromium
  fi
}

ensure_postgres
ensure_rabbitmq
ensure_s3_server
ensure_web_tools
# The default database of `make run`; tests make their own. (With compose, the
# container creates it, and psql may not be installed.)
have psql && psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'cadenza'" | grep -q 1 \
  || { have psql && psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE cadenza' >/dev/null; } || true
echo "Postgres 127.0.0.1:$PG_PORT and RabbitMQ 127.0.0.1:$AMQP_PORT are up; Node.js and Chromium are installed."
