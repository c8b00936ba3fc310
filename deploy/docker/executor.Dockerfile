# The executor, from the single-file binary, driving the HOST's Docker daemon through its socket.
#
#   npm run images
#   docker run -d --name executor --init --network host --pid host --cap-add NET_ADMIN \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /var/lib/executor/workspaces:/var/lib/executor/workspaces \
#     -e EXECUTOR_FRONTEND_URL=https://queue.example.com -e EXECUTOR_FRONTEND_PASSWORD=... \
#     -e EXECUTOR_QUEUE_NAME=batches executor:<version>
#
# WARNING: mounting the Docker socket gives this container root on the host. Whoever controls the
# executor process (a bug in it, a stolen executor token combined with one, anyone who can exec
# into the container) controls every container, image and file of the host. Run it so only on a
# host dedicated to running jobs. The alternatives: the executor on the host itself
# (`executor install`, a systemd unit), or the Kubernetes runtime (deploy/kubernetes), where no
# Docker socket is handed out. docs/operating.md ("Container images") and docs/security.md say
# more. Step containers themselves never get the socket.
#
# The workspace directory is mounted at the same path on both sides because the host's daemon
# resolves the bind mounts of step containers on the host; with another container path, set
# EXECUTOR_DOCKER_HOST_MOUNT_PATH to the host path instead. The per-job disk quota
# (EXECUTOR_JOB_DISK_SPACE) loop-mounts an image, which an unprivileged container cannot do and
# whose mount the host's daemon would not see: it is 0 here; run the executor on the host for it.
#
# The isolated job network (the default) installs firewall rules that belong in the HOST's iptables,
# hence --network host and NET_ADMIN; --pid host lets janitors of executors sharing the host's name
# tell each other's live jobs by pid (docs/operating.md, "Docker Compose").
#
# Runs as root inside the container: the socket is usually root:docker 0660 and the docker group's
# id differs between hosts.
ARG BASE_IMAGE=debian:12-slim
FROM ${BASE_IMAGE}

# git and CA certificates only when the base lacks them (see server.Dockerfile); iptables for the
# isolated job network's firewall rules, in the same layer as the clean-up.
RUN set -eu; \
    missing="iptables"; \
    command -v git >/dev/null || missing="$missing git"; \
    [ -e /etc/ssl/certs/ca-certificates.crt ] || missing="$missing ca-certificates"; \
    apt-get update; \
    apt-get install -y --no-install-recommends $missing; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log \
      /var/log/alternatives.log; \
    mkdir -p /var/lib/executor/workspaces

COPY dist/sea/executor-linux-x64 /usr/local/bin/executor

# No per-job disk quota by default: it loop-mounts an image, which this container cannot (see above).
ENV EXECUTOR_WORKSPACE_ROOT=/var/lib/executor/workspaces \
    EXECUTOR_RUNTIME=docker \
    EXECUTOR_JOB_DISK_SPACE=0 \
    EXECUTOR_NATIVE_CACHE_DIR=/var/cache/executor/native \
    EXECUTOR_METRICS_ADDR=127.0.0.1:6060
# The health check asks the executor's own metrics endpoint (EXECUTOR_METRICS_ADDR, loopback by
# default): 200 while it runs. Where the metrics endpoint is turned off, turn the check off too.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "a=${EXECUTOR_METRICS_ADDR:-127.0.0.1:6060}; exec 3<>/dev/tcp/${a%:*}/${a##*:} && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
# Labels last: the revision changes with every commit and must not invalidate the cached layers
# above.
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="executor" \
      org.opencontainers.image.description="Executor: runs batch jobs from a queue server in Docker containers" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENTRYPOINT ["/usr/local/bin/executor"]
CMD ["run"]
