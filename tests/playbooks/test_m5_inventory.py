# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""inventories/m5 (seed 002): `site.yml --tags mesh` reaches base's mesh concern and nothing else, and preflight passes.

The seed enrols the control node ubongo with `--tags mesh` and relies on that run leaving its firewall and sshd
alone. `--list-tasks` cannot prove it on its own: it shows an `include_tasks`/`include_role` but not what it
pulls in. So the run itself is recorded task by task (a callback writes every result with its source file) on
both hosts, redirected to a local connection with the live step gated off (`base__mesh_manage: false`, the fake
`netbird` on PATH); every task must come from base's preflight/mesh files, netbird_agent or the vault load.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support.worktree import worktree_env

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
INVENTORY = ROOT / "inventories" / "m5"
HOSTS = {"ubongo", "askari"}
FAKE_NETBIRD = ROOT / "tests" / "fixtures" / "netbird" / "netbird"
# What the mesh concern is made of: base's preflight and mesh*.yml files (main.yml holds their includes) and
# the role it delegates to. A firewall, sshd or SAM task would come from any other file.
ALLOWED_FILES = ("roles/base/tasks/main.yml", "roles/base/tasks/preflight.yml")
ALLOWED_MESH = re.compile(r"roles/base/tasks/mesh(_[a-z_]+)?\.yml")
ALLOWED_DIRS = ("roles/netbird_agent/",)
ALLOWED_ROLES = {"base", "netbird_agent", "boma.mesh.base", "boma.mesh.netbird_agent"}

