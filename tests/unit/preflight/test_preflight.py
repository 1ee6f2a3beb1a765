"""samctl preflight: the review report of the example inventories, its secrets hygiene and exit codes."""

import argparse
import datetime
import io
import pathlib

import pytest
import yaml

from boma_mesh_utils.sam.cli import preflight as cli_preflight
from boma_mesh_utils.sam.preflight import markdown as preflight_md
from boma_mesh_utils.sam.preflight import review as preflight
from boma_mesh_utils.sam.preflight.review import preflight_report

ROOT = pathlib.Path(__file__).parents[3]
INVENTORIES = ROOT / "inventories"
NOW = "2026-06-28T01:00:00Z"
NOW_DT = datetime.datetime(2026, 6, 28, 1, 0, tzinfo=datetime.timezone.utc)
LATER = datetime.datetime(2026, 6, 30, tzinfo=datetime.timezone.utc)
EXPECTED = {
    "cloudedge": {
        "rr-a": ["sam-leaf-a", "sam-leaf-b", "sam-leaf-pve"], "rr-b": ["sam-leaf-a", "sam-leaf-b", "sam-leaf-pve"],
        "leaf-a": ["sam-rr-a", "sam-rr-b"], "leaf-b": ["sam-rr-a", "sam-rr-b"], "leaf-pve": ["sam-rr-a", "sam-rr-b"],
    },
    "pve-minimal": {
        "pve-rr-a": ["sam-pve-leaf-a", "sam-pve-leaf-b"], "pve-rr-b": ["sam-pve-leaf-a", "sam-pve-leaf-b"],
        "pve-leaf-a": ["sam-pve-rr-a", "sam-pve-rr-b"], "pve-leaf-b": ["sam-pve-rr-a", "sam-pve-rr-b"],
    },
}


def _parser():
    parser = argparse.ArgumentParser(prog="samctl")
    cli_preflight.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv):
    """(exit code, stdout) the way samctl main maps InputError to 2."""
    args = _parser().parse_args(argv)
    out = io.StringIO()
    try:
        return args.func(args, out), out.getvalue()
    except cli_preflight.InputError:
        return 2, out.getvalue()


def _report(name, now=NOW_DT):
    inventory = cli_preflight.load_inventory(str(INVENTORIES / name))
    names = cli_preflight.vault_names(str(ROOT / "vault" / "vault.example.yml"))
    return preflight_report(inventory, now, names)


def _section(text, title):
    body = text.split("## " + title + "\n", 1)[1]
    return body.split("\n## ", 1)[0]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_report_has_every_section_host_and_tunnel(name):
    text = _report(name)
    for title in preflight_md.SECTIONS:
        assert "\n## %s\n" % title in text
    assert "| Validation | **PASS** |" in text
    for host, tunnels in EXPECTED[name].items():
        assert "### %s (" % host in _section(text, "Expected generated state")
        assert "### %s\n\n```text\n" % host in _section(text, "Final configs")
        state = _section(text, "Expected generated state").split("### %s (" % host, 1)[1].split("\n### ", 1)[0]
        for tunnel in tunnels:
            assert "| %s |" % tunnel in state
    assert "router bgp 64577" in text


def test_cloudedge_expected_state_matches_the_runbook():
    text = _report("cloudedge")
    state = _section(text, "Expected generated state")
    rr_a = state.split("### rr-a (rr)", 1)[1].split("\n### ", 1)[0]
    assert "0 BGPPeer, 1 WireGuardPeer, 1 BGPDynamicPeer" in rr_a
    assert "| SAMEnrollmentClaim/leaf-b | leaf-b | 10.255.0.32 | 10.77.60.32/32 |" in rr_a
    leaf_b = state.split("### leaf-b (leaf)", 1)[1].split("\n### ", 1)[0]
    assert "2 TunnelInterface, 2 IPv4Route, 2 BGPPeer, 0 WireGuardPeer" in leaf_b
    assert "| sam-rr-a | fou | 5555/5555 | 10.20.0.32 → 10.10.0.2 |" in leaf_b
    hosts = _section(text, "Required hosts")
    assert "| leaf-a | leaf | `leaf-a` | 198.51.100.31 |" in hosts
    assert "leaf-b: fou 5555/5555, encryption none" in hosts
    secrets = _section(text, "Secrets")
    assert "`vault.sam.join_tokens.cloudedge-private-fou-leaves`" in secrets
    assert "/etc/boma/sam/join-tokens/cloudedge-private-fou-leaves" in secrets
    assert "`vault.netbird.setup_key`" in secrets and "**MISSING**" not in secrets
    assert "`/var/lib/boma/sam/rr-a.db`" in _section(text, "Artifacts")
    assert "- [ ] leaf-b establishes fou (no WireGuard peer) transport with encap ports 5555/5555" \
        in _section(text, "Pass/fail criteria")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_secret_value_in_report(name):
    text = _report(name)
    for token in (ROOT / "tests" / "fixtures" / "tokens").iterdir():
        value = token.read_text().strip()
        assert value and value not in text


def test_report_is_deterministic():
    assert _report("cloudedge") == _report("cloudedge")
    assert _report("pve-minimal", LATER) == _report("pve-minimal", LATER)


