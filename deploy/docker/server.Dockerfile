# The queue server, from the single-file binary (`npm run package` -> dist/sea/executor-linux-x64).
#
#   npm run package
#   docker build -f deploy/docker/server.Dockerfile -t executor-server .
#   docker run -p 3080:3080 -v executor-data:/var/lib/executor-server \
#     -e EXECUTORS_ACCESS_TOKEN=... -e EXECUTOR_SERVER_API_TOKEN=... executor-server
#
# The binary needs glibc and libstdc++ (it is a copy of the Node binary it was built with) and the
# server needs git (`git http-backend` serves repositories to executors). Not built in this
# repository's CI: see docs/operating.md ("Packaging").
ARG BASE_IMAGE=debian:12-slim
FROM ${BASE_IMAGE}

RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/executor-server --create-home executor

COPY --chmod=0755 dist/sea/executor-linux-x64 /usr/local/bin/executor

USER 10001
# The embedded SQLite addon is unpacked here on first start (see scripts/package.mjs).
ENV EXECUTOR_NATIVE_CACHE_DIR=/var/lib/executor-server/.cache/native
VOLUME /var/lib/executor-server
EXPOSE 3080
ENTRYPOINT ["/usr/local/bin/executor"]
CMD ["server", "--listen", "0.0.0.0:3080", "--data", "/var/lib/executor-server"]
