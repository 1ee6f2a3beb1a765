#!/usr/bin/env bash
# The kernel test lane (`make test-kernel`): one qemu boot of Debian's kernel runs all of tests/kernel
# in a single pytest process (the guest is slow: about 90 ms per fork+exec, Python imports 25-35x slower
# than on the host, so never one VM or one interpreter per test).
#
# Host side (no argument): provision (quick no-op when done), boot, echo pytest's output, exit with
# pytest's status (125: the guest returned none). Results (pytest.log, junit.xml, rc) stay in $KERNEL_OUT,
# default .build/kernel-lane/run.XXXXXX (.build/kernel-lane/latest). Environment: KERNEL_TIMEOUT (s, default 1200),
# KERNEL_MEM (default 1G), KERNEL_PYTEST_ARGS (extra pytest arguments, word-split).
# Guest side (--guest, run by vm-run.sh): load the tunnel modules (fou does not autoload) and run pytest.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"

if [ "${1:-}" = --guest ]; then
  shift
  modprobe -a veth ipip fou ip_gre wireguard
  # shellcheck disable=SC2086 # KERNEL_PYTEST_ARGS is a list of words
  # The hypothesis plugin costs about 10 s of startup in the guest; @given still works without it.
  exec .venv/bin/python -m pytest -q -p no:cacheprovider -p no:hypothesispytest --junitxml="$VM_OUT/junit.xml" \
    ${KERNEL_PYTEST_ARGS:-} "$@" tests/kernel >"$VM_OUT/pytest.log" 2>&1
fi

# One directory per run (several developers may run the lane at once), `latest` points at the newest.
if [ -n "${KERNEL_OUT:-}" ]; then
  OUT=$KERNEL_OUT
  mkdir -p "$OUT"
  rm -f "$OUT/pytest.log" "$OUT/junit.xml"
else
  mkdir -p "$REPO/.build/kernel-lane"
  find "$REPO/.build/kernel-lane" -mindepth 1 -maxdepth 1 -name 'run.*' -mmin +1440 -exec rm -rf {} +
  OUT=$(mktemp -d "$REPO/.build/kernel-lane/run.XXXXXX")
  ln -sfn "$(basename "$OUT")" "$REPO/.build/kernel-lane/latest"
fi
"$HERE/setup.sh" >/dev/null
# Byte-compile on the host what the guest imports: the guest's own .pyc writes go to its throwaway overlay.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
.venv/bin/python -m compileall -q -j0 "$site/pyroute2" "$site/_pytest" "$site/pluggy" >/dev/null || true
KVER=$(cat "${KERNEL_CACHE:-$HOME/.cache/boma-mesh/kernel}/current")

start=$SECONDS
rc=0
"$HERE/vm-run.sh" -m "${KERNEL_MEM:-1G}" -t "${KERNEL_TIMEOUT:-1200}" -o "$OUT" -- \
  env BOMA_KERNEL_GUEST=1 BOMA_KERNEL_KVER="$KVER" BOMA_HOST_KVER="$(uname -r)" \
  KERNEL_PYTEST_ARGS="${KERNEL_PYTEST_ARGS:-}" bash tools/kernel/run-tests.sh --guest || rc=$?

echo "---- pytest (guest kernel $KVER) ----"
cat "$OUT/pytest.log" 2>/dev/null || echo "(no pytest output)"
echo "---- kernel lane: rc=$rc in $((SECONDS - start))s; junit: $OUT/junit.xml ----"
exit "$rc"
