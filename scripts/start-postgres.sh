#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for tests and benchmarks, and prints its URL.
#
#   scripts/start-postgres.sh [DATA_DIR] [PORT]     start (installing PostgreSQL if missing); idempotent
#   scripts/start-postgres.sh --stop [DATA_DIR]     stop it
#
# DATA_DIR defaults to $PG_DATA_DIR or /tmp/cartbridge-pg, PORT to $PG_PORT or 5432. The cluster listens on
# 127.0.0.1 only, with trust authentication and superuser "postgres" — never use it for anything real.
# The last line printed on stdout is the URL (postgres://postgres@127.0.0.1:PORT/postgres), so
#   export TEST_DATABASE_URL="$(scripts/start-postgres.sh | tail -n 1)"
# works. Run as root, the server runs as the "postgres" system user (initdb refuses root).
set -euo pipefail

stop=0
if [[ "${1:-}" == "--stop" ]]; then
  stop=1
  shift
fi
data_dir="${1:-${PG_DATA_DIR:-/tmp/cartbridge-pg}}"
port="${2:-${PG_PORT:-5432}}"
url="postgres://postgres@127.0.0.1:${port}/postgres"

log() { echo "start-postgres: $*" >&2; }

find_bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
      echo "$dir"
      return 0
    fi
  done
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return 0
  fi
  return 1
}

bindir="$(find_bindir || true)"
if [[ -z "$bindir" ]]; then
  if [[ "$stop" == 1 ]]; then
    log "PostgreSQL is not installed; nothing to stop"
    exit 0
  fi
  log "PostgreSQL not found; installing it with apt-get"
  if [[ "$(id -u)" != 0 ]]; then
    log "installing needs root (apt-get install -y postgresql)"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  bindir="$(find_bindir)"
fi

# Runs a PostgreSQL tool as the cluster's owner.
as_owner() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [[ "$stop" == 1 ]]; then
  if [[ -f "$data_dir/postmaster.pid" ]]; then
    as_owner "$bindir/pg_ctl" -D "$data_dir" -m fast -w stop >&2
  else
    log "no server running in $data_dir"
  fi
  exit 0
fi

ready() { "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; }

if ready; then
  log "a server already answers on 127.0.0.1:$port"
  echo "$url"
  exit 0
fi

if [[ ! -f "$data_dir/PG_VERSION" ]]; then
  log "creating a trust-auth cluster in $data_dir"
  mkdir -p "$data_dir"
  if [[ "$(id -u)" == 0 ]]; then
    chown postgres: "$data_dir"
  fi
  chmod 700 "$data_dir"
  as_owner "$bindir/initdb" -D "$data_dir" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-instructions >&2
fi

log "starting PostgreSQL ($("$bindir/postgres" --version)) on 127.0.0.1:$port"
# The socket goes into the data directory: /var/run/postgresql may be missing or not writable.
as_owner "$bindir/pg_ctl" -D "$data_dir" -l "$data_dir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $data_dir -c max_connections=200" start >&2

for _ in $(seq 1 60); do
  if ready; then
    echo "$url"
    exit 0
  fi
  sleep 0.5
done
log "PostgreSQL did not become ready; see $data_dir/server.log"
exit 1
