# The queue server, from the single-file binary (`npm run package` -> dist/sea/executor-linux-x64).
#
#   npm run images        # executor-server:<version> and executor:<version>, base made locally if needed
#   docker run -p 3080:3080 -v executor-data:/var/lib/executor-server \
#     -e EXECUTORS_ACCESS_TOKEN=... -e EXECUTOR_SERVER_API_TOKEN=... executor-server:<version>
#
# BASE_IMAGE: any Debian 12 (glibc, libstdc++: the binary is a copy of the Node binary it was built
# with). The default is for hosts that can pull; scripts/make-base-image.sh makes one locally
# (git and CA certificates included, so the RUN below installs nothing). No Node.js or npm inside:
# the binary carries its runtime. The server needs git (`git http-backend` serves repositories to
# executors). See docs/operating.md ("Container images").
ARG BASE_IMAGE=debian:12-slim
FROM ${BASE_IMAGE}

# Installs git and CA certificates only when the base lacks them (debian:12-slim), in one layer with
# the clean-up, so no package list or cache is left in any layer.
RUN set -eu; \
    missing=""; \
    command -v git >/dev/null || missing="$missing git"; \
    [ -e /etc/ssl/certs/ca-certificates.crt ] || missing="$missing ca-certificates"; \
    if [ -n "$missing" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends $missing; \
      apt-get clean; \
      rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log \
        /var/log/alternatives.log; \
    fi; \
    groupadd --system --gid 10001 executor; \
    useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/executor-server --create-home \
      --shell /usr/sbin/nologin executor

# The build context holds only this file (.dockerignore); it is executable there (0755).
COPY dist/sea/executor-linux-x64 /usr/local/bin/executor

USER 10001:10001
# The embedded SQLite addon is unpacked here on first start (see scripts/package.mjs).
ENV EXECUTOR_NATIVE_CACHE_DIR=/var/lib/executor-server/.cache/native
VOLUME /var/lib/executor-server
EXPOSE 3080
# No curl in the image: bash's /dev/tcp asks /readyz (200 once the store answers and its schema is migrated).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/3080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
# Labels last: the revision changes with every commit and must not invalidate the cached layers
# above.
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="executor-server" \
      org.opencontainers.image.description="Queue server for executors (Sourcegraph /.executors protocol)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENTRYPOINT ["/usr/local/bin/executor"]
CMD ["server", "--listen", "0.0.0.0:3080", "--data", "/var/lib/executor-server"]
