#!/usr/bin/env bash
# Prepares a clean Debian 12 machine (as root) for the full test suite: Docker with the gVisor
# (runsc) runtime, the locally built test images, git, QEMU with the vm runtime's guest assets, and
# PostgreSQL. Writes `.ci/env` with TEST_DATABASE_URL for `.ci/run` to source.
#
# Idempotent and quick when everything is already in place: packages are installed only when
# missing, daemon.json is rewritten (and dockerd reloaded) only when it differs, images are built
# only when absent.
#
# Environment:
#   CI_PG_PASSWORD   password set for the PostgreSQL superuser used by tests (default: postgres).
#                    The cluster listens on loopback only; this is a throwaway test database.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '[ci-setup] %s\n' "$*"; }
die() { printf '[ci-setup] error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (installs packages, configures and starts dockerd and PostgreSQL)"

# ---------------------------------------------------------------------------------------------
# Packages
# mmdebstrap makes the base of the container images (no registry to pull one from), docker-compose
# and packer run deploy/compose and validate deploy/packer in test/deploy; qemu-system-x86, cpio and
# e2fsprogs serve the vm runtime (QEMU microVMs, guest assets, disk images); btrfs-progs (mkfs.btrfs)
# and xfsprogs (mkfs.xfs) make the file systems on which test/e2e/docker-storage-opt.test.ts runs
# private dockerds with writable-layer quotas (the btrfs one is required under CI).
packages=(docker.io runsc busybox-static git postgresql docker-registry chromium mmdebstrap docker-compose packer
  qemu-system-x86 cpio e2fsprogs btrfs-progs xfsprogs iproute2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  log "packages present"
fi

# ---------------------------------------------------------------------------------------------
# Docker daemon with the runsc runtime.
# This runsc build refuses to start without --network=host; --platform=ptrace needs no KVM.
runsc_path="$(command -v runsc || echo /usr/bin/runsc)"
daemon_json=/etc/docker/daemon.json
mkdir -p /etc/docker
# Merge into any existing config instead of replacing it, so other settings an operator made stay.
desired="$(
  RUNSC="$runsc_path" node -e '
    const fs = require("node:fs");
    let cfg = {};
    try { cfg = JSON.parse(fs.readFileSync("/etc/docker/daemon.json", "utf8")); } catch {}
    cfg.runtimes = cfg.runtimes || {};
    cfg.runtimes.runsc = { path: process.env.RUNSC, runtimeArgs: ["--platform=ptrace", "--network=host"] };
    process.stdout.write(JSON.stringify(cfg, null, 2) + "\n");
  '
)"
config_changed=0
if [[ ! -f $daemon_json ]] || [[ "$(cat "$daemon_json")" != "${desired%$'\n'}" ]]; then
  printf '%s\n' "$desired" >"$daemon_json"
  config_changed=1
  log "wrote $daemon_json"
fi

docker_up() { docker info >/dev/null 2>&1; }
has_runsc() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }

wait_docker() {
  local i
  for i in $(seq 1 60); do
    docker_up && return 0
    sleep 1
  done
  die "dockerd did not answer within 60 s; see /var/log/dockerd.log"
}

start_dockerd() {
  if [[ -d /run/systemd/system ]]; then
    systemctl start docker
  else
    log "starting dockerd in the background (log: /var/log/dockerd.log)"
    (dockerd >>/var/log/dockerd.log 2>&1 &)
  fi
  wait_docker
}

stop_dockerd() {
  if [[ -d /run/systemd/system ]]; then
    systemctl stop docker
    return
  fi
  local pid
  pid="$(cat /var/run/docker.pid 2>/dev/null || true)"
  [[ -n $pid ]] || return 0
  kill "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 1
  done
  die "dockerd (pid $pid) did not stop"
}

if ! docker_up; then
  start_dockerd
elif ((config_changed)); then
  # `runtimes` is reloadable: SIGHUP makes dockerd re-read daemon.json without stopping containers.
  log "reloading dockerd configuration"
  if [[ -d /run/systemd/system ]]; then
    systemctl reload docker || true
  else
    kill -HUP "$(cat /var/run/docker.pid)" || true
  fi
  for _ in $(seq 1 10); do
    has_runsc && break
    sleep 1
  done
fi
if ! has_runsc; then
  log "dockerd does not list runsc after reload; restarting it"
  stop_dockerd
  start_dockerd
fi
has_runsc || die "the Docker daemon has no 'runsc' runtime after configuring $daemon_json"
log "docker $(docker version --format '{{.Server.Version}}') with runtimes: $(docker info --format '{{range $k, $v := .Runtimes}}{{$k}} {{end}}')"

# ---------------------------------------------------------------------------------------------
# Test images (no registry: built from busybox-static)
bash "$repo/scripts/build-test-images.sh"
# The Debian base of the container images (5 to 11 minutes the first time, then cached by tag):
# made here so that test/deploy does not spend its hook timeouts on it.
bash "$repo/scripts/make-base-image.sh" >/dev/null

# ---------------------------------------------------------------------------------------------
# Guest kernel and initramfs of the vm runtime (kept when already built from the current kernel
# package and init: the script says so and exits).
bash "$repo/scripts/vm-assets.sh"

# ---------------------------------------------------------------------------------------------
# PostgreSQL: start the cluster, give the superuser a password, hand tests a loopback URL.
pg_password="${CI_PG_PASSWORD:-postgres}"
read -r pg_version pg_cluster pg_port pg_status < <(pg_lsclusters --no-header | awk 'NR==1 {print $1, $2, $3, $4}')
[[ -n ${pg_version:-} ]] || die "no PostgreSQL cluster found (pg_lsclusters is empty)"
if [[ $pg_status != online* ]]; then
  log "starting PostgreSQL $pg_version/$pg_cluster"
  pg_ctlcluster "$pg_version" "$pg_cluster" start
fi
for _ in $(seq 1 30); do
  runuser -u postgres -- pg_isready -q -p "$pg_port" && break
  sleep 1
done
runuser -u postgres -- pg_isready -q -p "$pg_port" || die "PostgreSQL did not become ready"
# psql's :'pw' quotes the value for SQL (variables are interpolated from stdin, not from -c).
runuser -u postgres -- psql -q -p "$pg_port" -v ON_ERROR_STOP=1 -v pw="$pg_password" >/dev/null <<'SQL'
ALTER USER postgres PASSWORD :'pw';
SQL

pw_enc="$(node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$pg_password")"
url="postgres://postgres:${pw_enc}@127.0.0.1:${pg_port}/postgres"
mkdir -p "$repo/.ci"
printf 'export TEST_DATABASE_URL=%q\n' "$url" >"$repo/.ci/env"
log "wrote .ci/env (TEST_DATABASE_URL on 127.0.0.1:$pg_port)"
log "done"
