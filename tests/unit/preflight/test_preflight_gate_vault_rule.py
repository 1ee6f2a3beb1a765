"""The Secrets table's "In vault example" column comes from the roles' own vault rule (core/secrets).

Names only: the example vault's shape (string or mapping, which ids) is read from its dotted names and checked
with the check sam_rr and sam_leaf fail with, so the report and the roles agree on what is missing.
"""

import datetime
import pathlib

from boma_mesh_utils.sam.cli import preflight as cli_preflight
from boma_mesh_utils.sam.preflight import gate
from boma_mesh_utils.sam.preflight.review import preflight_report

ROOT = pathlib.Path(__file__).parents[3]
NOW = datetime.datetime(2026, 6, 28, 1, 0, tzinfo=datetime.timezone.utc)
POLICY = "cloudedge-private-fou-leaves"
BASE = "vault.sam.join_tokens." + POLICY


def _column(names, join_tokens):
    inventory = cli_preflight.load_inventory(str(ROOT / "inventories" / "cloudedge"))
    for entry in inventory["hosts"].values():
        for res in entry["vars"]["sam_resources"]:
            if res["kind"] == "SAMEnrollmentPolicy" and res["metadata"]["name"] == POLICY:
                res["spec"].pop("joinTokenFrom", None)
                res["spec"]["joinTokens"] = join_tokens
    section = preflight_report(inventory, NOW, names).split("## Secrets\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| `vault.")]
    return {row[0].strip("| `"): row[-1].strip(" |") for row in rows}


def test_a_mapping_without_an_id_is_missing_that_id_only():
    tokens = [{"id": "v1", "file": "/etc/boma/sam/join-tokens/v1"}, {"id": "v2", "env": "SAM_V2"}]
    column = _column(["vault.sam.api_token", BASE + ".v1", BASE + ".v0"], tokens)
    assert column[BASE + ".v1"] == "yes" and column[BASE + ".v2"] == "**MISSING**"
    assert column["vault.sam.admin_token"] == "**MISSING**" and column["vault.sam.api_token"] == "yes"


def test_the_string_form_of_a_rotating_policy_is_pointed_out():
    tokens = [{"id": "v1", "file": "/a"}, {"id": "v2", "file": "/b"}]
    column = _column([BASE, "vault.sam.api_token", "vault.sam.admin_token"], tokens)
    assert column[BASE + ".v1"] == column[BASE + ".v2"] == gate.STRING_FORM


def test_a_default_only_policy_is_looked_up_by_its_string_name():
    column = _column([BASE + ".default"], [{"id": "default", "file": "/a"}])
    assert column[BASE] == "**MISSING**"
    assert _column([BASE], [{"id": "default", "file": "/a"}])[BASE] == "yes"
