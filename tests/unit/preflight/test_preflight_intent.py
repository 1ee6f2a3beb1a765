"""The preflight review of an inventory whose leaves hold intent claims (issue 18)."""

import datetime
import pathlib

from boma_mesh_utils.sam.cli import preflight as cli_preflight
from boma_mesh_utils.sam.core import signing
from boma_mesh_utils.sam.preflight.review import preflight_report

ROOT = pathlib.Path(__file__).parents[3]
NOW = datetime.datetime(2026, 6, 28, 1, 0, tzinfo=datetime.timezone.utc)


def _section(text, title):
    return text.split("## " + title + "\n", 1)[1].split("\n## ", 1)[0]


def _inventory(intent):
    inventory = cli_preflight.load_inventory(str(ROOT / "inventories" / "cloudedge"))
    for entry in inventory["hosts"].values():
        for res in entry["vars"].get("sam_node_resources") or []:
            if res["kind"] == "SAMEnrollmentClaim" and intent:
                for field in signing.SIGNED_FIELDS:
                    res["spec"].pop(field, None)
                res["spec"].get("wireGuard", {}).pop("publicKey", None)
    return inventory


def test_intent_claims_review_like_signed_ones_and_are_named_as_intents():
    signed = preflight_report(_inventory(False), NOW)
    text = preflight_report(_inventory(True), NOW)
    assert "| Validation | **PASS** |" in text
    state = _section(text, "Expected generated state")
    # The same state, except the leaf's WireGuard key: the agent makes it, the inventory does not know it.
    key = "`I+4Y+hjlbT6+dKuOP/vY4/dy7IuYUtDmhTuhJSJgjwA=`"
    assert key in _section(signed, "Expected generated state")
    assert state == _section(signed, "Expected generated state").replace(key, "—")
    untested = _section(text, "What remains untested")
    for name in ("leaf-a", "leaf-b", "leaf-pve"):
        assert "claim `%s` is an intent in the inventory: `samctl agent` signs it" % name in untested
    assert "joinHMAC of" not in untested and "unsigned" not in untested
