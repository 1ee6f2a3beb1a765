#!/usr/bin/env bash
# The collections Molecule's podman driver needs (containers.podman, ansible.posix), taken from the pinned
# `ansible` community wheel through pip's configured index: Galaxy is not reachable from this machine.
# Unpacked into $DEST (default .build/molecule-collections); a no-op when the pinned version is there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ANSIBLE_WHEEL_VERSION=${ANSIBLE_WHEEL_VERSION:-11.13.0}
DEST=${DEST:-$root/.build/molecule-collections}
stamp=$DEST/.ansible-$ANSIBLE_WHEEL_VERSION
[ -e "$stamp" ] && { echo "molecule collections current ($ANSIBLE_WHEEL_VERSION)"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$root/.venv/bin/python" -m pip download -q --no-deps -d "$tmp" "ansible==$ANSIBLE_WHEEL_VERSION"
rm -rf "$DEST" && mkdir -p "$DEST"
"$root/.venv/bin/python" - "$tmp"/ansible-*.whl "$DEST" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
keep = ("ansible_collections/containers/podman/", "ansible_collections/ansible/posix/")
with zipfile.ZipFile(wheel) as zf:
    zf.extractall(dest, [n for n in zf.namelist() if n.startswith(keep)])
PY
touch "$stamp"
echo "molecule collections: containers.podman, ansible.posix from ansible $ANSIBLE_WHEEL_VERSION in $DEST"
