# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""check-vault on real ansible-vault files, and the NetBird setup key never in -vvv playbook output."""

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".build"
BIN = Path(sys.executable).parent
CHECK_VAULT = ROOT / "tools" / "check_vault.py"
FAKE_NETBIRD = ROOT / "tests" / "fixtures" / "netbird" / "netbird"


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(PATH="%s:%s" % (BIN, os.environ["PATH"]), ANSIBLE_HOME=str(BUILD / "ansible-home"),
               ANSIBLE_LOCAL_TEMP=str(BUILD / "ansible-tmp"), ANSIBLE_NOCOLOR="1")
    env.update(extra)
    return env


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "vault-pass"
    path.write_text(secrets.token_hex(16) + "\n")
    path.chmod(0o600)
    return path


def encrypt(doc, path, password_file):
    plain = path.with_suffix(".plain")
    plain.write_text(yaml.safe_dump(doc))
    subprocess.run([BIN / "ansible-vault", "encrypt", "--vault-password-file", str(password_file),
                    "--output", str(path), str(plain)], check=True, env=clean_env(), capture_output=True)
    plain.unlink()
    return path


def check_vault(path, password_file=None):
    env = clean_env()
    if password_file is not None:
        env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(password_file)
    return subprocess.run([sys.executable, str(CHECK_VAULT), str(path)], check=False, env=env,
                          capture_output=True, text=True)


def test_example_vault_lists_every_changeme_name(tmp_path, password_file):
    example = yaml.safe_load((ROOT / "vault" / "vault.example.yml").read_text())
    vault = encrypt(example, tmp_path / "vault.yml", password_file)
    proc = check_vault(vault, password_file)
    assert proc.returncode == 1
    for name in ("vault.netbird.setup_key", "vault.sam.api_token", "vault.sam.admin_token",
                 "vault.sam.join_tokens.cloudedge-private-fou-leaves", "vault.sam.join_tokens.pve-fou-leaves"):
        assert "still CHANGEME: %s\n" % name in proc.stdout


def test_example_vault_names_every_inventory_policy():
    example = yaml.safe_load((ROOT / "vault" / "vault.example.yml").read_text())
    policies = set()
    for path in ROOT.glob("inventories/*/group_vars/all/sam.yml"):
        docs = yaml.safe_load(path.read_text())["sam_resources"]
        policies |= {d["metadata"]["name"] for d in docs if d["kind"] == "SAMEnrollmentPolicy"}
    assert policies and policies <= set(example["vault"]["sam"]["join_tokens"])


def test_partly_filled_vault_lists_names_not_values(tmp_path, password_file):
    value = "s3cr3t-" + secrets.token_hex(8)
    doc = {"vault": {"netbird": {"setup_key": value}, "sam": {"api_token": "CHANGEME", "admin_token": value}}}
    proc = check_vault(encrypt(doc, tmp_path / "vault.yml", password_file), password_file)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == "still CHANGEME: vault.sam.api_token"
    assert value not in proc.stdout + proc.stderr


def test_complete_vault_passes_without_printing_values(tmp_path, password_file):
    value = "s3cr3t-" + secrets.token_hex(8)
    doc = {"vault": {"netbird": {"setup_key": value}, "sam": {"join_tokens": {"p": value}, "api_token": value}}}
    proc = check_vault(encrypt(doc, tmp_path / "vault.yml", password_file), password_file)
    assert proc.returncode == 0, proc.stderr
    assert value not in proc.stdout + proc.stderr


def test_rotation_form_vault_lists_token_ids_not_values(tmp_path, password_file):
    value = "s3cr3t-" + secrets.token_hex(8)
    doc = {"vault": {"sam": {"api_token": value, "join_tokens": {
        "cloudedge-leaves": {"default": value, "2026-07": "CHANGEME"}, "pve-fou-leaves": value}}}}
    proc = check_vault(encrypt(doc, tmp_path / "vault.yml", password_file), password_file)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == "still CHANGEME: vault.sam.join_tokens.cloudedge-leaves.2026-07"
    assert "cloudedge-leaves.default" not in proc.stdout and value not in proc.stdout + proc.stderr


def test_plaintext_vault_is_refused(tmp_path, password_file):
    plain = tmp_path / "vault.yml"
    plain.write_text("vault:\n  netbird:\n    setup_key: plain-value-123\n")
    proc = check_vault(plain, password_file)
    assert proc.returncode == 2 and "not ansible-vault encrypted" in proc.stderr
    assert "plain-value-123" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("password", ["unset", "missing", "wrong"])
def test_unusable_password_file_fails_clearly(tmp_path, password_file, password):
    vault = encrypt({"vault": {"x": "CHANGEME"}}, tmp_path / "vault.yml", password_file)
    if password == "missing":
        password_file = tmp_path / "nope"
    elif password == "wrong":
        password_file.write_text("not-the-password\n")
    proc = check_vault(vault, None if password == "unset" else password_file)
    assert proc.returncode == 2
    assert {"unset": "is not set", "missing": "does not exist", "wrong": "cannot be decrypted"}[password] in proc.stderr


@pytest.fixture(scope="module")
def collection():
    subprocess.run(["make", "-s", "collection"], cwd=ROOT, check=True, capture_output=True)
    return BUILD


PLAY = """
- name: base (mesh concern) and netbird_agent, planning against a fake agent
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: boma.mesh.base
    - role: boma.mesh.netbird_agent
      netbird_agent__setup_key_via: file
"""


def test_roles_never_print_the_setup_key_at_vvv(collection, tmp_path):
    key = "nbkey-" + secrets.token_hex(12)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy(FAKE_NETBIRD, bindir / "netbird")
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"daemon": "Connected", "connected": True, "url": "https://old.example:443"}))
    extra = {"ansible_python_interpreter": sys.executable, "base__mesh_enabled": True, "base__mesh_manage": False,
             "netbird_agent__manage": False, "netbird_agent__management_url": "https://netbird.test.example",
             "base__mesh_management_url": "https://netbird.test.example", "vault": {"netbird": {"setup_key": key}}}
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    (tmp_path / "play.yml").write_text(PLAY)
    env = clean_env(ANSIBLE_COLLECTIONS_PATH=str(collection), NETBIRD_FAKE_STATE=str(state),
                    NETBIRD_FAKE_LOG=str(tmp_path / "calls.jsonl"))
    env["PATH"] = "%s:%s" % (bindir, env["PATH"])
    argv = [BIN / "ansible-playbook", "-vvv", "-i", "localhost,", "-e", "@%s" % (tmp_path / "extra.json"),
            "-e", "netbird_agent__setup_key=%s" % key, str(tmp_path / "play.yml")]
    proc = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "management-url-drift" in output, "the plan must have read the fake agent's status"
    assert key not in output
    assert key not in (tmp_path / "calls.jsonl").read_text()
