"""playbooks/preflight.yml (sam_preflight) through ansible-playbook on inventories/cloudedge, without a vault."""

import json
import os
import pathlib
import stat
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
PLANTED = "planted-vault-value-0c3f5e1a"


@pytest.fixture(scope="module", autouse=True)
def collection():
    subprocess.run(["make", "-C", str(REPO), "collection"], check=True, capture_output=True)


def run(tmp_path, dest, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
               ANSIBLE_RETRY_FILES_ENABLED="0")
    argv = [str(BIN / "ansible-playbook"), "-i", "inventories/cloudedge", "-e", "boma_preflight_dest=" + str(dest),
            *args, "playbooks/preflight.yml"]
    proc = subprocess.run(argv, cwd=str(REPO), env=env, capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    recaps = [line for line in proc.stdout.splitlines() if " : ok=" in line]
    assert len(recaps) == 1 and "failed=0" in recaps[0], proc.stdout[-4000:]
    return proc, int(recaps[0].split("changed=")[1].split()[0])


def test_report_written_once_then_unchanged(tmp_path):
    dest = tmp_path / "preflight-cloudedge.md"
    _proc, changed = run(tmp_path, dest, "--check")
    assert changed == 1 and not dest.exists()
    _proc, changed = run(tmp_path, dest)
    assert changed == 1 and dest.is_file()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    text = dest.read_text()
    assert text.startswith("# Preflight report: cloudedge\n")
    for host in ("rr-a", "rr-b", "leaf-a", "leaf-b", "leaf-pve"):
        assert host in text
    _proc, changed = run(tmp_path, dest)  # a new "Evaluated at" time alone is no change
    assert changed == 0 and dest.read_text() == text
    _proc, changed = run(tmp_path, dest, "--check", "--diff")
    assert changed == 0


def test_fixed_now_and_loaded_vault_never_shown(tmp_path):
    dest = tmp_path / "preflight-cloudedge.md"
    extra = tmp_path / "vault.json"
    # A loaded vault and a variable that cannot be templated without it: neither is read or shown.
    extra.write_text(json.dumps({"vault": {"sam": {"api_token": PLANTED}}, "sam_leaf__api_token": PLANTED,
                                 "boma_needs_vault": "{{ vault_not_loaded.sam.admin_token }}"}))
    args = ("-e", "boma_preflight_now=2026-06-28T01:00:00Z", "-e", "@" + str(extra))
    proc, changed = run(tmp_path, dest, *args, "-vvv")
    assert changed == 1
    text = dest.read_text()
    assert "Evaluated at `2026-06-28T01:00:00Z`" in text
    assert PLANTED not in proc.stdout + proc.stderr and PLANTED not in text
    assert '"hosts": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"' in proc.stdout  # -vvv printed the invocation
    proc, changed = run(tmp_path, dest, *args)
    assert changed == 0
