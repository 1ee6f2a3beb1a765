# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Preflight report, Secrets and Artifacts: one row per join token id (with its notAfter) for spec.joinTokens.

The "In vault example" column comes from the roles' own vault rule (core/secrets): names only, the example
vault's shape (string or mapping, which ids) is read from its dotted names and checked with the check sam_rr and
sam_leaf fail with, so the report and the roles agree on what is missing.
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


def _section(text, title):
    return text.split("## " + title + "\n", 1)[1].split("\n## ", 1)[0]


def _report(join_tokens, names=None):
    """The report of the cloudedge inventory with POLICY's tokens replaced; ``names``: the example vault's."""
    inventory = cli_preflight.load_inventory(str(ROOT / "inventories" / "cloudedge"))
    for entry in inventory["hosts"].values():
        for res in entry["vars"]["sam_resources"]:
            if res["kind"] == "SAMEnrollmentPolicy" and res["metadata"]["name"] == POLICY:
                res["spec"].pop("joinTokenFrom", None)
                res["spec"]["joinTokens"] = join_tokens
    if names is None:
        names = cli_preflight.vault_names(str(ROOT / "vault" / "vault.example.yml"))
    return preflight_report(inventory, NOW, names)


def _row(text, name):
    rows = [line for line in _section(text, "Secrets").splitlines() if line.startswith("| `%s` |" % name)]
    assert len(rows) == 1, _section(text, "Secrets")
    return rows[0]


def test_one_row_per_token_id_with_its_not_after():
    text = _report([
        {"id": "default", "file": "/etc/boma/sam/join-tokens/fou-old", "notAfter": "2026-07-01T00:00:00Z"},
        {"id": "2026-07", "file": "/etc/boma/sam/join-tokens/fou-new"},
        {"id": "next", "env": "SAM_JOIN_TOKEN_NEXT"}])
    base = "vault.sam.join_tokens." + POLICY
    old, new, env = _row(text, base + ".default"), _row(text, base + ".2026-07"), _row(text, base + ".next")
    assert "join token `default` of SAMEnrollmentPolicy/%s, accepted until 2026-07-01T00:00:00Z" % POLICY in old
    assert "file `/etc/boma/sam/join-tokens/fou-old` (0600)" in old
    assert "join token `2026-07` of SAMEnrollmentPolicy/%s, no notAfter" % POLICY in new
    assert "environment `SAM_JOIN_TOKEN_NEXT`" in env
    # The example vault has the string form of this policy: pointed out, not MISSING, and not "unused".
    assert "no (the example has the string form" in new and "**MISSING**" not in _section(text, "Secrets")
    assert "| `%s` |" % base not in _section(text, "Secrets")
    unused = [line for line in _section(text, "Secrets").splitlines() if line.startswith("Vault names not used")]
    assert not any("`%s`" % base in line for line in unused)
    artifacts = _section(text, "Artifacts")
    assert "`/etc/boma/sam/join-tokens/fou-new` (join token `2026-07` of SAMEnrollmentPolicy/%s, 0600)" % POLICY \
        in artifacts
    assert "SAM_JOIN_TOKEN_NEXT" not in artifacts
    assert "`/etc/boma/sam/join-tokens.installed.json`" in artifacts


def test_a_single_default_token_keeps_the_string_form_name():
    text = _report([{"id": "default", "file": "/etc/boma/sam/join-tokens/fou"}])
    row = _row(text, "vault.sam.join_tokens." + POLICY)
    assert "join token of SAMEnrollmentPolicy/%s |" % POLICY in row and row.endswith("| yes |")


def _column(names, join_tokens):
    """{vault name: "In vault example" cell} of the Secrets table."""
    rows = [line.split(" | ") for line in _section(_report(join_tokens, names), "Secrets").splitlines()
            if line.startswith("| `vault.")]
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
