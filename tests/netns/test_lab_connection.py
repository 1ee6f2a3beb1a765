# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boma.mesh.netns connection against two lab namespaces (tools/lab/topology.py, inventories/lab).

Runs the lab inventory as it is, with a private prefix (-e lab_netns_prefix) so a developer's running
`boma-lab` is never touched, and a private collections path (a symlink to the tree; .build is rebuilt by
other lanes while this runs).
"""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "lab"))
import topology  # noqa: E402 - tools/lab is not a package

INVENTORY = ROOT / "inventories" / "lab"
PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "lab_route.yml"
BIN = Path(sys.executable).parent
HOSTS = ["rr-a", "leaf-b"]
RECAP_RE = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)"
                      r"\s+unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)", re.MULTILINE)


class Lab:
    def __init__(self, base):
        self.prefix = "bmlab%s" % secrets.token_hex(3)
        self.lab = topology.load(INVENTORY, self.prefix)
        (base / "collections" / "ansible_collections" / "boma").mkdir(parents=True)
        (base / "collections" / "ansible_collections" / "boma" / "mesh").symlink_to(ROOT)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        (base / "ansible.cfg").write_text("[defaults]\nforks = 5\n")
        self.env.update({"ANSIBLE_CONFIG": str(base / "ansible.cfg"),
                         "ANSIBLE_COLLECTIONS_PATH": str(base / "collections"), "ANSIBLE_HOME": str(base / "home"),
                         "ANSIBLE_LOCAL_TEMP": str(base / "tmp"), "ANSIBLE_NOCOLOR": "1",
                         "ANSIBLE_RETRY_FILES_ENABLED": "0"})

    def ns(self, host):
        return topology.ns_name(self.lab, host)

    def _run(self, tool, args, prefix=None, check=True):
        cmd = [str(BIN / tool), "-i", str(INVENTORY), "-e", "lab_netns_prefix=%s" % (prefix or self.prefix), *args]
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=300, check=False)
        if check:
            assert proc.returncode == 0, "rc=%d\n%s\n%s" % (proc.returncode, proc.stdout[-5000:], proc.stderr[-3000:])
        return proc

    def adhoc(self, host, module, args, **kw):
        """One module on one host; returns (proc, result dict) from the one-line output."""
        proc = self._run("ansible", [host, "-o", "-m", module, "-a", args], **kw)
        match = re.search(r"=> (\{.*\})\s*$", proc.stdout, re.MULTILINE)
        return proc, (json.loads(match.group(1)) if match else {})

    def command(self, host, args):
        """stdout of a command module run (one line: -o prints command results as `| (stdout) ...`)."""
        proc, _result = self.adhoc(host, "ansible.builtin.command", args)
        match = re.search(r"\| rc=0 \| \(stdout\) (.*)$", proc.stdout, re.MULTILINE)
        assert match, proc.stdout
        return match.group(1)

    def play(self, playbook):
        proc = self._run("ansible-playbook", ["--limit", ",".join(HOSTS), str(playbook)])
        return {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
                for m in RECAP_RE.finditer(proc.stdout)}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("lab"))
    try:
        assert topology.up(lab.lab, HOSTS) == HOSTS
        assert topology.up(lab.lab, HOSTS) == []          # idempotent
        yield lab
    finally:
        topology.down(lab.lab)
    left = [name for name in topology._netns_list() if name.startswith(lab.prefix + "-")]
    assert not left and not (Path("/run") / lab.prefix).exists(), left


def _python(code):
    return "%s -c %s" % (sys.executable, json.dumps(code))


def test_tasks_run_inside_the_hosts_namespace(lab):
    # Read with the module's own Python through netlink: each host sees only its own underlay addresses.
    code = ("from pyroute2 import IPRoute; import os; ipr = IPRoute(); "
            "print(sorted(a.get_attr('IFA_ADDRESS') for a in ipr.get_addr(family=2)), "
            "os.readlink('/proc/self/ns/net'))")
    seen = {}
    for host in HOSTS:
        addrs, ns = lab.command(host, _python(code)).rsplit(" ", 1)
        seen[host] = addrs
        assert ns == "net:[%d]" % os.stat("/run/netns/%s" % lab.ns(host)).st_ino
    assert seen["rr-a"] == str(["10.10.0.2", "10.20.0.2", "127.0.0.1"])
    assert seen["leaf-b"] == str(["10.20.0.32", "127.0.0.1"])
    # And the underlay works from inside: leaf-b reaches rr-a's private endpoint through the underlay router.
    lab.command("leaf-b", "ping -c1 -W2 10.10.0.2")


def test_become_to_root_needs_no_sudo(lab):
    # sudo is not installed here: become root -> root is skipped because the connection runs as root.
    proc = lab._run("ansible", ["rr-a", "-o", "-b", "-m", "ansible.builtin.command", "-a", "id -u"])
    assert "rc=0 | (stdout) 0" in proc.stdout, proc.stdout


def test_missing_namespace_is_unreachable_with_a_clear_message(lab):
    missing = lab.prefix + "x"
    proc, _result = lab.adhoc("leaf-b", "ansible.builtin.ping", "", prefix=missing, check=False)
    assert proc.returncode != 0
    assert "UNREACHABLE" in proc.stdout
    expected = "network namespace %s-leaf-b does not exist (/run/netns/%s-leaf-b)" % (missing, missing)
    assert expected in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_put_file_and_fetch_file(lab, tmp_path):
    src, remote, back = tmp_path / "src.txt", tmp_path / "remote" / "copied.txt", tmp_path / "back"
    src.write_text("lab %s\n" % lab.prefix)
    remote.parent.mkdir()
    _proc, result = lab.adhoc("rr-a", "ansible.builtin.copy", "src=%s dest=%s mode=0600" % (src, remote))
    assert result["changed"] is True and remote.read_text() == src.read_text()
    assert remote.stat().st_mode & 0o777 == 0o600
    lab.adhoc("rr-a", "ansible.builtin.fetch", "src=%s dest=%s/ flat=true" % (remote, back))
    assert (back / "copied.txt").read_text() == src.read_text()


def _ip(ns, *args):
    argv = ["ip", "-j", *args] if ns is None else ["ip", "-n", ns, "-j", *args]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout or "[]")


def test_playbook_with_our_module_is_idempotent_and_stays_in_its_namespace(lab):
    first = lab.play(PLAYBOOK)
    assert first["leaf-b"]["changed"] == 1 and first["leaf-b"]["failed"] == 0, first
    second = lab.play(PLAYBOOK)
    assert second["leaf-b"]["changed"] == 0 and second["leaf-b"]["failed"] == 0, second
    routes = [r["dst"] for r in _ip(lab.ns("leaf-b"), "route", "show")]
    assert "10.99.0.2" in routes
    lo = [a["local"] for i in _ip(lab.ns("leaf-b"), "addr", "show", "dev", "lo") for a in i["addr_info"]]
    assert "10.77.60.32" in lo
    # Nowhere else: not in rr-a, not on this machine.
    for ns in (lab.ns("rr-a"), None):
        assert "10.99.0.2" not in [r["dst"] for r in _ip(ns, "route", "show")]
        assert "10.77.60.32" not in [a["local"] for i in _ip(ns, "addr", "show", "dev", "lo") for a in i["addr_info"]]
