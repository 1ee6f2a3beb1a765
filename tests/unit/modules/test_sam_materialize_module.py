"""sam_materialize in-process: leave_out_invalid_claims, the role's path for an RR's records (issue 17, class 3)."""

import copy

from ansible.module_utils import _internal as module_utils_internal
from inprocess import collection_on_path, run_module
from mesh_views import NOW, leaf_claims, node_view

_COLLECTION_BASE = collection_on_path()


def rr_view_with_a_conflict():
    claims = copy.deepcopy(leaf_claims("cloudedge"))
    by_name = {c["metadata"]["name"]: c for c in claims}
    # leaf-b also names leaf-a's /32: leaf-a's claim is the earlier one in the example inventory or not,
    # either way one of them loses and the other claims are untouched.
    owned = by_name["leaf-a"]["spec"]["mobility"]["ownedAddresses"]
    by_name["leaf-b"]["spec"]["mobility"]["ownedAddresses"] = list(owned)
    return node_view("cloudedge", "rr-a", claims), sorted(by_name)


def materialize(resources, **extra):
    args = dict({"resources": resources, "node": "rr-a", "now": NOW.strftime("%Y-%m-%dT%H:%M:%SZ")}, **extra)
    return run_module("sam_materialize", args, check=True)[0]


def admitted(result):
    peer = [r for r in result["state"]["resources"] if r["kind"] == "BGPDynamicPeer"][0]
    return sorted(a["claimRef"].rpartition("/")[2] for a in peer["spec"]["admitted"])


def test_one_conflict_fails_the_whole_state_by_default():
    resources, _names = rr_view_with_a_conflict()
    result = materialize(resources)
    assert result.get("failed") and "duplicate-owned-address" in result["msg"]


def test_leave_out_invalid_claims_keeps_the_others_and_names_the_loser(monkeypatch):
    # As on a managed host, so the module's warning lands in the result (see test_sam_bgp_module.py).
    monkeypatch.setattr(module_utils_internal, "is_controller", False, raising=False)
    resources, names = rr_view_with_a_conflict()
    result = materialize(resources, leave_out_invalid_claims=True)
    assert not result.get("failed"), result
    (loser,) = result["left_out"]
    assert "duplicate-owned-address" in result["left_out"][loser][0]
    assert admitted(result) == [n for n in names if "SAMEnrollmentClaim/" + n != loser]
    assert any(loser in str(w) for w in result.get("warnings", [])), sorted(result)
    assert materialize(node_view("cloudedge", "rr-a"), leave_out_invalid_claims=True)["left_out"] == {}
