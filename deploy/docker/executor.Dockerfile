# The executor, from the single-file binary, driving the HOST's Docker daemon through its socket.
#
#   npm run package
#   docker build -f deploy/docker/executor.Dockerfile -t executor .
#   docker run -d --name executor \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /var/lib/executor/workspaces:/var/lib/executor/workspaces \
#     -e EXECUTOR_FRONTEND_URL=https://queue.example.com -e EXECUTOR_FRONTEND_PASSWORD=... \
#     -e EXECUTOR_QUEUE_NAME=batches executor
#
# Mounting the Docker socket gives this container root on the host: anyone who controls the
# executor process controls every container and file of the host. That is the host operator's
# decision, not the image's; docs/operating.md ("Packaging") says when it is acceptable. Step
# containers themselves never get the socket.
#
# The workspace directory is mounted at the same path on both sides because the host's daemon
# resolves the bind mounts of step containers on the host; with another container path, set
# EXECUTOR_DOCKER_HOST_MOUNT_PATH to the host path instead.
#
# Runs as root inside the container: the socket is usually root:docker 0660 and the docker group's
# id differs between hosts. Not built in this repository's CI: see docs/operating.md.
ARG BASE_IMAGE=debian:12-slim
FROM ${BASE_IMAGE}

RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/executor/workspaces

COPY --chmod=0755 dist/sea/executor-linux-x64 /usr/local/bin/executor

ENV EXECUTOR_WORKSPACE_ROOT=/var/lib/executor/workspaces \
    EXECUTOR_RUNTIME=docker \
    EXECUTOR_NATIVE_CACHE_DIR=/var/cache/executor/native
ENTRYPOINT ["/usr/local/bin/executor"]
CMD ["run"]
