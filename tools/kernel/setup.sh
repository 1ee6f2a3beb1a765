#!/usr/bin/env bash
# Provision the kernel lane: Debian's own kernel, unpacked (never installed), plus a tiny initramfs.
#
#   tools/kernel/setup.sh                                  # kernel that linux-image-amd64 depends on today
#   KPKG=linux-image-6.1.0-56-amd64 tools/kernel/setup.sh  # pin the kernel package
#
# Everything goes into $KERNEL_CACHE (default ~/.cache/boma-mesh/kernel):
#   <KVER>/k/               dpkg-deb -x of the kernel package (+ modules.dep from depmod -b)
#   <KVER>/vmlinux          ELF kernel extracted from the bzImage (qemu boots it through the PVH entry)
#   <KVER>/initramfs.cpio   busybox-static + virtio/9p/overlay modules + init + stage2.sh
#   current                 the KVER that vm-run.sh boots
# Each step leaves a stamp and is skipped on the next run, so a second run is a quick no-op.
# The initramfs stamp also carries a hash of init and stage2.sh: editing them rebuilds the image.
# Needs: apt-get, dpkg-deb, depmod/modprobe (kmod), busybox (busybox-static), python3; `make setup` installs them.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${KERNEL_CACHE:-$HOME/.cache/boma-mesh/kernel}
PYTHON=${PYTHON:-python3}
BUSYBOX=${BUSYBOX:-/bin/busybox}
# Modules stage 1 needs to reach the 9p root (Debian builds virtio_pci, 9p and overlay as modules).
STAGE1_MODULES="virtio_pci 9pnet_virtio 9p overlay virtio_rng"

log() { echo "kernel-setup: $*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

resolve_kpkg() {
  apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}

mkdir -p "$CACHE"
KPKG=${KPKG:-$(resolve_kpkg)}
if [ -z "$KPKG" ]; then
  # No package lists yet (fresh machine): fetch them once. Offline with a cache: reuse the last kernel.
  if as_root apt-get update -qq; then
    KPKG=$(resolve_kpkg)
  elif [ -s "$CACHE/current" ]; then
    KPKG=linux-image-$(cat "$CACHE/current")
    log "apt-get update failed; reusing cached $KPKG"
  fi
fi
[ -n "$KPKG" ] || { log "cannot resolve the package linux-image-amd64 depends on (set KPKG=)"; exit 1; }
KVER=${KPKG#linux-image-}
D=$CACHE/$KVER
K=$D/k
mkdir -p "$D"

# 1. Download and unpack the .deb (the .deb stays in the cache: Debian drops old ABIs from the archive).
if [ ! -e "$D/.unpacked" ]; then
  if ! compgen -G "$D/${KPKG}_*.deb" >/dev/null; then
    log "downloading $KPKG"
    # As root, download as root (not _apt, which cannot write to the cache dir) without a warning.
    sandbox=()
    [ "$(id -u)" = 0 ] && sandbox=(-o APT::Sandbox::User=root)
    (cd "$D" && apt-get download -q "${sandbox[@]}" "$KPKG")
  fi
  rm -rf "$K"
  dpkg-deb -x "$(compgen -G "$D/${KPKG}_*.deb" | head -n1)" "$K"
  touch "$D/.unpacked"
fi

# 2. The .deb ships no modules.dep (postinst makes it): generate it so `modprobe -d` resolves dependencies.
if [ ! -e "$D/.depmod" ]; then
  depmod -b "$K" "$KVER"
  touch "$D/.depmod"
fi

# 3. ELF vmlinux for PVH boot: skips about 4 s of in-guest decompression per boot under TCG.
if [ ! -e "$D/.vmlinux" ]; then
  "$PYTHON" "$HERE/extract_vmlinux.py" "$K/boot/vmlinuz-$KVER" "$D/vmlinux.tmp" >/dev/null
  mv "$D/vmlinux.tmp" "$D/vmlinux"
  touch "$D/.vmlinux"
fi

# 4. initramfs (uncompressed, so the guest spends no time decompressing it).
stamp=$(cat "$HERE/init" "$HERE/stage2.sh" "$BUSYBOX" | sha256sum | cut -c1-16)
if [ "$(cat "$D/.initramfs" 2>/dev/null)" != "$stamp" ]; then
  log "building initramfs for $KVER"
  root=$(mktemp -d "$D/initramfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/{bin,dev,proc,sys,lower,upper,newroot,mods}
  cp "$BUSYBOX" "$root/bin/busybox"
  for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  # Modules in --show-depends order, one name per call, duplicates dropped; stage 1 insmods them in this order.
  for m in $STAGE1_MODULES; do
    modprobe -d "$K" -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
  done | awk '!seen[$0]++' | while read -r ko; do
    cp "$ko" "$root/mods/"
    basename "$ko" >>"$root/mods/order"
  done
  install -m 0755 "$HERE/init" "$root/init"
  install -m 0755 "$HERE/stage2.sh" "$root/stage2.sh"
  # Without /dev/console in the image, init starts with no stdin/stdout. mknod needs root; otherwise a
  # hand-made newc entry for the node is appended (the kernel unpacks concatenated archives).
  console_node=no
  mknod "$root/dev/console" c 5 1 2>/dev/null && console_node=yes
  (cd "$root" && find . -mindepth 1 | "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) >"$D/initramfs.tmp"
  if [ "$console_node" = no ]; then
    # newc header: magic, then ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor
    # namesize check as 8 hex digits; name + NUL padded so the header+name length is a multiple of 4.
    hdr='070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X'
    printf "$hdr%s\0\0\0" 1 $((0020600)) 0 0 1 0 0 0 0 5 1 12 0 dev/console >>"$D/initramfs.tmp"
    printf "$hdr%s\0\0\0\0" 0 0 0 0 1 0 0 0 0 0 0 11 0 'TRAILER!!!' >>"$D/initramfs.tmp"
  fi
  mv "$D/initramfs.tmp" "$D/initramfs.cpio"
  echo "$stamp" >"$D/.initramfs"
  rm -rf "$root"
  trap - EXIT
fi

echo "$KVER" >"$CACHE/current.tmp" && mv "$CACHE/current.tmp" "$CACHE/current"
log "ready: $KVER in $D"
