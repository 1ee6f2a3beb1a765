# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sam_rr and sam_leaf roles for real: ansible-playbook (connection local) against two FRRs in namespaces.

rr-a and leaf-b are inventory hosts on this machine; each has its own bgpd/zebra in a network namespace
(tests/netns harness), reached through the roles' vty-socket knobs.  The RR's enrollment service is the
launcher the role writes (sam_rr__service_manager: none, because systemd is not PID 1 here), started by this
test; leaf-b's claim is re-signed now with this test's join token and submitted by the role through the API.
Tunnels are gated off (this kernel has no ipip/fou); BGP runs between the loopback identities over a veth.
"""

import copy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from netns.harness import Topology, cleanup_stale, wait_for

from boma_mesh_utils.sam.core import payload, signing

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventories" / "cloudedge"
PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "roles.yml"
BIN = Path(sys.executable).parent
PREFIX = "bmroles"
TOKENS = {"join": "roles-join-token-7f3a9c0d1e2b", "api": "roles-api-token-5d8e1f2a3b4c",
          "admin": "roles-admin-token-9a0b1c2d3e4f"}
RR, LEAF, OWNED = "10.99.0.2", "10.255.0.32", "10.77.60.32/32"
RECAP_RE = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)"
                      r"\s+unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)"
                      r"\s+skipped=(?P<skipped>\d+)", re.MULTILINE)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access("/usr/lib/frr/bgpd", os.X_OK) or shutil.which("ip") is None,
    reason="needs root, FRR (/usr/lib/frr/bgpd) and iproute2")


def _load(path):
    return yaml.safe_load(path.read_text())


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _intent_claim(resources):
    """leaf-b's inventory claim as an intent: no joinNonce, joinTimestamp or joinHMAC (the agent signs it)."""
    out = copy.deepcopy(resources)
    claim = next(r for r in out if r["kind"] == "SAMEnrollmentClaim")
    for field in signing.SIGNED_FIELDS:
        claim["spec"].pop(field, None)
    return out


def _write_inventory(base, frrs, port):
    inv = base / "inventory"
    for sub in ("group_vars/all", "host_vars"):
        (inv / sub).mkdir(parents=True)
    shared = _load(INVENTORY / "group_vars" / "all" / "sam.yml")
    for doc in shared["sam_resources"]:
        if doc["kind"] == "SAMEnrollmentPolicy":      # the role installs the tokens here, not in /etc
            doc["spec"]["joinTokenFrom"]["file"] = str(base / "rr" / "join-tokens" / doc["metadata"]["name"])
    (inv / "group_vars" / "all" / "sam.yml").write_text(yaml.safe_dump(shared))
    (inv / "hosts.yml").write_text(yaml.safe_dump(
        {"all": {"children": {"sam_rrs": {"hosts": {"rr-a": None}}, "sam_leaves": {"hosts": {"leaf-b": None}}}}}))
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    for node, role in (("rr-a", "sam_rr"), ("leaf-b", "sam_leaf")):
        daemons = base / node / "daemons"
        daemons.parent.mkdir(parents=True, exist_ok=True)
        daemons.write_text("zebra=yes\nbgpd=no\n")
        knobs = {"frr_packages": [], "samctl_packages": [], "frr_daemons_file": str(daemons),
                 "frr_confdir": frrs[node].config_dir, "frr_vty_socket": frrs[node].vty_dir,
                 "service_manager": "none", "manage_dataplane": False}
        if role == "sam_rr":
            knobs.update(listen_address="127.0.0.1", api_port=port, reconcile_interval=1,
                         config_dir=str(base / "rr" / "etc"), state_dir=str(base / "rr" / "state"),
                         lib_dir=str(base / "rr" / "lib"), bin_dir=str(base / "rr" / "bin"), python=sys.executable)
        else:
            knobs.update(rr_urls=["http://127.0.0.1:%d" % port], state_dir=str(base / "leaf" / "state"),
                         config_dir=str(base / "leaf" / "etc"), lib_dir=str(base / "leaf" / "lib"),
                         bin_dir=str(base / "leaf" / "bin"), python=sys.executable)
        host = _load(INVENTORY / "host_vars" / ("%s.yml" % node))
        if node == "leaf-b":
            host["sam_node_resources"] = _intent_claim(host["sam_node_resources"])
        host.update(local)
        host.update({"%s__%s" % (role, key): value for key, value in knobs.items()})
        (inv / "host_vars" / ("%s.yml" % node)).write_text(yaml.safe_dump(host))
    vault = base / "vault.yml"
    policies = [d["metadata"]["name"] for d in shared["sam_resources"] if d["kind"] == "SAMEnrollmentPolicy"]
    vault.write_text(yaml.safe_dump({"vault": {"sam": {"api_token": TOKENS["api"], "admin_token": TOKENS["admin"],
                                                       "join_tokens": dict.fromkeys(policies, TOKENS["join"])}}}))
    return inv, vault