RECORDER = '''
import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "m5_record"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, status):
        task = result.task
        entry = {"host": result.host.get_name(), "task": task.get_name(), "action": task.action,
                 "role": task._role.get_name() if task._role else None, "path": task.get_path() or "",
                 "status": status, "changed": result.is_changed()}
        with open(os.environ["M5_RECORD"], "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    # Our own collections path (a symlink to the working tree), as test_site.py: .build is rebuilt by other lanes.
    base = tmp_path_factory.mktemp("m5")
    return worktree_env(base, ANSIBLE_LOCAL_TEMP=str(base / "tmp"), ANSIBLE_RETRY_FILES_ENABLED="0")


def playbook(env, *args, timeout=300):
    argv = [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), str(ROOT / "playbooks" / "site.yml"), *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def source(path):
    """A task's file relative to the collection root (the run sees it through the symlinked collections path)."""
    path = path.rsplit(":", 1)[0]
    marker = "ansible_collections/boma/mesh/"
    if marker in path:
        return path.split(marker, 1)[1]
    return path[len(str(ROOT)) + 1:] if path.startswith(str(ROOT) + "/") else path


def allowed(event):
    rel = source(event["path"])
    if event["action"] == "ansible.builtin.include_vars" and rel == "playbooks/site.yml":
        return True  # the vault load
    if event["action"] == "ansible.builtin.validate_argument_spec" and event["role"] in ALLOWED_ROLES:
        return True  # base's and netbird_agent's argument validation, which Ansible places at the play
    return rel in ALLOWED_FILES or bool(ALLOWED_MESH.fullmatch(rel)) or rel.startswith(ALLOWED_DIRS)


def plays(listing):
    """[(pattern, hosts, tasks)] from `--list-hosts --list-tasks` output."""
    out, section = [], None
    for line in listing.splitlines():
        text = line.strip()
        if line.startswith("  play #"):
            out.append({"hosts": [], "tasks": []})
        elif not out or not text:
            continue
        elif text.startswith("hosts ("):
            section = "hosts"
        elif text == "tasks:":
            section = "tasks"
        elif section and line.startswith("      "):
            out[-1][section].append(text.split("\tTAGS:")[0] if section == "tasks" else text)
    return out


def test_inventory_shape():
    hosts = yaml.safe_load((INVENTORY / "hosts.yml").read_text())["all"]["children"]
    assert set(hosts) == {"boma_hosts"}, "m5 hosts must stay out of the SAM groups (sam_rrs, sam_leaves)"
    assert set(hosts["boma_hosts"]["hosts"]) == HOSTS
    knobs = yaml.safe_load((INVENTORY / "group_vars" / "boma_hosts" / "mesh.yml").read_text())
    assert knobs["base__mesh_enabled"] is True and knobs["base__mesh_manage"] is True
    assert "vault.netbird.setup_key" in knobs["base__mesh_setup_key"]
    defaults = yaml.safe_load((ROOT / "roles" / "base" / "defaults" / "main.yml").read_text())
    assert set(knobs) <= set(defaults), "every m5 knob is one of base's"
    askari = yaml.safe_load((INVENTORY / "host_vars" / "askari.yml").read_text())
    assert askari["base__mesh_management_url"] == "https://netbird.askari.wingu.me"
    assert "setup_key" in yaml.safe_load((ROOT / "vault" / "vault.example.yml").read_text())["vault"]["netbird"]


def test_tags_mesh_lists_only_base_on_the_m5_hosts(env):
    proc = playbook(env, "--tags", "mesh", "--list-hosts", "--list-tasks")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = plays(proc.stdout)
    assert len(listed) == 4, proc.stdout
    busy = [p for p in listed if p["hosts"]]
    assert all(set(p["hosts"]) == HOSTS for p in busy)
    # The SAM plays match no m5 host, so their `mesh`-tagged tasks never run here.
    idle = [p["tasks"][0].split(" : ")[0] for p in listed if not p["hosts"]]
    assert idle == ["boma.mesh.sam_rr", "boma.mesh.sam_leaf"]
    tasks = [t for p in busy for t in p["tasks"]]
    assert tasks[0].startswith("Load the vault")
    assert all(t.startswith("boma.mesh.base : ") for t in tasks[1:]), tasks
    assert "boma.mesh.base : Mesh concern (NetBird agent enrolment)" in tasks


def test_tags_mesh_runs_nothing_but_the_mesh_concern(env, tmp_path):
    plugins = tmp_path / "callbacks"
    plugins.mkdir()
    (plugins / "m5_record.py").write_text(RECORDER)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy(FAKE_NETBIRD, bindir / "netbird")
    record = tmp_path / "record.jsonl"
    vault = tmp_path / "vault.yml"
    vault.write_text(yaml.safe_dump({"vault": {"netbird": {"setup_key": "nbkey-m5-test-0d5e"}}}))
    # Both hosts run here; become stays off so a non-root runner works too.
    extra = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
             "base__mesh_manage": False, "boma_vault_file": str(vault)}
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    run_env = dict(env, ANSIBLE_CALLBACK_PLUGINS=str(plugins), ANSIBLE_CALLBACKS_ENABLED="m5_record",
                   M5_RECORD=str(record), NETBIRD_FAKE_STATE=str(tmp_path / "state.json"),
                   NETBIRD_FAKE_LOG=str(tmp_path / "calls.jsonl"), PATH="%s:%s" % (bindir, env["PATH"]))
    proc = playbook(run_env, "--tags", "mesh", "-e", "@%s" % (tmp_path / "extra.json"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    events = [json.loads(line) for line in record.read_text().splitlines()]
    assert {e["host"] for e in events} == HOSTS
    assert not [e for e in events if e["status"] in ("failed", "unreachable")]

    assert [e for e in events if not allowed(e)] == []
    ran = {(e["host"], e["task"].split(" : ")[-1]) for e in events}
    for host in HOSTS:
        assert (host, "Check the mesh settings of an enrolling host") in ran
        assert (host, "Enrol with the management service") in ran
    # Plan mode: the fake agent was asked for its status and nothing was changed on either host.
    assert not [e for e in events if e["changed"]]
    calls = [json.loads(line)["argv"] for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert calls and all(argv[0] == "status" for argv in calls), calls


@pytest.mark.parametrize(("path", "action", "role", "ok"), [
    ("/c/ansible_collections/boma/mesh/roles/base/tasks/mesh.yml:4", "ansible.builtin.include_role", "boma.mesh.base",
     True),
    ("/c/ansible_collections/boma/mesh/roles/base/tasks/mesh_verify.yml:4", "boma.mesh.netbird_info",
     "boma.mesh.base", True),
    ("/c/ansible_collections/boma/mesh/roles/base/tasks/meshfirewall.yml:4", "ansible.builtin.template",
     "boma.mesh.base", False),
    ("/c/ansible_collections/boma/mesh/roles/netbird_agent/tasks/install.yml:9", "ansible.builtin.apt",
     "boma.mesh.netbird_agent", True),
    # A future firewall or sshd concern of base, or any SAM role, must not answer to --tags mesh on these hosts.
    ("/c/ansible_collections/boma/mesh/roles/base/tasks/firewall.yml:2", "ansible.builtin.template",
     "boma.mesh.base", False),
    ("/c/ansible_collections/boma/mesh/roles/base/tasks/sshd.yml:2", "ansible.builtin.lineinfile", "boma.mesh.base",
     False),
    ("/c/ansible_collections/boma/mesh/roles/sam_leaf/tasks/main.yml:3", "ansible.builtin.include_tasks",
     "boma.mesh.sam_leaf", False),
    ("/r/playbooks/site.yml:15", "ansible.builtin.validate_argument_spec", "boma.mesh.sam_rr", False),
])
def test_allowed_sources(path, action, role, ok):
    assert allowed({"path": path, "action": action, "role": role}) is ok


def test_preflight_passes_without_sam_hosts(tmp_path):
    out = tmp_path / "preflight-m5.md"
    proc = subprocess.run([str(BIN / "samctl"), "preflight", "-i", str(INVENTORY), "-o", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = out.read_text()
    assert "| Validation | **PASS** |" in text and "| Errors / warnings | 0 /" in text
    assert "| `vault.netbird.setup_key` |" in text and "used on askari, ubongo" in text


def test_preflight_playbook_passes_on_m5(env, tmp_path):
    dest = tmp_path / "preflight-m5.md"
    argv = [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "-e", "boma_preflight_dest=%s" % dest,
            str(ROOT / "playbooks" / "preflight.yml")]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    text = dest.read_text()
    assert text.startswith("# Preflight report: m5\n") and "| Validation | **PASS** |" in text
    assert "used on askari, ubongo" in text


def test_check_vault_covers_the_m5_names_on_a_real_vault(tmp_path):
    """An encrypted vault made before the NetBird entry existed: `make check-vault INVENTORY=inventories/m5` fails."""
    password = tmp_path / "vault-pass"
    password.write_text("pw-" + os.urandom(8).hex() + "\n")
    password.chmod(0o600)
    value = "s3cr3t-" + os.urandom(8).hex()
    plain = tmp_path / "vault.plain"
    plain.write_text(yaml.safe_dump({"vault": {"sam": {"api_token": value}}}))
    vault = tmp_path / "vault.yml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(password), "--output",
                    str(vault), str(plain)], check=True, env=env, capture_output=True)
    env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(password)
    check = [sys.executable, str(ROOT / "tools" / "check_vault.py")]
    proc = subprocess.run([*check, str(vault)], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr   # nothing in it is CHANGEME
    proc = subprocess.run([*check, "--inventory", str(INVENTORY), str(vault)], env=env, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 1
    assert "missing: vault.netbird.setup_key (needed by askari, ubongo)\n" in proc.stdout
    assert value not in proc.stdout + proc.stderr
