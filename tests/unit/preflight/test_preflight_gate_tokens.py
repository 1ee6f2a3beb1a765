# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Preflight report, Secrets and Artifacts: one row per join token id (with its notAfter) for spec.joinTokens."""

import datetime
import pathlib

from boma_mesh_utils.sam.cli import preflight as cli_preflight
from boma_mesh_utils.sam.preflight.review import preflight_report

ROOT = pathlib.Path(__file__).parents[3]
NOW = datetime.datetime(2026, 6, 28, 1, 0, tzinfo=datetime.timezone.utc)
POLICY = "cloudedge-private-fou-leaves"


def _section(text, title):
    return text.split("## " + title + "\n", 1)[1].split("\n## ", 1)[0]


def _report(join_tokens):
    inventory = cli_preflight.load_inventory(str(ROOT / "inventories" / "cloudedge"))
    for entry in inventory["hosts"].values():
        for res in entry["vars"]["sam_resources"]:
            if res["kind"] == "SAMEnrollmentPolicy" and res["metadata"]["name"] == POLICY:
                res["spec"].pop("joinTokenFrom", None)
                res["spec"]["joinTokens"] = join_tokens
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
