# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/check_vault.py --inventory: the names an inventory's hosts read must be present and set, names only."""

import copy
import importlib.util
import pathlib
import secrets

import pytest
import yaml

ROOT = pathlib.Path(__file__).parents[3]
_SPEC = importlib.util.spec_from_file_location("check_vault", ROOT / "tools" / "check_vault.py")
check_vault = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(check_vault)

M5 = ROOT / "inventories" / "m5"
CLOUDEDGE = ROOT / "inventories" / "cloudedge"
SECRET = "set-" + secrets.token_hex(12)


def example():
    return yaml.safe_load((ROOT / "vault" / "vault.example.yml").read_text())


def filled(doc):
    """The example with every CHANGEME set: distinct, long enough values (API and admin tokens must differ)."""
    out = copy.deepcopy(doc)
    counter = iter(range(1000))

    def fill(node):
        for key, value in node.items():
            if isinstance(value, dict):
                fill(value)
            elif value == "CHANGEME":
                node[key] = "%s-%03d" % (SECRET, next(counter))

    fill(out)
    return out


def run(monkeypatch, capsys, doc, *inventories):
    monkeypatch.setattr(check_vault, "decrypt", lambda path: yaml.safe_dump(doc))
    argv = ["check_vault.py"]
    for inventory in inventories:
        argv += ["--inventory", str(inventory)]
    code = check_vault.main([*argv, "/nonexistent/vault.yml"])
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    return code, out.out, out.err


def test_m5_needs_the_setup_key_on_both_hosts():
    inventory = check_vault.load_inventories([M5])[0]
    assert check_vault.needed(inventory) == [("vault.netbird.setup_key", "askari"),
                                             ("vault.netbird.setup_key", "ubongo")]
    assert check_vault.sam_checks(inventory) == []


def test_a_vault_older_than_the_netbird_entry_fails_for_m5(monkeypatch, capsys):
    doc = filled(example())
    del doc["vault"]["netbird"]
    code, out, _err = run(monkeypatch, capsys, doc, M5)
    assert code == 1
    assert "missing: vault.netbird.setup_key (needed by askari, ubongo)\n" in out
    # Without --inventory the same vault passes: nothing in it is CHANGEME.
    code, out, _err = run(monkeypatch, capsys, doc)
    assert code == 0


def test_m5_placeholder_is_outstanding_and_sam_placeholders_are_only_listed(monkeypatch, capsys):
    code, out, _err = run(monkeypatch, capsys, example(), M5)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "still CHANGEME: vault.netbird.setup_key (needed by askari, ubongo)"
    assert lines[1].startswith("not needed by m5, still CHANGEME: vault.sam.admin_token, vault.sam.api_token, ")
    assert "vault.sam.join_tokens.pve-wg-leaves" in lines[1]
    assert lines[-1].startswith("check-vault: 1 secret(s) m5 needs are missing or still CHANGEME")


def test_m5_passes_once_the_setup_key_is_set(monkeypatch, capsys):
    doc = example()
    doc["vault"]["netbird"]["setup_key"] = SECRET
    code, out, _err = run(monkeypatch, capsys, doc, M5)
    assert code == 0
    assert out.splitlines()[-1] == "check-vault: every secret m5 needs is set in vault.yml"


def test_sam_inventory_names_come_from_the_roles_rule(monkeypatch, capsys):
    doc = filled(example())
    del doc["vault"]["sam"]["admin_token"]
    doc["vault"]["sam"]["join_tokens"]["cloudedge-leaves"] = "CHANGEME"
    del doc["vault"]["netbird"]
    code, out, _err = run(monkeypatch, capsys, doc, CLOUDEDGE)
    assert code == 1
    assert "still CHANGEME: vault.sam.join_tokens.cloudedge-leaves (needed by leaf-pve, rr-a, rr-b)\n" in out
    assert "missing: vault.sam.admin_token (needed by rr-a, rr-b)\n" in out
    assert "netbird" not in out   # cloudedge enrols no host in the mesh


def test_both_inventories_and_a_complete_vault_pass(monkeypatch, capsys):
    code, out, _err = run(monkeypatch, capsys, filled(example()), M5, CLOUDEDGE,
                          ROOT / "inventories" / "pve-minimal")
    assert code == 0, out
    assert "every secret m5, cloudedge, pve-minimal needs is set" in out


def test_other_problems_of_the_roles_rule_are_reported_by_name(monkeypatch, capsys):
    doc = filled(example())
    doc["vault"]["sam"]["admin_token"] = doc["vault"]["sam"]["api_token"]
    code, out, _err = run(monkeypatch, capsys, doc, CLOUDEDGE)
    assert code == 1
    assert "problem: rr-a: Give these vault entries different values" in out
    assert "vault.sam.api_token, vault.sam.admin_token" in out


def test_a_key_not_taken_from_the_vault_is_not_needed(tmp_path):
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    h1: {}\n    h2: {}\n")
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "h1.yml").write_text(
        "base__mesh_enabled: true\nbase__mesh_setup_key: \"{{ lookup('env', 'NB_KEY') }}\"\n")
    (tmp_path / "host_vars" / "h2.yml").write_text("base__mesh_enabled: 'yes'\n")
    inventory = check_vault.load_inventories([tmp_path])[0]
    assert check_vault.needed(inventory) == [("vault.netbird.setup_key", "h2")]


@pytest.mark.parametrize("layout", ["no-hosts", "not-a-mapping"])
def test_unreadable_inventory_exits_2(tmp_path, monkeypatch, capsys, layout):
    if layout == "not-a-mapping":
        (tmp_path / "hosts.yml").write_text("- just\n- a list\n")
    code, _out, err = run(monkeypatch, capsys, example(), tmp_path)
    assert code == 2 and err.startswith("check-vault: ")
