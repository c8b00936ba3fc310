#!/bin/sh
# Entry point of deploy/docker/postgres.Dockerfile: the subset of the official postgres image's
# interface that deploy/compose/compose.postgres.yaml uses. On an empty PGDATA it runs initdb with
# POSTGRES_USER (default postgres) and POSTGRES_PASSWORD (required), password authentication
# (scram-sha-256) for connections over the network, and creates POSTGRES_DB when given; then it
# runs postgres in the foreground, listening on all addresses. Runs as the postgres user.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
user="${POSTGRES_USER:-postgres}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "postgres-entrypoint: set POSTGRES_PASSWORD (the database is initialised on first start)" >&2
    exit 1
  fi
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256
  rm -f "$pwfile"
  printf '%s\n' "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ -n "${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != postgres ]; then
    # Single-user mode: no server, no socket, nothing listening before the database exists.
    printf 'CREATE DATABASE "%s" OWNER "%s";\n' "$POSTGRES_DB" "$user" |
      postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
