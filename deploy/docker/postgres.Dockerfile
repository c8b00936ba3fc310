# PostgreSQL 15 from Debian's package, for deploy/compose/compose.postgres.yaml on hosts that can
# pull no image (built by `npm run images -- --postgres` on the same base as the other images).
# Where `postgres:15` can be pulled, use that instead: POSTGRES_IMAGE=postgres:15. Only the part
# of the official image's interface the Compose file uses is implemented (postgres-entrypoint.sh):
# POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA, the data volume and port 5432.
ARG BASE_IMAGE=debian:12-slim
FROM ${BASE_IMAGE}

RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends postgresql-15; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log \
      /var/log/alternatives.log /var/lib/postgresql/15 /etc/postgresql/15; \
    mkdir -p /var/lib/postgresql/data /var/run/postgresql; \
    chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql; \
    chmod 0700 /var/lib/postgresql/data

COPY deploy/docker/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint

USER postgres
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
EXPOSE 5432
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=5 \
  CMD ["sh", "-c", "pg_isready -q -h 127.0.0.1 -U \"${POSTGRES_USER:-postgres}\""]

ARG VERSION=dev
LABEL org.opencontainers.image.title="executor-postgres" \
      org.opencontainers.image.description="PostgreSQL 15 (Debian's package) for the executor queue server" \
      org.opencontainers.image.version="${VERSION}"

ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
