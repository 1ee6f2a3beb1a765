# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Join-token rotation on the role side (issue 9), through ansible-playbook on localhost (connection local).

leaf-b's policy (cloudedge-private-fou-leaves) is rewritten to spec.joinTokens; the vault carries either the
rotation form {token id: token} or broken variants. The roles' preflights must name every missing, CHANGEME or
unlisted entry as vault.sam.join_tokens.<policy>.<id> (never a value); sam_rr's service tasks install one 0600
file per file-sourced token and remove the files of retired ids it installed (sam_rr__service_manager: none,
nothing is started); sam_leaf hands sam_enroll the tokens in the policy's order.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventories" / "cloudedge"
BIN = Path(sys.executable).parent
POLICY = "cloudedge-private-fou-leaves"
BASE = "vault.sam.join_tokens." + POLICY
TOKENS = {"v1": "rot-join-token-v1-3c9e1a7f", "v2": "rot-join-token-v2-8b2d4f60", "v0": "rot-join-token-v0-51aa0e93",
          "api": "rot-api-token-0f4e2b19", "admin": "rot-admin-token-7d1c5a82"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the role installs root-owned files (needs root)")

# One play, so that a preflight failing on rr-a does not end the run before leaf-b's.
PLAY = """
- name: Role preflights, the RR's service files, the leaf's enrollment secrets
  hosts: all
  gather_facts: false
  tasks:
    - name: RR preflight
      ansible.builtin.include_role:
        name: boma.mesh.sam_rr
        tasks_from: preflight.yml
      when: "'sam_rrs' in group_names"
    - name: RR service files
      ansible.builtin.include_role:
        name: boma.mesh.sam_rr
        tasks_from: service.yml
      when: "'sam_rrs' in group_names and boma_test_service | default(false) | bool"
    - name: Leaf preflight
      ansible.builtin.include_role:
        name: boma.mesh.sam_leaf
        tasks_from: preflight.yml
        public: true
      when: "'sam_leaves' in group_names"
    - name: The tokens sam_enroll gets, in the policy's order
      ansible.builtin.assert:
        that: >-
          _sam_leaf_secrets == (boma_test_order | map('extract', _tokens) | list if _tokens is mapping else [_tokens])
        fail_msg: sam_leaf secrets are not the vault's tokens in the policy's order
        quiet: true
      vars:
        _tokens: "{{ vault.sam.join_tokens[boma_test_policy] }}"
      when: "'sam_leaves' in group_names"
      no_log: true
"""


def _load(path):
    return yaml.safe_load(path.read_text())


class Site:
    def __init__(self, base):
        self.base = base
        self.tokens_dir = base / "rr" / "join-tokens"
        (base / "collections" / "ansible_collections" / "boma").mkdir(parents=True)
        (base / "collections" / "ansible_collections" / "boma" / "mesh").symlink_to(ROOT)
        (base / "play.yml").write_text(PLAY)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        self.env.update({"ANSIBLE_COLLECTIONS_PATH": str(base / "collections"), "ANSIBLE_NOCOLOR": "1",
                         "ANSIBLE_HOME": str(base / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(base / "tmp"),
                         "ANSIBLE_RETRY_FILES_ENABLED": "0"})
        self.outputs = []

    def inventory(self, join_tokens):
        """The cloudedge documents for rr-a and leaf-b, with POLICY's spec.joinTokens replaced."""
        inv = self.base / "inventory"
        for sub in ("group_vars/all", "host_vars"):
            (inv / sub).mkdir(parents=True, exist_ok=True)
        shared = _load(INVENTORY / "group_vars" / "all" / "sam.yml")
        for doc in shared["sam_resources"]:
            if doc["kind"] != "SAMEnrollmentPolicy":
                continue
            doc["spec"].pop("joinTokenFrom", None)
            if doc["metadata"]["name"] == POLICY:
                doc["spec"]["joinTokens"] = join_tokens
            else:   # the other policies: env-sourced (not installed by the role, not checked by the RR)
                doc["spec"]["joinTokenFrom"] = {"env": "SAM_JOIN_TOKEN"}
        (inv / "group_vars" / "all" / "sam.yml").write_text(yaml.safe_dump(shared))
        (inv / "hosts.yml").write_text(yaml.safe_dump(
            {"all": {"children": {"sam_rrs": {"hosts": {"rr-a": None}}, "sam_leaves": {"hosts": {"leaf-b": None}}}}}))
        local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        rr = {"sam_rr__service_manager": "none", "sam_rr__config_dir": str(self.base / "rr" / "etc"),
              "sam_rr__state_dir": str(self.base / "rr" / "state"), "sam_rr__lib_dir": str(self.base / "rr" / "lib"),
              "sam_rr__bin_dir": str(self.base / "rr" / "bin"), "sam_rr__python": sys.executable,
              "sam_rr__samctl_packages": []}
        for node, knobs in (("rr-a", rr), ("leaf-b", {"sam_leaf__rr_urls": ["http://127.0.0.1:9"]})):
            host = _load(INVENTORY / "host_vars" / ("%s.yml" % node))
            host.update(local, **knobs)
            (inv / "host_vars" / ("%s.yml" % node)).write_text(yaml.safe_dump(host))
        return inv

    def play(self, join_tokens, vault_tokens, order=(), service=False, api=TOKENS["api"], admin=TOKENS["admin"]):
        inv = self.inventory(join_tokens)
        vault = self.base / "vault.yml"
        vault.write_text(yaml.safe_dump({"vault": {"sam": {
            "api_token": api, "admin_token": admin,
            "join_tokens": {POLICY: vault_tokens}}}}, sort_keys=False))
        extra = {"boma_vault_file": str(vault), "boma_test_service": service, "boma_test_order": list(order),
                 "boma_test_policy": POLICY}
        (self.base / "extra.json").write_text(json.dumps(extra))
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inv), "-e", "@%s" % (self.base / "extra.json"),
                               str(self.base / "play.yml")], env=self.env, capture_output=True, text=True,
                              timeout=600, check=False)
        proc.output = proc.stdout + proc.stderr
        self.outputs.append(proc.output)
        return proc

    def token_entry(self, tid, **extra):
        return dict({"id": tid, "file": str(self.tokens_dir / ("%s-%s" % (POLICY, tid)))}, **extra)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = Site(tmp_path_factory.mktemp("rotation"))
    yield site
    for output in site.outputs:
        for value in TOKENS.values():
            assert value not in output


