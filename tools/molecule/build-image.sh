#!/usr/bin/env bash
# Build the local Debian 12 image the Molecule scenarios run (localhost/boma-mesh-debian:12).
# mmdebstrap + `podman import` instead of a registry pull: this machine has a Debian mirror but no
# container registry. Idempotent: the image carries a label with the hash of this script's inputs and
# is rebuilt only when that hash changes (or with FORCE=1).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
IMAGE=${IMAGE:-localhost/boma-mesh-debian:12}
SUITE=${SUITE:-bookworm}
# The mirror apt already uses on this machine (deb822 or one-line sources), else deb.debian.org.
MIRROR=${MIRROR:-$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p; s/^deb \(\[[^]]*\] \)\?\(http[^ ]*debian\) .*/\2/p' \
  /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# python3-apt: ansible's apt module; python3-cryptography + python3-pyroute2: samctl (keys, data plane); frr, gobgpd: the mesh scenario; systemd(-sysv): /sbin/init as PID 1;
# apt-utils + dpkg-dev + gnupg: the netbird scenario builds and signs a local apt repo inside the container.
PACKAGES=python3,python3-apt,python3-cryptography,python3-pyroute2,iproute2,iputils-ping,procps,frr,frr-pythontools,gobgpd,systemd,systemd-sysv,dbus,sudo,gnupg,ca-certificates,apt-utils,dpkg-dev,wireguard-tools,kmod

export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
hash=$(printf '%s\n' "$SUITE" "$MIRROR" "$PACKAGES" "$(sed -n '/^# --- image setup/,$p' "$0")" | sha256sum | cut -c1-16)

if [ "${FORCE:-0}" != 1 ] && [ "$(podman image inspect --format '{{ index .Labels "boma.hash" }}' "$IMAGE" 2>/dev/null)" = "$hash" ]; then
  echo "$IMAGE is current (hash $hash)"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# --- image setup (part of the hash) ---
# Strip docs and the policy that blocks service starts; mask units that cannot work in a container.
# The hooks are single-quoted on purpose: mmdebstrap expands $1 (the chroot) itself.
# shellcheck disable=SC2016
mmdebstrap --variant=minbase --include="$PACKAGES" --format=tar \
  --customize-hook='rm -f "$1/usr/sbin/policy-rc.d"' \
  --customize-hook='chroot "$1" systemctl mask systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket getty.target console-getty.service systemd-logind.service systemd-networkd-wait-online.service frr.service' \
  --customize-hook='echo boma-mesh > "$1/etc/hostname"; : > "$1/etc/machine-id"' \
  "$SUITE" "$tmp/rootfs.tar" "$MIRROR"
podman import \
  --change 'CMD ["/sbin/init"]' \
  --change 'STOPSIGNAL SIGRTMIN+3' \
  --change "LABEL boma.hash=$hash" \
  "$tmp/rootfs.tar" "$IMAGE"
echo "built $IMAGE (hash $hash)"
