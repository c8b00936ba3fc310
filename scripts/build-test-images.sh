#!/usr/bin/env bash
# Builds the images the test suite runs steps in, locally and without any registry.
#
#   executor-test/busybox:latest   a rootfs made from the static busybox binary: /bin/busybox with a
#                                  link per applet (sh, cat, dd, ...), /tmp, /data, /etc/passwd.
#
# Idempotent: an image that already exists is left alone unless --force is given.
# Needs: docker (a daemon that answers) and busybox-static (/bin/busybox, statically linked).
set -euo pipefail

force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) echo "usage: $0 [--force]"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

BUSYBOX_IMAGE="executor-test/busybox:latest"
BUSYBOX_BIN="${BUSYBOX_BIN:-/bin/busybox}"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

build_busybox() {
  if [[ $force -eq 0 ]] && image_exists "$BUSYBOX_IMAGE"; then
    echo "image $BUSYBOX_IMAGE present (use --force to rebuild)"
    return
  fi
  if [[ ! -x "$BUSYBOX_BIN" ]]; then
    echo "missing $BUSYBOX_BIN: install busybox-static" >&2
    exit 1
  fi
  # A dynamically linked busybox would need the host's libc inside the image.
  if command -v file >/dev/null 2>&1 && ! file -L "$BUSYBOX_BIN" | grep -q 'statically linked'; then
    echo "$BUSYBOX_BIN is not statically linked: install busybox-static" >&2
    exit 1
  fi

  local root
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' RETURN
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,data,root,proc,sys,dev}
  chmod 1777 "$root/tmp"
  cp "$BUSYBOX_BIN" "$root/bin/busybox"
  chmod 0755 "$root/bin/busybox"
  # One link per applet, all in /bin (the PATH below covers the usual directories too).
  local applet
  for applet in $("$BUSYBOX_BIN" --list); do
    [[ "$applet" == busybox ]] && continue
    ln -sf busybox "$root/bin/$applet"
  done
  cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
  cat >"$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP

  tar -C "$root" --numeric-owner --owner=0 --group=0 -c . |
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'WORKDIR /data' \
      --change 'CMD ["/bin/sh"]' \
      - "$BUSYBOX_IMAGE" >/dev/null
  echo "built $BUSYBOX_IMAGE"
}

build_busybox