def test_rotation_vault_passes_installs_each_file_token_and_orders_the_leaf_secrets(site):
    tokens = [site.token_entry("v1", notAfter="2030-01-01T00:00:00Z"), site.token_entry("v2"),
              {"id": "from-env", "env": "SAM_JOIN_TOKEN_NEXT"}]
    # The vault's order differs from the policy's: the leaf must follow the policy.
    vault = {"from-env": "rot-env-token", "v2": TOKENS["v2"], "v1": TOKENS["v1"]}
    proc = site.play(tokens, vault, order=["v1", "v2", "from-env"], service=True)
    assert proc.returncode == 0, proc.output[-4000:]
    assert site.tokens_dir.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in site.tokens_dir.iterdir()) == ["%s-v1" % POLICY, "%s-v2" % POLICY]
    for tid in ("v1", "v2"):
        path = site.tokens_dir / ("%s-%s" % (POLICY, tid))
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text() == TOKENS[tid] + "\n"
    manifest = json.loads((site.base / "rr" / "etc" / "join-tokens.installed.json").read_text())
    assert manifest == {"files": sorted(str(site.tokens_dir / ("%s-%s" % (POLICY, t))) for t in ("v1", "v2"))}

    # v1 retired: its file goes, a file the role did not install stays.
    foreign = site.tokens_dir / "operator-file"
    foreign.write_text("not the role's\n")
    proc = site.play([site.token_entry("v2")], {"v2": TOKENS["v2"]}, order=["v2"], service=True)
    assert proc.returncode == 0, proc.output[-4000:]
    assert sorted(p.name for p in site.tokens_dir.iterdir()) == ["%s-v2" % POLICY, "operator-file"]


def test_string_vault_is_the_default_token(site):
    proc = site.play([site.token_entry("default")], TOKENS["v1"], order=[])
    assert proc.returncode == 0, proc.output[-4000:]


@pytest.mark.parametrize(("vault", "message", "names"), [
    ({"v1": TOKENS["v1"]}, "Set these vault entries (not CHANGEME)", ["v2"]),
    ({"v1": TOKENS["v1"], "v2": "CHANGEME"}, "Set these vault entries (not CHANGEME)", ["v2"]),
    ({"v1": "", "v2": "CHANGEME"}, "Set these vault entries (not CHANGEME)", ["v1", "v2"]),
    ({"v1": TOKENS["v1"], "v2": TOKENS["v2"], "v0": TOKENS["v0"]}, "list their token id", ["v0"]),
    (TOKENS["v1"], "a mapping {token id: token}", [""]),
    (None, "Set these vault entries (not CHANGEME)", ["v1", "v2"]),
], ids=["missing-id", "changeme", "empty-and-changeme", "unlisted-id", "string-for-two-ids", "absent"])
def test_preflight_names_each_bad_entry_in_both_roles(site, vault, message, names):
    vault_tokens = vault if vault is not None else {}
    proc = site.play([site.token_entry("v1"), site.token_entry("v2")], vault_tokens, order=["v1", "v2"])
    assert proc.returncode != 0
    for host in ("rr-a", "leaf-b"):
        failure = [line for line in proc.stdout.splitlines() if line.startswith("fatal: [%s]" % host)]
        assert failure, proc.output[-4000:]
        assert message in failure[0]
        for name in names:
            assert (BASE + ("." + name if name else "")) in failure[0]


def _fatal(proc, host):
    return [line for line in proc.stdout.splitlines() if line.startswith("fatal: [%s]" % host)]


def test_preflight_refuses_one_token_for_leaves_and_admins_on_the_rr(site):
    proc = site.play([site.token_entry("default")], TOKENS["v1"], api=TOKENS["api"], admin=TOKENS["api"])
    assert proc.returncode != 0
    failure = _fatal(proc, "rr-a")
    assert failure, proc.output[-4000:]
    assert "Give these vault entries different values (one token for leaves and admins makes every leaf an " \
           "admin): vault.sam.api_token, vault.sam.admin_token." in failure[0]
    assert not _fatal(proc, "leaf-b"), proc.output[-4000:]   # a leaf checks only its API token


def test_preflight_refuses_a_short_api_token_in_both_roles(site):
    short = "short-api-tok15"
    proc = site.play([site.token_entry("default")], TOKENS["v1"], api=short)
    assert proc.returncode != 0
    for host in ("rr-a", "leaf-b"):
        failure = _fatal(proc, host)
        assert failure, proc.output[-4000:]
        assert "Make these vault entries at least 16 characters long" in failure[0]
        assert "vault.sam.api_token." in failure[0] and "vault.sam.admin_token" not in failure[0]
    assert short not in proc.output
