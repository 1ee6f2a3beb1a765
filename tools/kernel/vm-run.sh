#!/usr/bin/env bash
# Boot Debian's kernel once under qemu (TCG) and run one command inside it.
#
#   tools/kernel/vm-run.sh [-m MEM] [-s SMP] [-t TIMEOUT] [-o OUTDIR] -- CMD [ARGS...]
#   tools/kernel/vm-run.sh                     # interactive shell (needs a tty; Ctrl-A x quits)
#
# The guest's root is the host's / (9p, read-only) under a tmpfs overlay, so every host path and binary
# (including this checkout and its .venv) works unchanged; guest writes are thrown away. CMD runs in the
# caller's current directory. OUTDIR (default: a temporary directory, removed afterwards) is shared
# read-write at the same path; the guest finds it in $VM_OUT. Exit status: CMD's, or 125 when the guest
# returned none (boot failure, panic, timeout).
# Environment: KERNEL_CACHE (see setup.sh), VM_ACCEL (default tcg; kvm on hosts with a real KVM),
# VM_APPEND (extra kernel command-line words, e.g. VM_DEBUG=1), VM_HOSTFWD (a qemu user-network hostfwd rule such
# as tcp:127.0.0.1:7022-:7022: adds a virtio NIC behind qemu's user network, restricted to that forward).
set -euo pipefail

CACHE=${KERNEL_CACHE:-$HOME/.cache/boma-mesh/kernel}
MEM=1G SMP=2 TIMEOUT=600 OUT=
usage() { sed -n '3,4p' "$0" | cut -c3- >&2; exit 2; }
while getopts m:s:t:o:h opt; do
  case $opt in
    m) MEM=$OPTARG ;;
    s) SMP=$OPTARG ;;
    t) TIMEOUT=$OPTARG ;;
    o) OUT=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))

[ -s "$CACHE/current" ] || { echo "vm-run: no kernel in $CACHE; run tools/kernel/setup.sh" >&2; exit 125; }
KVER=$(cat "$CACHE/current")
D=$CACHE/$KVER

if [ -n "$OUT" ]; then
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd)
else
  OUT=$(mktemp -d "${TMPDIR:-/tmp}/boma-vm.XXXXXX")
  trap 'rm -rf "$OUT"' EXIT
fi
case $OUT in *[[:space:]]*) echo "vm-run: OUTDIR must not contain spaces (kernel command line)" >&2; exit 125 ;; esac
rm -f "$OUT/rc" "$OUT/cmd.sh"

# What stage2.sh runs: cd to the caller's directory, then exec the command, every word %q-quoted.
if [ $# -gt 0 ]; then
  { printf 'cd %q || exit 125\nexec' "$PWD"; printf ' %q' "$@"; printf '\n'; } >"$OUT/cmd.sh"
  serial=(-serial stdio)
  exec </dev/null
else
  serial=(-serial mon:stdio)
fi

qemu=(
  qemu-system-x86_64 -accel "${VM_ACCEL:-tcg}" -cpu max -smp "$SMP" -m "$MEM" -M pc
  -nodefaults -no-user-config -display none "${serial[@]}" -no-reboot
  -kernel "$D/vmlinux" -initrd "$D/initramfs.cpio"
  -append "console=ttyS0 quiet panic=-1 mitigations=off cryptomgr.notests VM_KDIR=$D/k VM_OUT=$OUT ${VM_APPEND:-}"
  # The host's /: read-only; remap inode numbers (/ spans several devices: /proc, /dev/shm, ...).
  -fsdev "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap"
  -device "virtio-9p-pci,fsdev=root,mount_tag=root"
  -fsdev "local,id=out,path=$OUT,security_model=none,multidevs=remap"
  -device "virtio-9p-pci,fsdev=out,mount_tag=out"
  -device virtio-rng-pci
)
if [ -n "${VM_HOSTFWD:-}" ]; then
  # restrict=on: the guest reaches nothing outside; only the forwarded port reaches the guest.
  qemu+=(-netdev "user,id=net0,restrict=on,hostfwd=$VM_HOSTFWD" -device "virtio-net-pci,netdev=net0")
fi

if [ $# -eq 0 ]; then
  "${qemu[@]}" || true
  exit "$(cat "$OUT/rc" 2>/dev/null || echo 125)"
fi

# Copy the console to stdout, adding the host's wall clock to the guest's markers.
start=${EPOCHREALTIME/./}
elapsed() {
  local us=$((${EPOCHREALTIME/./} - start))
  printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000))
}
timeout --foreground -k 5 "$TIMEOUT" "${qemu[@]}" | while IFS= read -r line; do
  line=${line%$'\r'}
  case $line in
    VM-READY* | VM-EXIT*) echo "$line host=$(elapsed)s" ;;
    *) echo "$line" ;;
  esac
done || true
rc=$(cat "$OUT/rc" 2>/dev/null || true)
if [ -z "$rc" ]; then
  echo "vm-run: the guest returned no exit code after $(elapsed)s (boot failure, panic or timeout -t $TIMEOUT)" >&2
  rc=125
fi
exit "$rc"
