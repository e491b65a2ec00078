#!/usr/bin/env bash
# Sourced by scripts/test.sh (and usable by hand): starts throwaway PostgreSQL and Redis servers
# for the tests — each in a temp dir, on a free port, stopped on exit — and exports
# PRODEX_TEST_POSTGRES_URL and PRODEX_TEST_REDIS_URL. A missing server binary is a loud failure.

services_dir=$(mktemp -d /tmp/prodex-services.XXXXXX)
chmod 755 "$services_dir"
services_pids=()

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

stop_services() {
  for d in pg pg-tls; do
    if [ -n "${pg_bin:-}" ] && [ -d "$services_dir/$d" ]; then
      as_pg "$pg_bin/pg_ctl" -D "$services_dir/$d" -m immediate stop >/dev/null 2>&1 || true
    fi
  done
  for p in "${services_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$services_dir"
}

# initdb and postgres refuse to run as root: use the `postgres` system user when we are root.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    echo "services: PostgreSQL server binaries not found (apt-get install postgresql); the postgres tests cannot run" >&2
    return 1
  fi
  local port; port=$(free_port)
  mkdir -p "$services_dir/pg"
  [ "$(id -u)" -eq 0 ] && chown postgres "$services_dir/pg"
  as_pg "$pg_bin/initdb" -D "$services_dir/pg" -U postgres --auth=trust -E UTF8 >/dev/null
  as_pg "$pg_bin/pg_ctl" -D "$services_dir/pg" -l "$services_dir/pg/server.log" -w \
    -o "-p $port -k $services_dir/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
  export PRODEX_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "services: postgres on 127.0.0.1:$port" >&2
}

start_redis() {
  if ! command -v redis-server >/dev/null; then
    echo "services: redis-server not found (apt-get install redis-server); the redis tests cannot run" >&2
    return 1
  fi
  local port; port=$(free_port)
  mkdir -p "$services_dir/redis"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$services_dir/redis" --save "" --appendonly no --databases 64 \
    --daemonize no --logfile "$services_dir/redis/redis.log" &
  services_pids+=($!)
  for _ in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-cli -p "$port" ping >/dev/null || { echo "services: redis did not start" >&2; return 1; }
  export PRODEX_TEST_REDIS_URL="redis://127.0.0.1:$port/"
  echo "services: redis on 127.0.0.1:$port" >&2
}

# TLS twins of the two servers, with a test CA (scripts/test-certs.sh): the conformance suite runs
# once more over verified TLS. Exports PRODEX_TEST_TLS_DIR, PRODEX_TEST_POSTGRES_TLS_URL (with
# sslmode=verify-full and sslrootcert) and PRODEX_TEST_REDIS_TLS_URL (rediss://).
start_tls_services() {
  local certs="$services_dir/certs"
  scripts/test-certs.sh "$certs" || return 1
  export PRODEX_TEST_TLS_DIR="$certs"
  local port; port=$(free_port)
  mkdir -p "$services_dir/pg-tls"
  [ "$(id -u)" -eq 0 ] && chown postgres "$services_dir/pg-tls"
  as_pg "$pg_bin/initdb" -D "$services_dir/pg-tls" -U postgres --auth=trust -E UTF8 >/dev/null
  cp "$certs/server.pem" "$services_dir/pg-tls/server.crt"
  cp "$certs/server.key" "$services_dir/pg-tls/server.key"
  [ "$(id -u)" -eq 0 ] && chown postgres "$services_dir/pg-tls/server.crt" "$services_dir/pg-tls/server.key"
  chmod 600 "$services_dir/pg-tls/server.key"
  as_pg "$pg_bin/pg_ctl" -D "$services_dir/pg-tls" -l "$services_dir/pg-tls/server.log" -w \
    -o "-p $port -k $services_dir/pg-tls -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key" \
    start >/dev/null || { echo "services: postgres with TLS did not start" >&2; return 1; }
  export PRODEX_TEST_POSTGRES_TLS_URL="postgres://postgres@localhost:$port/postgres?sslmode=verify-full&sslrootcert=$certs/ca.pem"
  port=$(free_port)
  mkdir -p "$services_dir/redis-tls"
  redis-server --port 0 --tls-port "$port" --bind 127.0.0.1 --tls-cert-file "$certs/server.pem" \
    --tls-key-file "$certs/server.key" --tls-auth-clients no --dir "$services_dir/redis-tls" --save "" \
    --appendonly no --databases 64 --daemonize no --logfile "$services_dir/redis-tls/redis.log" &
  services_pids+=($!)
  for _ in $(seq 1 100); do
    redis-cli --tls --cacert "$certs/ca.pem" -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-cli --tls --cacert "$certs/ca.pem" -p "$port" ping >/dev/null || { echo "services: redis with TLS did not start" >&2; return 1; }
  export PRODEX_TEST_REDIS_TLS_URL="rediss://localhost:$port/"
  echo "services: postgres and redis with TLS (test CA in $certs)" >&2
}
