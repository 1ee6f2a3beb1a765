#!/bin/sh
# Stage 2: PID 1 on the overlay root (the host's / plus a tmpfs). Finishes the mounts, makes the
# unpacked kernel's modules visible to modprobe, runs $VM_OUT/cmd.sh (written by vm-run.sh), stores its
# exit code in $VM_OUT/rc and powers off. Without cmd.sh it starts an interactive shell on the console.
BB=/run/vm/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM="${TERM:-linux}"
$BB mkdir -p /dev/pts /dev/shm /run/netns /run/lock
$BB mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
$BB mount -t tmpfs -o nosuid,nodev tmpfs /dev/shm
[ -d /sys/fs/cgroup ] && $BB mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null

# The host has no modules for this kernel: point /lib/modules/$KVER at the unpacked package, so that
# `modprobe` and the kernel's own module autoload work (fou has no alias: load it explicitly).
KVER=$($BB uname -r)
if [ -n "$VM_KDIR" ]; then
  $BB mkdir -p /lib/modules
  $BB rm -rf "/lib/modules/$KVER"
  $BB ln -s "$VM_KDIR/lib/modules/$KVER" "/lib/modules/$KVER"
fi

# The only writable share: same path as on the host, no caching (the host reads it after the run).
if [ -n "$VM_OUT" ]; then
  $BB mkdir -p "$VM_OUT"
  $BB mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none out "$VM_OUT"
fi
$BB hostname vm
$BB ip link set lo up
echo "VM-READY uptime=$($BB cut -d' ' -f1 /proc/uptime)"

export VM_OUT
if [ -n "$VM_OUT" ] && [ -f "$VM_OUT/cmd.sh" ]; then
  $BB stty -F /dev/console -onlcr 2>/dev/null # otherwise every output line ends in \r\n
  /bin/bash "$VM_OUT/cmd.sh"
  rc=$?
else
  $BB setsid -c /bin/bash -i </dev/ttyS0 >/dev/ttyS0 2>&1
  rc=$?
fi
[ -n "$VM_OUT" ] && echo "$rc" >"$VM_OUT/rc"
$BB sync
echo "VM-EXIT rc=$rc uptime=$($BB cut -d' ' -f1 /proc/uptime)"
$BB poweroff -f
