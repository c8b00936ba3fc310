#!/bin/busybox sh
# The init of the VM runtime's guest (PID 1 in the initramfs built by scripts/vm-assets.sh).
#
# Contract with the host (src/executor/runtimes/vm/vm-runner.ts):
#   - disks: /dev/vda the step image's root file system (read-only ext4), /dev/vdb the job's
#     workspace (ext4), mounted at /data as in docker steps;
#   - virtio-serial ports named `out`, `err` and `ctl`;
#   - on `ctl` the host sends one line with a byte count N, then N bytes of shell assignments:
#     STEP_DIR, STEP_SCRIPT, STEP_MARK, STEP_USER (`uid:gid`), STEP_DNS (resolvers; non-empty
#     when the VM has a virtio NIC on QEMU's user-mode network) and `set -- NAME=value ...` (the
#     step's environment), all single-quoted by the host;
#   - the step's stdout goes to `out` and its stderr to `err`, each followed by STEP_MARK; then
#     `exit <code> <free blocks> <block size> <free inodes>` (the workspace's file system after the
#     step) or `error <message>` is written to `ctl` as one line.
# The host kills the VM once it has both marks and the exit line; the guest waits for that (or for
# the host to close `ctl`, then powers off) and never powers off first, so nothing in flight is lost.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_mmio virtio_blk virtio_console overlay; do
  insmod /lib/modules/$m.ko
done

port() {
  for p in /sys/class/virtio-ports/*; do
    if [ "$(cat "$p/name" 2>/dev/null)" = "$1" ]; then
      echo "/dev/${p##*/}"
      return 0
    fi
  done
  return 1
}

die() {
  echo "error $*" >&3
  reboot -f
}

# Devices appear asynchronously once their drivers are loaded.
i=0
while ! { CTL=$(port ctl) && OUT=$(port out) && ERR=$(port err) && [ -b /dev/vda ] && [ -b /dev/vdb ]; }; do
  i=$((i + 1))
  [ $i -gt 500 ] && { echo "guest devices missing" >/dev/console; reboot -f; }
  sleep 0.01
done

# One open of the port for both directions: a virtio port refuses a second open.
exec 3<>"$CTL"
read -r n <&3
head -c "$n" <&3 >/step
. /step
rm /step

ip link set lo up
if [ -n "$STEP_DNS" ]; then
  # QEMU's user-mode network has fixed addresses (convert.ts GUEST_NET): no DHCP needed.
  for m in failover net_failover virtio_net; do
    insmod /lib/modules/$m.ko || die "cannot load $m"
  done
  i=0
  while [ ! -e /sys/class/net/eth0 ]; do
    i=$((i + 1))
    [ $i -gt 500 ] && die "the network device did not appear"
    sleep 0.01
  done
  { ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && ip route add default via 10.0.2.2; } ||
    die "cannot configure the network device"
fi

mkdir -p /ro /rw /newroot
mount -t ext4 -o ro /dev/vda /ro || die "cannot mount the image disk"
# The image's root is read-only and shared by every step of that image; a step writes to an
# overlay in memory, as a container writes to its layer.
mount -t tmpfs -o mode=0755 tmp /rw || die "cannot mount the overlay's upper layer"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
  die "cannot mount the overlay root"
mkdir -p /newroot/data /newroot/proc /newroot/sys /newroot/dev /newroot/tmp
mount -t ext4 -o nodev,nosuid /dev/vdb /newroot/data || die "cannot mount the workspace disk"
mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
# The resolvers, as Docker gives a container its resolv.conf; only into a real /etc of the image
# (a symbolic link would be followed here, in the initramfs).
if [ -n "$STEP_DNS" ] && [ ! -L /newroot/etc ]; then
  mkdir -p /newroot/etc && rm -f /newroot/etc/resolv.conf &&
    for a in $STEP_DNS; do echo "nameserver $a"; done >/newroot/etc/resolv.conf ||
    die "cannot write /etc/resolv.conf"
fi
# -L too: an absolute symlink (/bin/sh -> /usr/bin/dash) resolves against this initramfs, not the image.
[ -e /newroot/bin/sh ] || [ -L /newroot/bin/sh ] || die "the image has no /bin/sh"

# The step runs as the image's user (STEP_USER, uid:gid resolved by the host from the image's USER
# and passwd), with no supplementary groups: nsenter enters no namespace here, it changes the root
# (-r), the directory (-w: the new root, so no directory outside it stays reachable), then the gid
# and uid. The step gets no descriptor of `ctl` (3>&-), and cannot open it: a virtio port takes
# one opener.
user=${STEP_USER:-0:0}
env -i "$@" /bin/nsenter -r/newroot -w/newroot -G "${user#*:}" -S "${user%%:*}" \
  /bin/sh -c 'cd "$1" || exit 1; exec /bin/sh "$2"' step "$STEP_DIR" "$STEP_SCRIPT" \
  </dev/null >"$OUT" 2>"$ERR" 3>&-
code=$?
sync
free=$(stat -f -c '%a %S %d' /newroot/data)
printf '%s' "$STEP_MARK" >"$OUT"
printf '%s' "$STEP_MARK" >"$ERR"
echo "exit $code $free" >&3
sync
# The host kills the VM once it has this line and both marks. Until then the guest must stay up:
# output the host has not read yet may still be queued in QEMU (a slow reader throttles the port),
# and powering off would end QEMU and lose it. `read` returns when the host closes its side.
read -r _ <&3
reboot -f
