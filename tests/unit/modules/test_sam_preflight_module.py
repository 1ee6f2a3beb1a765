"""sam_preflight runs in-process: check mode, idempotency with the timestamp ignored, secrets, fail_on_errors."""

import copy
import importlib
import os
import re
import stat
from pathlib import Path

import pytest
import yaml
from inprocess import collection_on_path, run_module

from boma_mesh_utils.sam.cli import preflight as cli_preflight
from boma_mesh_utils.sam.core.fields import parse_time
from boma_mesh_utils.sam.preflight import review as preflight_module

_COLLECTION_BASE = collection_on_path()
ROOT = Path(__file__).resolve().parents[3]
NOW = "2026-06-28T01:00:00Z"
VAULT_SECRET = "vault-planted-secret-4f1c2b9e"
KNOB_SECRET = "knob-planted-secret-77aa0d"
OLD_TIME = "2026-11-01T00:00:00Z"


def cloudedge_hosts():
    return copy.deepcopy(cli_preflight.load_inventory(str(ROOT / "inventories" / "cloudedge"))["hosts"])


def hostvars_like(hosts):
    """What a playbook passing whole hostvars would send: a loaded vault and Ansible's own variables."""
    hosts = copy.deepcopy(hosts)
    for name, entry in hosts.items():
        entry["groups"] = entry["groups"] + ["all"]
        entry["vars"].update({
            "vault": {"sam": {"api_token": VAULT_SECRET, "join_tokens": {"cloudedge-leaves": VAULT_SECRET}}},
            "sam_rr__api_token": KNOB_SECRET, "ansible_password": VAULT_SECRET,
            "inventory_hostname": name, "group_names": entry["groups"], "ansible_port": 22, "ansible_forks": 5,
        })
    return hosts


def preflight(args, check=False, diff=True):
    full = {"name": "cloudedge", "hosts": cloudedge_hosts(), "vault_names": ["vault.sam.api_token"]}
    full.update(args)
    return run_module("sam_preflight", full, check=check, diff=diff)


def test_check_mode_writes_nothing_then_writes_then_idempotent(tmp_path):
    dest = tmp_path / "preflight.md"
    result, _raw = preflight({"dest": str(dest)}, check=True)
    assert result["changed"] and not result.get("failed") and result["valid"]
    assert not dest.exists()
    assert result["diff"]["before"] == "" and result["diff"]["after"] == result["report"]
    result, _raw = preflight({"dest": str(dest)})
    assert result["changed"] and result["dest"] == str(dest)
    assert dest.read_text() == result["report"]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    assert result["report"].startswith("# Preflight report: cloudedge\n")
    assert not [p for p in tmp_path.iterdir() if p.name != "preflight.md"]  # no temporary file left
    # Without `now` the evaluation time is ignored wherever the report shows it: an older time is not a change.
    text = dest.read_text()
    written = re.search(r"^Evaluated at `([^`]+)`", text, re.MULTILINE).group(1)
    assert text.count(written) >= 2  # the Evaluated at line and the pass/fail criteria
    dest.write_text(text.replace(written, OLD_TIME))
    for check in (True, False):
        result, _raw = preflight({"dest": str(dest)}, check=check)
        assert not result["changed"], result["diff"]
        assert result["diff"]["before"] == result["diff"]["after"]
    assert "Evaluated at `%s`" % OLD_TIME in dest.read_text()  # the file keeps the time of its last change
    # Anything else that differs is a change.
    dest.write_text(text.replace("## Summary", "## Summary (edited)"))
    assert preflight({"dest": str(dest)})[0]["changed"]


def test_now_is_compared(tmp_path):
    dest = tmp_path / "preflight.md"
    assert preflight({"dest": str(dest), "now": NOW})[0]["changed"]
    first = dest.read_text()
    assert "Evaluated at `%s`" % NOW in first
    assert not preflight({"dest": str(dest), "now": NOW})[0]["changed"]
    result, _raw = preflight({"dest": str(dest), "now": "2026-06-28T02:00:00Z"}, check=True)
    assert result["changed"] and dest.read_text() == first
    assert result["diff"]["before"] == first and "2026-06-28T02:00:00Z" in result["diff"]["after"]
    assert preflight({"dest": str(dest), "now": "2026-06-28T02:00:00Z"})[0]["changed"]
    assert "2026-06-28T02:00:00Z" in dest.read_text()


