#!/usr/bin/env bash
# make test-package: the collection as a user gets it (docs/packaging.md).
#  1. ansible-galaxy collection build into a work directory; a build warning fails the test;
#  2. tools/check_package.py: no test/lab/CI/dev clutter or local secrets, nothing of plugins/roles/meta missing;
#  3. ansible-galaxy collection install into WORK/collections, the ONLY collections path of every command below
#     (own ansible.cfg and ANSIBLE_HOME, no system path, run from a directory outside the repo); a negative
#     control proves that boma.mesh is not found without it;
#  4. ansible-doc of every module, filter and role;
#  5. playbook.yml (every module, role and filter by FQCN) from a copy in WORK;
#  6. ansible-builder create (execution-environment.yml) and introspect of the installed collection.
# KEEP=1 keeps the work directory.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$REPO/.venv/bin}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/boma-package.XXXXXX")
START=$SECONDS

cleanup() {
  if [ -s "$WORK/rr-a.pid" ]; then
    kill "$(cat "$WORK/rr-a.pid")" 2>/dev/null || true
  fi
  if [ -n "${KEEP:-}" ]; then echo "test-package: work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

fail() { echo "test-package: FAIL: $*" >&2; exit 1; }

# Nothing from the caller's environment (the Makefile exports ANSIBLE_COLLECTIONS_PATH=.build) or ~/.ansible.
while read -r name; do unset "$name"; done < <(env | sed -n 's/^\(ANSIBLE_[A-Za-z0-9_]*\)=.*/\1/p')
mkdir -p "$WORK/collections" "$WORK/empty" "$WORK/roles" "$WORK/dist" "$WORK/play/frr" "$WORK/tmp"
printf '[defaults]\nretry_files_enabled = false\n' >"$WORK/ansible.cfg"
export ANSIBLE_CONFIG=$WORK/ansible.cfg ANSIBLE_HOME=$WORK/ansible-home ANSIBLE_LOCAL_TEMP=$WORK/tmp \
  ANSIBLE_COLLECTIONS_PATH=$WORK/collections ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false \
  ANSIBLE_ROLES_PATH=$WORK/roles ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_DEPRECATION_WARNINGS=1

echo "== build"
(cd "$REPO" && "$BIN/ansible-galaxy" collection build --output-path "$WORK/dist" .) 2>&1 | tee "$WORK/build.log"
if grep -qi 'warning' "$WORK/build.log"; then fail "ansible-galaxy collection build warned"; fi
TARBALL=$(echo "$WORK"/dist/*.tar.gz)
[ -f "$TARBALL" ] || fail "no tarball in $WORK/dist"

echo "== check the tarball"
"$BIN/python" "$REPO/tools/check_package.py" tarball "$TARBALL" --repo "$REPO"

cd "$WORK"
echo "== install"
"$BIN/ansible-galaxy" collection install --offline -p "$WORK/collections" "$TARBALL" 2>&1 | tee "$WORK/install.log"
if grep -qi 'warning' "$WORK/install.log"; then fail "ansible-galaxy collection install warned"; fi
COLL=$WORK/collections/ansible_collections/boma/mesh
[ -f "$COLL/MANIFEST.json" ] || fail "not installed at $COLL"

# Negative controls: the same environment without the temporary install must find no boma.mesh at all.
docs=$(ANSIBLE_COLLECTIONS_PATH=$WORK/empty "$BIN/ansible-doc" --json -t module boma.mesh.sam_validate 2>/dev/null)
[ "$docs" = "{}" ] || fail "ansible-doc finds boma.mesh without the temporary install"
if (cd "$REPO/tests/package" && ANSIBLE_COLLECTIONS_PATH=$WORK/empty "$BIN/ansible-playbook" --syntax-check \
      -i inventory.yml playbook.yml >"$WORK/negative.log" 2>&1); then
  fail "playbook.yml resolves without the temporary install: it would not test the tarball"
fi
grep -q "boma.mesh" "$WORK/negative.log" || fail "the negative control failed for another reason: $(tail -5 "$WORK/negative.log")"

echo "== ansible-doc"
MODULES=() ROLES=() FILTERS=()
for path in "$REPO"/plugins/modules/*.py; do name=${path##*/}; MODULES+=("boma.mesh.${name%.py}"); done
for path in "$REPO"/roles/*/; do name=${path%/}; ROLES+=("boma.mesh.${name##*/}"); done
for path in "$REPO"/plugins/filter/*.yml; do name=${path##*/}; FILTERS+=("boma.mesh.${name%.yml}"); done
"$BIN/ansible-doc" --json -t module "${MODULES[@]}" >"$WORK/doc-module.json"
"$BIN/ansible-doc" --json -t filter "${FILTERS[@]}" >"$WORK/doc-filter.json"
"$BIN/ansible-doc" --json -t role "${ROLES[@]}" >"$WORK/doc-role.json"
"$BIN/python" "$REPO/tools/check_package.py" docs module "$WORK/doc-module.json" "${MODULES[@]}"
"$BIN/python" "$REPO/tools/check_package.py" docs filter "$WORK/doc-filter.json" "${FILTERS[@]}"
"$BIN/python" "$REPO/tools/check_package.py" docs role "$WORK/doc-role.json" "${ROLES[@]}"

echo "== playbook (every module, role and filter by FQCN, from the installed tarball)"
cp "$REPO/tests/package/playbook.yml" "$REPO/tests/package/inventory.yml" "$REPO/tests/package/fake-frr" "$WORK/play/"
cp "$REPO"/tests/fixtures/frr/*.json "$WORK/play/frr/"
PORT=$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cd "$WORK/play"
"$BIN/ansible-playbook" -i inventory.yml playbook.yml -e "boma_package_tmp=$WORK" -e "boma_package_port=$PORT" \
  | tee "$WORK/playbook.log"
# Each module is a task of playbook.yml whose result is asserted; each role must show up in the run.
for module in "${MODULES[@]}"; do
  grep -Eq "^ +${module//./\\.}:\$" playbook.yml || fail "playbook.yml does not call $module"
done
for role in "${ROLES[@]}"; do
  grep -qF "TASK [${role} : " "$WORK/playbook.log" || fail "role $role did not run in playbook.yml"
done

echo "== ansible-builder create"
mkdir -p "$WORK/ee"
cp "$REPO/execution-environment.yml" "$TARBALL" "$WORK/ee/"
grep -q "name: collections/$(basename "$TARBALL")\$" "$WORK/ee/execution-environment.yml" \
  || fail "execution-environment.yml does not install $(basename "$TARBALL") (version bump?)"
(cd "$WORK/ee" && "$BIN/ansible-builder" create -f execution-environment.yml --context "$WORK/ee/context")
for path in Containerfile _build/requirements.yml _build/bindep.txt _build/scripts/introspect.py \
            "_build/collections/$(basename "$TARBALL")"; do
  [ -s "$WORK/ee/context/$path" ] || fail "ansible-builder create: no context/$path"
done
# What ansible-builder collects from the installed collection's meta/execution-environment.yml in the image.
"$BIN/ansible-builder" introspect --sanitize "$WORK/collections" | tee "$WORK/introspect.log"
for req in pyroute2 cryptography tar; do
  grep -q "^- '$req.*# from collection boma.mesh'" "$WORK/introspect.log" || fail "introspect: no $req from boma.mesh"
done

echo "test-package: OK in $((SECONDS - START)) s"
