#!/usr/bin/env bash
# Makes the Debian base of the container images locally, for machines that can pull no image:
# mmdebstrap builds a minimal Debian 12 (bookworm) root file system from Debian's packages and
# `docker import` turns it into an image. Prints the image's name on stdout (logs go to stderr).
#
#   bash scripts/make-base-image.sh            # -> executor-base/debian:bookworm-<hash>
#   docker build --build-arg BASE_IMAGE="$(bash scripts/make-base-image.sh)" ...
#
# The base holds Debian's minbase variant (Essential packages and apt) plus git and ca-certificates,
# which both images need: git clones and `git http-backend`, CA certificates for HTTPS frontends.
# Like debian:12-slim it keeps no manual pages, documentation (except copyright files), locales,
# apt lists, package caches or logs.
#
# Cached by tag: the tag carries a hash of the recipe (mmdebstrap options, sources, image settings),
# so an image that exists is reused and a changed recipe makes a new one. `--force` rebuilds anyway.
#
# Environment:
#   DEBIAN_MIRROR            default http://deb.debian.org/debian
#   DEBIAN_SECURITY_MIRROR   default http://deb.debian.org/debian-security
# Needs: root (or a user namespace mmdebstrap can use), mmdebstrap, docker.
set -euo pipefail

force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h | --help)
      sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "make-base-image: unknown argument: $arg" >&2
      exit 2
      ;;
  esac
done

log() { printf '[make-base-image] %s\n' "$*" >&2; }
die() {
  printf '[make-base-image] error: %s\n' "$*" >&2
  exit 1
}

mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
packages=ca-certificates,git

# Everything that decides the image's content; its hash is the tag.
options=(
  --variant=minbase
  --include="$packages"
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  --dpkgopt='path-exclude=/usr/share/linda/*'
  --customize-hook='rm -rf "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log "$1"/var/cache/ldconfig/aux-cache "$1"/root/.bash_history'
  --customize-hook='printf "%s\n" "APT::Keep-Downloaded-Packages \"false\";" >"$1"/etc/apt/apt.conf.d/docker-clean'
)
sources=(
  "deb $mirror bookworm main"
  "deb $mirror bookworm-updates main"
  "deb $security bookworm-security main"
)
changes=(
  'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  'ENV LANG=C.UTF-8'
  'CMD ["bash"]'
)
hash="$(printf '%s\n' "${options[@]}" "${sources[@]}" "${changes[@]}" | sha256sum | cut -c1-12)"
image="executor-base/debian:bookworm-$hash"

command -v docker >/dev/null || die "docker is not installed"
# One build at a time per machine (test files ask for the base side by side); the second finds the
# image the first made.
exec 9>"${TMPDIR:-/tmp}/executor-make-base-image.lock"
flock 9
if [[ $force -eq 0 ]] && docker image inspect "$image" >/dev/null 2>&1; then
  log "$image present (use --force to rebuild)"
  printf '%s\n' "$image"
  exit 0
fi
command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (apt-get install mmdebstrap)"

log "building $image from $mirror (5 to 11 minutes)"
started=$SECONDS
# The mirrors are given as arguments: without them mmdebstrap reads sources from a non-tty stdin.
# path-exclude drops files at unpack time, so they are in no layer at all.
change_args=()
for c in "${changes[@]}"; do change_args+=(--change "$c"); done
mmdebstrap "${options[@]}" --format=tar bookworm - "${sources[@]}" |
  docker import "${change_args[@]}" --message "mmdebstrap --variant=minbase bookworm (+$packages)" \
    - "$image" >/dev/null
log "built $image in $((SECONDS - started)) s ($(docker image inspect -f '{{.Size}}' "$image") bytes)"
printf '%s\n' "$image"