class Mesh:
    def __init__(self, base):
        self.base = base
        self.topo = Topology(base / "netns", prefix=PREFIX)
        for node, identity in (("rr-a", [RR]), ("leaf-b", [LEAF, OWNED.split("/", maxsplit=1)[0]])):
            self.topo.add_host(node)
            for addr in identity:
                self.topo.address(node, addr + "/32")
        self.topo.link("leaf-b", "rr-a", "172.31.0.0/30")
        self.topo.route("leaf-b", RR + "/32", "172.31.0.2")
        self.topo.route("rr-a", LEAF + "/32", "172.31.0.1")
        self.frr = {node: self.topo.start_frr(node, "hostname %s\n!\n" % node) for node in ("rr-a", "leaf-b")}
        self.port = _free_port()
        self.inventory, self.vault = _write_inventory(base, self.frr, self.port)
        # Our own collections path (a symlink to the working tree): .build is rebuilt by other lanes.
        (base / "collections" / "ansible_collections" / "boma").mkdir(parents=True)
        (base / "collections" / "ansible_collections" / "boma" / "mesh").symlink_to(ROOT)
        config = base / "ansible.cfg"
        config.write_text("[defaults]\nforks = 5\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        self.env.update({"ANSIBLE_CONFIG": str(config), "ANSIBLE_COLLECTIONS_PATH": str(base / "collections"),
                         "ANSIBLE_HOME": str(base / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(base / "tmp"),
                         "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0"})
        self.service = None

    def play(self, *args, playbook=PLAYBOOK, check=True):
        cmd = [str(BIN / "ansible-playbook"), "-i", str(self.inventory), "-e", "boma_vault_file=%s" % self.vault,
               *args, str(playbook)]
        start = time.monotonic()
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=600, check=False)
        proc.elapsed = time.monotonic() - start
        detail = "rc=%d\nSTDOUT:\n%s\nSTDERR:\n%s" % (proc.returncode, proc.stdout[-6000:], proc.stderr[-3000:])
        assert proc.returncode == 0 or not check, detail
        proc.recap = {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
                      for m in RECAP_RE.finditer(proc.stdout)}
        return proc

    def start_service(self):
        launcher = self.base / "rr" / "bin" / "boma-sam-rr"
        log = open(self.base / "rr-service.log", "ab")   # noqa: SIM115 - closed with the process
        self.service = subprocess.Popen([str(launcher)], stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        self.topo._track(self.service.pid)
        line = self.service.stdout.readline().decode()
        assert line.startswith("listening on"), (line, (self.base / "rr-service.log").read_text()[-3000:])

    def close(self):
        if self.service is not None:
            self.service.terminate()
            self.service.wait(timeout=10)
        self.topo.close()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    cleanup_stale(PREFIX)
    mesh = Mesh(tmp_path_factory.mktemp("roles"))
    try:
        # Install run: the service concern only (the live BGP step reads from the service, not running yet).
        mesh.install = mesh.play("--limit", "rr-a", "--tags", "service")
        mesh.start_service()
        mesh.first = mesh.play("--tags", "mesh")
        yield mesh
    finally:
        mesh.close()


def _rib(frr):
    return frr.json("show bgp ipv4 unicast json").get("routes", {})


def test_rr_install_writes_secrets_0600_and_a_working_samctl(mesh):
    rr = mesh.base / "rr"
    for path in [rr / "etc" / "api-token", rr / "etc" / "admin-token", *(rr / "join-tokens").iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert (rr / "etc" / "api-token").read_text().strip() == TOKENS["api"]
    proc = subprocess.run([str(rr / "bin" / "samctl"), "materialize", "--config", str(rr / "etc" / "rr-rr-a.json"),
                           "--node", "rr-a"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["node"] == "rr-a"


def test_leaf_enrolls_through_the_service_and_the_rr_learns_only_its_owned_32(mesh):
    wait_for(lambda: OWNED in _rib(mesh.frr["rr-a"]), timeout=60, message="leaf-b's /32 in rr-a's RIB")
    assert set(_rib(mesh.frr["rr-a"])) == {OWNED}
    running = mesh.frr["rr-a"].vtysh("show running-config")
    assert "bgp listen range %s/32 peer-group cloudedge-leaves@leaf-b" % LEAF in running
    # The inventory held an intent: the agent signed it (fresh nonce) and keeps its state 0600, without tokens.
    path = mesh.base / "leaf" / "state" / "agent-leaf-b" / "agent.json"
    state = json.loads(path.read_text())
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(state["signedClaim"]["joinNonce"]) == 32 and state["generation"] >= 1
    assert payload.verify_join_hmac(TOKENS["join"].encode(), state["signedClaim"])
    assert TOKENS["join"] not in json.dumps(state) and TOKENS["api"] not in json.dumps(state)


def test_second_run_changes_nothing(mesh):
    wait_for(lambda: OWNED in _rib(mesh.frr["rr-a"]), timeout=60, message="leaf-b's /32 in rr-a's RIB")
    second = mesh.play("--tags", "mesh")
    assert set(second.recap) == {"rr-a", "leaf-b"}
    assert all(counts["changed"] == 0 for counts in second.recap.values()), second.stdout[-6000:]
    assert "1 established" in second.stdout       # the RR's dynamic-peer summary at the end
    timing(mesh, second)


def timing(mesh, second):
    """First/second run vs a playbook of as many no-op module tasks (printed with -s; the goal is <= 1.3x)."""
    plays = []
    for host, counts in second.recap.items():
        tasks = counts["ok"] + counts["changed"] + counts["skipped"]
        plays.append({"name": "no-op " + host, "hosts": host, "gather_facts": False,
                      "tasks": [{"name": "no-op %d" % i, "ansible.builtin.ping": {}} for i in range(tasks)]})
    noop = mesh.base / "noop.yml"
    noop.write_text(yaml.safe_dump(plays))
    baseline = mesh.play(playbook=noop)
    print("\nsite --tags mesh: first %.1fs, second %.1fs; no-op %.1fs (ratio %.2f)"
          % (mesh.first.elapsed, second.elapsed, baseline.elapsed, second.elapsed / baseline.elapsed))


def test_no_token_in_vvv_output(mesh):
    proc = mesh.play("--tags", "mesh", "-vvv")
    assert all(counts["changed"] == 0 for counts in proc.recap.values())
    output = proc.stdout + proc.stderr
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output or "censored" in output
    for token in TOKENS.values():
        assert token not in output


def test_a_refused_leaf_fails_only_that_host_with_the_rrs_reason(mesh):
    """Issue 18: one leaf's refusal fails that host with the RR's reason, never the others. leaf-x claims leaf-b's
    tunnel address (a copy of leaf-b's documents under another name): the RR refuses it as a duplicate."""
    inv = mesh.inventory
    host = _load(inv / "host_vars" / "leaf-b.yml")
    claim = next(r for r in host["sam_node_resources"] if r["kind"] == "SAMEnrollmentClaim")
    claim["metadata"]["name"], claim["spec"]["leafID"] = "leaf-x", "leaf-x"
    base = mesh.base / "leaf-x"
    (base / "daemons").parent.mkdir(parents=True)
    (base / "daemons").write_text("zebra=yes\nbgpd=no\n")
    host.update({"sam_leaf__%s" % key: str(base / key) for key in ("state_dir", "config_dir", "lib_dir", "bin_dir")})
    host.update(sam_leaf__frr_daemons_file=str(base / "daemons"), sam_leaf__frr_vty_socket="",
                sam_leaf__manage_bgp=False)
    (inv / "host_vars" / "leaf-x.yml").write_text(yaml.safe_dump(host))
    hosts = _load(inv / "hosts.yml")
    hosts["all"]["children"]["sam_leaves"]["hosts"]["leaf-x"] = None
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    proc = mesh.play("--tags", "mesh", "--limit", "leaf-b,leaf-x", check=False)
    assert proc.returncode == 2, proc.stdout[-4000:]
    assert proc.recap["leaf-x"]["failed"] == 1 and proc.recap["leaf-b"]["failed"] == 0, proc.recap
    assert proc.recap["leaf-b"]["changed"] == 0, proc.stdout[-4000:]
    failure = proc.stdout[proc.stdout.index("fatal: [leaf-x]"):][:3000]
    assert "Run one agent pass" in proc.stdout[:proc.stdout.index("fatal: [leaf-x]")].rsplit("TASK [", 1)[-1]
    assert "duplicate" in failure, failure
    for token in TOKENS.values():
        assert token not in proc.stdout + proc.stderr
