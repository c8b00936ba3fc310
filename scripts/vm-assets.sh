#!/usr/bin/env bash
# Builds the guest assets of the VM runtime (EXECUTOR_RUNTIME=vm) from Debian's packages:
#   <dir>/vmlinuz         the kernel of Debian's `linux-image-cloud-amd64` (virtio drivers as modules)
#   <dir>/initramfs.img   busybox (from busybox-static), the guest init and the virtio, overlay and
#                         virtio-net modules
#   <dir>/assets.json     what they were built from (read by `executor validate`)
# <dir> is EXECUTOR_VM_ASSETS_DIR (default /var/lib/executor/vm). Run as root on Debian 12 with
# busybox-static and cpio installed (apt-get download fetches the kernel package without installing
# it). Quick when the assets of the current kernel package and init are already there.
# `executor install --vm` runs this script too.
#
# Usage: npm run vm-assets [-- --force]
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${EXECUTOR_VM_ASSETS_DIR:-/var/lib/executor/vm}"
# The guest init: in a checkout under src/, in the npm package under dist/ (scripts/postbuild.mjs).
init="$repo/src/executor/runtimes/vm/guest/init.sh"
[[ -f $init ]] || init="$repo/dist/executor/runtimes/vm/guest/init.sh"
log() { printf '[vm-assets] %s\n' "$*"; }
die() { printf '[vm-assets] error: %s\n' "$*" >&2; exit 1; }

force=0
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    -h | --help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $a (only --force)" ;;
  esac
done

for c in apt-cache apt-get dpkg-deb cpio gzip sha256sum; do
  command -v "$c" >/dev/null || die "$c is missing"
done
# busybox-static's binary (busybox, the dynamic one, would need its libraries in the initramfs).
busybox="$(command -v busybox || true)"
[[ -n $busybox ]] || die "busybox is missing: apt-get install busybox-static"
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
  die "busybox-static is not installed: apt-get install busybox-static"
fi

# The kernel package the meta-package points at today, e.g. linux-image-6.1.0-57-cloud-amd64.
kernel_pkg() {
  apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1
}
pkg="$(kernel_pkg)"
if [[ -z $pkg ]]; then
  log "apt knows no linux-image-cloud-amd64: apt-get update"
  apt-get update -q >/dev/null
  pkg="$(kernel_pkg)"
fi
[[ -n $pkg ]] || die "apt-cache knows no linux-image-cloud-amd64 (run apt-get update; Debian's main archive is needed)"
init_sum="$(sha256sum "$init" | cut -d' ' -f1)"
want="{\"kernelPackage\":\"$pkg\",\"initSha256\":\"$init_sum\"}"

if ((force == 0)) && [[ -f $dir/vmlinuz && -f $dir/initramfs.img && -f $dir/assets.json ]] &&
  grep -q "\"kernelPackage\":\"$pkg\",\"initSha256\":\"$init_sum\"" "$dir/assets.json"; then
  log "assets of $pkg present in $dir"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log "downloading $pkg"
(cd "$work" && apt-get download -q "$pkg" >/dev/null 2>&1) || (cd "$work" && apt-get download "$pkg")
dpkg-deb -x "$work"/"$pkg"_*.deb "$work/pkg"
kver="$(ls "$work/pkg/lib/modules")"
vmlinuz="$(ls "$work"/pkg/boot/vmlinuz-*)"

root="$work/initramfs"
mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
cp "$busybox" "$root/bin/busybox"
for a in sh mount umount mkdir insmod cat head rm sleep reboot nsenter ip env printf echo sync stat; do
  ln -s busybox "$root/bin/$a"
done
install -m 0755 "$init" "$root/init"
# In dependency order (modules.dep is written only when a package is installed: the order is fixed
# here). ext4 is built into the cloud kernel.
for m in kernel/drivers/virtio/virtio_ring kernel/drivers/virtio/virtio kernel/drivers/virtio/virtio_mmio \
  kernel/drivers/block/virtio_blk kernel/drivers/char/virtio_console kernel/fs/overlayfs/overlay \
  kernel/net/core/failover kernel/drivers/net/net_failover kernel/drivers/net/virtio_net; do
  src="$work/pkg/lib/modules/$kver/$m.ko"
  [[ -f $src ]] || die "$pkg has no $m.ko"
  cp "$src" "$root/lib/modules/"
done
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -9) >"$work/initramfs.img"

mkdir -p "$dir"
install -m 0644 "$vmlinuz" "$dir/vmlinuz.new"
install -m 0644 "$work/initramfs.img" "$dir/initramfs.img.new"
mv "$dir/vmlinuz.new" "$dir/vmlinuz"
mv "$dir/initramfs.img.new" "$dir/initramfs.img"
printf '{"kernelPackage":"%s","initSha256":"%s","kernelVersion":"%s","builtAt":"%s"}\n' \
  "$pkg" "$init_sum" "$kver" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$dir/assets.json"
log "built $dir (kernel $kver)"