def test_report_equals_samctl_preflight():
    inventory = cli_preflight.load_inventory(str(ROOT / "inventories" / "cloudedge"))
    names = cli_preflight.vault_names(str(ROOT / "vault" / "vault.example.yml"))
    review = cli_preflight.build_review(inventory, parse_time(NOW), names)
    result, _raw = preflight({"now": NOW, "vault_names": names})
    assert result["report"] == cli_preflight.render(review)
    assert not result["changed"] and "dest" not in result


def test_mode_is_restored(tmp_path):
    dest = tmp_path / "preflight.md"
    preflight({"dest": str(dest), "now": NOW})
    os.chmod(dest, 0o600)
    result, _raw = preflight({"dest": str(dest), "now": NOW})
    assert result["changed"] and stat.S_IMODE(dest.stat().st_mode) == 0o644


def test_vault_values_never_returned_or_written(tmp_path):
    dest = tmp_path / "preflight.md"
    plain, _raw = preflight({"now": NOW})
    result, raw = preflight({"dest": str(dest), "now": NOW, "hosts": hostvars_like(cloudedge_hosts())})
    for secret in (VAULT_SECRET, KNOB_SECRET):
        assert secret not in raw
        assert secret not in dest.read_text()
    # Only the report's own variables are used: the same report as without the extra variables, unmasked.
    assert result["report"] == plain["report"]
    assert "********" not in raw
    assert result["invocation"]["module_args"]["hosts"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def test_only_dropped_secret_like_values_stay_masked():
    select_hosts = importlib.import_module("ansible_collections.boma.mesh.plugins.modules.sam_preflight").select_hosts
    hosts = hostvars_like(cloudedge_hosts())
    hosts["rr-b"]["vars"]["sam_node"] = KNOB_SECRET  # a value the report shows is its content, never masked
    kept, masked = select_hosts(hosts)
    assert masked == {VAULT_SECRET}
    assert set(kept["rr-a"]["vars"]) <= preflight_module.REPORT_VARS
    assert {"sam_node", "sam_resources", "sam_node_resources", "ansible_host"} <= set(kept["rr-a"]["vars"])
    assert kept["rr-a"]["groups"] == ["sam_rrs"]


def test_fail_on_errors_lists_findings_with_paths(tmp_path):
    hosts = cloudedge_hosts()
    for entry in hosts.values():
        for res in entry["vars"].get("sam_node_resources") or []:
            if res["kind"] == "SAMEnrollmentClaim" and res["metadata"]["name"] == "leaf-b":
                res["spec"]["mobility"]["ownedAddresses"] = ["10.77.61.32/32"]
    dest = tmp_path / "preflight.md"
    result, _raw = preflight({"dest": str(dest), "now": NOW, "hosts": hosts})
    assert result["failed"] and result["valid"] is False
    assert "spec.mobility.ownedAddresses[0]" in result["msg"] and "SAMEnrollmentClaim/leaf-b" in result["msg"]
    assert dest.is_file() and "FAIL" in dest.read_text()  # the report is written before failing
    errors = [f for f in result["findings"] if f["severity"] == "error"]
    assert errors and all(f["hosts"] for f in errors)
    assert {"resource", "path", "rule", "message", "severity", "hosts"} <= set(errors[0])
    result, _raw = preflight({"now": NOW, "hosts": hosts, "fail_on_errors": False, "return_report": False})
    assert not result.get("failed") and result["valid"] is False and "report" not in result


@pytest.mark.parametrize(("args", "message"), [
    ({"now": "yesterday"}, "now [rfc3339]"),
    ({"hosts": {"rr-a": ["sam_rrs"]}}, "hosts.rr-a [type]"),
    ({"hosts": {"rr-a": {"groups": "sam_rrs", "vars": {}}}}, "hosts.rr-a.groups [type]"),
    ({"hosts": {"rr-a": {"groups": [], "vars": {}, "extra": 1}}}, "hosts.rr-a [keys]"),
    ({"dest": "/nonexistent-dir/preflight.md"}, "dest [path]"),
])
def test_bad_input(args, message):
    result, _raw = preflight(dict({"now": NOW}, **args))
    assert result["failed"] and message in result["msg"]


def test_playbook_passes_exactly_the_report_vars():
    play = yaml.safe_load((ROOT / "playbooks" / "preflight.yml").read_text())[0]
    assert set(play["vars"]["boma_preflight_vars"]) == preflight_module.REPORT_VARS
    assert play["tasks"][0]["tags"] == ["preflight"]