def test_expired_claims_are_listed_as_untested():
    text = _report("pve-minimal", LATER)
    untested = _section(text, "What remains untested")
    assert "claim `pve-leaf-a` (pve-leaf-a) expired at 2026-06-29T00:00:00Z" in untested
    assert "claim `pve-leaf-b` (pve-leaf-b) expired at 2026-06-29T00:00:00Z" in untested
    assert "No admitted claims at the evaluation time." in text
    assert "| Validation | **PASS** |" in text   # expired is skipped, not invalid
    assert "expired" not in _section(_report("pve-minimal"), "What remains untested")


def test_missing_vault_name_and_unsigned_policy_are_flagged():
    inventory = cli_preflight.load_inventory(str(INVENTORIES / "cloudedge"))
    for entry in inventory["hosts"].values():
        for res in entry["vars"]["sam_resources"]:
            if res["metadata"]["name"] == "cloudedge-leaves" and res["kind"] == "SAMEnrollmentPolicy":
                res["spec"]["joinTokenFrom"] = {"file": "/etc/boma/sam/join-tokens/renamed"}
    text = preflight_report(inventory, NOW_DT, ["vault.sam.api_token"])
    assert "**MISSING**" in _section(text, "Secrets")
    assert "/etc/boma/sam/join-tokens/renamed" in _section(text, "Artifacts")


def test_vault_files_are_not_read(tmp_path):
    inv = tmp_path / "inv"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "host_vars").mkdir()
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"sam_rrs": {"hosts": {"rr-a": None}}}}}))
    (inv / "group_vars" / "all" / "vault.yml").write_text("vault: {sam: {api_token: plaintext-oops}}\n")
    (inv / "group_vars" / "all" / "secret.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    (inv / "group_vars" / "all" / "knobs.yml").write_text("sam_rr__api_port: 9443\nsam_node: wrong\n")
    (inv / "host_vars" / "rr-a.yml").write_text("sam_node: rr-a\n")
    inventory = cli_preflight.load_inventory(str(inv))
    assert inventory["not_read"] == ["group_vars/all/secret.yml", "group_vars/all/vault.yml"]
    assert inventory["hosts"]["rr-a"]["vars"] == {"sam_rr__api_port": 9443, "sam_node": "rr-a"}
    assert inventory["hosts"]["rr-a"]["groups"] == ["sam_rrs"]


def test_group_precedence_child_over_parent_over_all(tmp_path):
    inv = tmp_path / "inv"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": {"x": "inline-all"}, "children": {
        "mesh": {"children": {"sam_leaves": {"hosts": {"leaf-a": {"y": "host"}}}}}}}}))
    (inv / "group_vars" / "all.yml").write_text("x: all\ny: all\nz: all\n")
    (inv / "group_vars" / "mesh.yml").write_text("x: mesh\ny: mesh\n")
    (inv / "group_vars" / "sam_leaves.yml").write_text("x: leaves\n")
    entry = cli_preflight.load_inventory(str(inv))["hosts"]["leaf-a"]
    assert entry["vars"] == {"x": "leaves", "y": "host", "z": "all"}
    assert entry["groups"] == ["mesh", "sam_leaves"]


def test_role_defaults_match_the_roles():
    for role, knobs in preflight.ROLE_DEFAULTS.items():
        name = "sam_rr" if role == "rr" else "sam_leaf"
        defaults = yaml.safe_load((ROOT / "roles" / name / "defaults" / "main.yml").read_text())
        assert {k: defaults[k] for k in knobs} == knobs


def test_cli_exit_codes_and_output_file(tmp_path):
    code, out = _run(["preflight", "-i", str(INVENTORIES / "cloudedge"), "--now", NOW])
    assert code == 0 and out.startswith("# Preflight report: cloudedge\n")
    target = tmp_path / "report.md"
    assert _run(["preflight", "-i", str(INVENTORIES / "cloudedge"), "--now", NOW, "-o", str(target)]) == (0, "")
    assert target.read_text() == out
    assert _run(["preflight", "-i", str(tmp_path / "missing"), "--now", NOW])[0] == 2
    assert _run(["preflight", "-i", str(INVENTORIES / "cloudedge"), "--now", "yesterday"])[0] == 2


def test_cli_exit_1_with_findings(tmp_path):
    inv = tmp_path / "broken"
    (inv / "host_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text((INVENTORIES / "cloudedge" / "hosts.yml").read_text())
    (inv / "group_vars").symlink_to(INVENTORIES / "cloudedge" / "group_vars")
    for path in (INVENTORIES / "cloudedge" / "host_vars").iterdir():
        (inv / "host_vars" / path.name).write_text(path.read_text().replace("tunnelAddress: 10.255.0.32/32",
                                                                            "tunnelAddress: 10.1.0.32/32"))
    code, out = _run(["preflight", "-i", str(inv), "--now", NOW])
    assert code == 1
    assert "| Validation | **FAIL** |" in out
    assert "| error | `SAMEnrollmentClaim/leaf-b` | `spec.tunnelAddress` | tunnel-address-prefix |" in out
    (inv / "hosts.yml").write_text("all: [not, a, mapping\n")
    assert _run(["preflight", "-i", str(inv), "--now", NOW])[0] == 2
