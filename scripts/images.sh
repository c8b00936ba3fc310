#!/usr/bin/env bash
# `npm run images`: builds the container images from deploy/docker/ with the single-file binary.
#
#   executor-server:<tag>   the queue server (deploy/docker/server.Dockerfile)
#   executor:<tag>          the executor (deploy/docker/executor.Dockerfile)
#
# <tag> is the package version unless --tag is given. The binary is (re)built by
# `scripts/package.mjs --if-stale`. The base image is, in this order: $BASE_IMAGE when set (pulled
# by docker when it is not local), debian:12-slim when it is present locally, else the Debian base
# scripts/make-base-image.sh makes locally with mmdebstrap (cached by tag, so made once per machine).
# Prints the two images with their sizes at the end.
#
# Options:
#   --tag TAG       tag the images TAG instead of the package version
#   --no-package    use dist/sea/executor-linux-x64 as it is (fails when it is missing)
#   --postgres      also build executor-postgres:<tag> (deploy/docker/postgres.Dockerfile: Debian's
#                   PostgreSQL 15 on the same base, for deploy/compose/compose.postgres.yaml)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
log() { printf '[images] %s\n' "$*" >&2; }
die() {
  printf '[images] error: %s\n' "$*" >&2
  exit 1
}

version="$(node -p 'require("./package.json").version')"
tag="$version"
package=1
postgres=0
while (($# > 0)); do
  case "$1" in
    --tag)
      [[ $# -ge 2 && -n $2 ]] || die "--tag needs a value"
      tag="$2"
      shift 2
      ;;
    --no-package)
      package=0
      shift
      ;;
    --postgres)
      postgres=1
      shift
      ;;
    -h | --help)
      sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "invalid tag: $tag"
command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer (docker info failed)"

binary=dist/sea/executor-linux-x64
if ((package)); then
  node scripts/package.mjs --if-stale >&2
fi
[[ -x $binary ]] || die "$binary is missing: run npm run package"

if [[ -n ${BASE_IMAGE:-} ]]; then
  base="$BASE_IMAGE"
elif docker image inspect debian:12-slim >/dev/null 2>&1; then
  base=debian:12-slim
else
  log "no base image given (BASE_IMAGE) and debian:12-slim is not present: making one locally"
  base="$(bash scripts/make-base-image.sh)"
fi
log "base image: $base"

revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [[ $revision != unknown ]] && [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
  revision="$revision-dirty"
fi
source_url="$(git config --get remote.origin.url 2>/dev/null || echo unknown)"

build() {
  local name="$1" dockerfile="$2"
  log "building $name:$tag"
  docker build \
    --file "$dockerfile" \
    --tag "$name:$tag" \
    --build-arg BASE_IMAGE="$base" \
    --build-arg VERSION="$version" \
    --build-arg REVISION="$revision" \
    --build-arg SOURCE="$source_url" \
    --quiet \
    . >/dev/null
}
build executor-server deploy/docker/server.Dockerfile
build executor deploy/docker/executor.Dockerfile
images=("executor-server:$tag" "executor:$tag")
if ((postgres)); then
  build executor-postgres deploy/docker/postgres.Dockerfile
  images+=("executor-postgres:$tag")
fi

for image in "${images[@]}"; do
  bytes="$(docker image inspect -f '{{.Size}}' "$image")"
  printf '%s\t%s MB\n' "$image" "$((bytes / 1000000))"
done
