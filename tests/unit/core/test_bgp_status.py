"""bgp_status parses real FRR 8.4 JSON (tests/fixtures/frr) into the dynamic-peer status, and never raises.

The fixtures were captured from FRR 8.4.4 bgpd in two network namespaces: RR rr-a (10.99.0.2, peer-group
cloudedge-leaves, `bgp listen range 10.255.0.0/20`, route-reflector-client, soft-reconfiguration inbound,
an inbound route-map permitting only `match peer 10.255.0.32` + 10.77.60.32/32) and leaf-b (10.255.0.32)
announcing its own 10.77.60.32/32 plus seven hostile prefixes.
"""

import copy
import json
import pathlib

import pytest
from conftest import base_mesh, run

from boma_mesh_utils.sam.core.bgp_status import dynamic_peer_status
from boma_mesh_utils.sam.core.materialize import materialize

FRR = pathlib.Path(__file__).parents[2] / "fixtures" / "frr"
LEAF_B = "10.255.0.32"
HOSTILE = ["0.0.0.0/0", "10.20.0.0/24", "10.77.60.0/24", "10.77.60.31/32", "10.77.60.32/31",
           "10.77.60.99/32", "192.168.7.7/32"]  # sorted by address, then length


def _load(name):
    return json.loads((FRR / name).read_text())


@pytest.fixture
def outputs():
    return {
        "summary": _load("summary.json"),
        "neighbors": _load("neighbors.json"),
        "peer_group": _load("peer_group.json"),
        "received": {LEAF_B: _load("received-10.255.0.32.json")},
        "filtered": {LEAF_B: _load("filtered-10.255.0.32.json")},
    }


@pytest.fixture(scope="module")
def dynamic_peer():
    """BGPDynamicPeer/cloudedge-leaves of rr-a as sam_materialize renders it (leaf-pve, leaf-a, leaf-b admitted)."""
    state = materialize(run(base_mesh()), "rr-a")
    return next(r for r in state["resources"] if r["kind"] == "BGPDynamicPeer")


def test_fixtures_hold_the_real_frr_84_key_names(outputs):
    assert outputs["summary"]["peers"][LEAF_B]["dynamicPeer"] is True
    assert outputs["summary"]["dynamicPeers"] == 1
    assert outputs["neighbors"][LEAF_B]["peerSubnetRangeGroup"] == "10.255.0.0/20"
    assert outputs["peer_group"]["cloudedge-leaves"]["dynamicRanges"]["IPv4"]["ranges"] == ["10.255.0.0/20"]
    # FRR 8.4 lists both received-routes and filtered-routes under "receivedRoutes".
    assert outputs["received"][LEAF_B]["totalPrefixCounter"] == 8
    assert outputs["received"][LEAF_B]["filteredPrefixCounter"] == 7
    assert sorted(outputs["filtered"][LEAF_B]["receivedRoutes"]) == sorted(HOSTILE)


def test_one_dynamic_peer_mapped_to_its_claim(outputs, dynamic_peer):
    status = dynamic_peer_status(outputs, dynamic_peer)
    assert status["peer_group"] == "cloudedge-leaves"
    assert status["peer_group_found"] is True
    assert status["source_prefixes"] == ["10.255.0.0/20"]
    assert status["listen_ranges_missing"] == []
    assert len(status["discovered_peers"]) == 1
    peer = status["discovered_peers"][0]
    assert peer["address"] == LEAF_B
    assert peer["state"] == "Established"
    assert peer["dynamic"] is True
    assert peer["uptime"] == "00:00:03"
    assert peer["listen_range"] == "10.255.0.0/20"
    assert peer["claimRef"] == "SAMEnrollmentClaim/leaf-b"
    assert peer["leafID"] == "leaf-b"
    assert (peer["accepted"], peer["received"], peer["rejected"]) == (1, 8, 7)
    assert peer["received"] == peer["accepted"] + peer["rejected"]
    assert peer["rejected_routes"] == HOSTILE
    assert peer["warnings"] == []
    assert (status["accepted_total"], status["rejected_total"]) == (1, 7)
    assert status["unmatched_peers"] == []
    assert status["warnings"] == []


def test_rejected_routes_are_explained_by_the_admission_rules(outputs, dynamic_peer):
    status = dynamic_peer_status(outputs, dynamic_peer)
    assert status["discovered_peers"][0]["rejected_reasons"] == {
        "0.0.0.0/0": "default-route",
        "10.20.0.0/24": "outside-pool",
        "10.77.60.0/24": "pool-aggregate",
        "10.77.60.31/32": "other-claim",      # leaf-a's /32
        "10.77.60.32/31": "not-host-route",
        "10.77.60.99/32": "unclaimed",
        "192.168.7.7/32": "outside-pool",
    }
    summary = status["rejected_summary"]
    assert list(summary["by_prefix"]) == HOSTILE
    assert all(neighbors == [LEAF_B] for neighbors in summary["by_prefix"].values())
    assert summary["by_reason"] == {"default-route": 1, "not-host-route": 1, "other-claim": 1, "outside-pool": 2,
                                    "pool-aggregate": 1, "unclaimed": 1}


def test_admitted_claims_without_a_session_are_missing(outputs, dynamic_peer):
    status = dynamic_peer_status(outputs, dynamic_peer)
    assert status["missing_peers"] == [
        {"claimRef": "SAMEnrollmentClaim/leaf-pve", "leafID": "leaf-pve", "neighbor": "10.255.0.21", "state": None},
        {"claimRef": "SAMEnrollmentClaim/leaf-a", "leafID": "leaf-a", "neighbor": "10.255.0.31", "state": None},
    ]


def test_bare_spec_and_admitted_only(outputs, dynamic_peer):
    assert dynamic_peer_status(outputs, dynamic_peer["spec"]) == dynamic_peer_status(outputs, dynamic_peer)
    spec = {"peerGroup": "cloudedge-leaves", "admitted": dynamic_peer["spec"]["admitted"]}
    status = dynamic_peer_status(outputs, spec)
    peer = status["discovered_peers"][0]
    assert peer["claimRef"] == "SAMEnrollmentClaim/leaf-b"
    assert peer["rejected_routes"] == HOSTILE
    # Without spec.allowedPrefixes the pool is unknown: no reasons, prefixes only.
    assert peer["rejected_reasons"] == {}
    assert status["rejected_summary"]["by_reason"] == {}
    assert list(status["rejected_summary"]["by_prefix"]) == HOSTILE
    assert status["rejected_total"] == 7


def test_peer_without_claim_is_unmatched(outputs, dynamic_peer):
    spec = copy.deepcopy(dynamic_peer["spec"])
    spec["admitted"] = [a for a in spec["admitted"] if a["leafID"] != "leaf-b"]
    status = dynamic_peer_status(outputs, spec)
    assert status["unmatched_peers"] == [LEAF_B]
    peer = status["discovered_peers"][0]
    assert peer["claimRef"] is None and peer["leafID"] is None
    assert set(peer["rejected_reasons"].values()) == {"unknown-neighbor"}
    assert [m["leafID"] for m in status["missing_peers"]] == ["leaf-pve", "leaf-a"]


def test_admitted_claim_with_session_down_is_missing_with_its_state(outputs, dynamic_peer):
    outputs["summary"]["peers"][LEAF_B]["state"] = "Active"
    status = dynamic_peer_status(outputs, dynamic_peer)
    assert {"claimRef": "SAMEnrollmentClaim/leaf-b", "leafID": "leaf-b", "neighbor": LEAF_B,
            "state": "Active"} in status["missing_peers"]


def test_no_soft_reconfiguration_gives_accepted_only(outputs, dynamic_peer):
    warning = _load("received-10.255.0.32-no-soft-reconfiguration.json")
    assert warning == {"warning": "Inbound soft reconfiguration not enabled"}
    outputs["received"] = {LEAF_B: warning}
    outputs["filtered"] = {LEAF_B: copy.deepcopy(warning)}
    status = dynamic_peer_status(outputs, dynamic_peer)
    peer = status["discovered_peers"][0]
    assert (peer["accepted"], peer["received"], peer["rejected"]) == (1, None, None)
    assert peer["rejected_routes"] == []
    assert (status["accepted_total"], status["rejected_total"]) == (1, 0)
    assert status["warnings"] == [
        "10.255.0.32 received-routes: Inbound soft reconfiguration not enabled",
        "10.255.0.32 filtered-routes: Inbound soft reconfiguration not enabled",
    ]


def test_rejected_count_falls_back_to_received_counters(outputs, dynamic_peer):
    del outputs["filtered"]
    peer = dynamic_peer_status(outputs, dynamic_peer)["discovered_peers"][0]
    assert (peer["accepted"], peer["received"], peer["rejected"]) == (1, 8, 7)  # filteredPrefixCounter
    assert peer["rejected_routes"] == []


def test_show_bgp_summary_without_afi_nests_under_ipv4unicast(outputs, dynamic_peer):
    outputs["summary"] = {"ipv4Unicast": outputs["summary"]}
    assert dynamic_peer_status(outputs, dynamic_peer)["discovered_peers"][0]["dynamic"] is True


def test_summary_alone_finds_dynamic_peers_in_the_listen_ranges(outputs, dynamic_peer):
    status = dynamic_peer_status({"summary": outputs["summary"]}, dynamic_peer)
    assert status["peer_group_found"] is False
    assert status["source_prefixes"] == []
    assert status["listen_ranges_missing"] == ["10.255.0.0/20"]
    peer = status["discovered_peers"][0]
    assert (peer["address"], peer["state"], peer["accepted"], peer["claimRef"]) == (
        LEAF_B, "Established", 1, "SAMEnrollmentClaim/leaf-b")
    spec = dict(dynamic_peer["spec"], listenRanges=["10.254.0.0/20"])
    assert dynamic_peer_status({"summary": outputs["summary"]}, spec)["discovered_peers"] == []


def test_neighbors_alone_give_group_range_and_accepted(outputs, dynamic_peer):
    status = dynamic_peer_status({"neighbors": outputs["neighbors"]}, dynamic_peer)
    assert status["source_prefixes"] == ["10.255.0.0/20"]
    peer = status["discovered_peers"][0]
    assert (peer["state"], peer["dynamic"], peer["accepted"], peer["uptime"]) == (
        "Established", True, 1, "00:00:03")


def test_other_peer_group_sees_nothing(outputs, dynamic_peer):
    spec = dict(dynamic_peer["spec"], peerGroup="pve-leaves")
    status = dynamic_peer_status(outputs, spec)
    assert status["peer_group"] == "pve-leaves"
    assert status["peer_group_found"] is False
    assert status["discovered_peers"] == []
    assert len(status["missing_peers"]) == 3


EMPTY = {"peer_group": "cloudedge-leaves", "peer_group_found": False, "source_prefixes": [],
         "listen_ranges_missing": [], "discovered_peers": [], "accepted_total": 0, "rejected_total": 0,
         "rejected_summary": {"by_prefix": {}, "by_reason": {}}, "unmatched_peers": [], "missing_peers": [],
         "warnings": []}


@pytest.mark.parametrize("outputs_in", [
    {},
    None,
    [],
    {"summary": {}, "neighbors": {}, "peer_group": {}, "received": {}, "filtered": {}},
    {"summary": [], "neighbors": "x", "peer_group": {"cloudedge-leaves": None}, "received": 1, "filtered": None},
    {"summary": {"peers": None}, "neighbors": {"10.255.0.32": None}, "peer_group": {"cloudedge-leaves": []}},
    {"summary": {"ipv4Unicast": {"peers": {"10.255.0.40": "junk"}}}},
])
def test_degenerate_outputs_never_raise(outputs_in):
    status = dynamic_peer_status(outputs_in, {"peerGroup": "cloudedge-leaves"})
    assert status == EMPTY


@pytest.mark.parametrize("spec", [None, {}, [], "x", {"spec": None}, {"peerGroup": 7}])
def test_degenerate_spec_never_raises(outputs, spec):
    status = dynamic_peer_status(outputs, spec)
    assert status["discovered_peers"] == [] and status["missing_peers"] == []


def test_odd_peer_entries_are_tolerated(outputs):
    outputs["summary"]["peers"][LEAF_B].update(pfxRcd="3", state=None, peerUptime=5)
    outputs["peer_group"]["cloudedge-leaves"]["members"]["swp1"] = {"status": "Idle"}
    outputs["received"][LEAF_B] = {"receivedRoutes": {"garbage": {}, "x": {"addrPrefix": "10.1.0.0", "prefixLen": 16},
                                                      "y": [{"network": "10.2.0.0/16"}]}}
    outputs["filtered"][LEAF_B] = {"receivedRoutes": [{"network": "10.2.0.0/16"}, "junk"]}
    spec = {"peerGroup": "cloudedge-leaves", "allowedPrefixes": ["bad", "10.77.60.0/24"],
            "allowedPrefixLengthMin": "x",
            "admitted": [{"neighbor": LEAF_B, "prefixes": ["nope"]}, {"neighbor": None}, "junk", {"neighbor": "bad"}]}
    status = dynamic_peer_status(outputs, spec)
    peers = {p["address"]: p for p in status["discovered_peers"]}
    assert list(peers) == [LEAF_B, "swp1"]
    assert (peers[LEAF_B]["accepted"], peers[LEAF_B]["received"], peers[LEAF_B]["rejected"]) == (3, 2, 1)
    assert peers[LEAF_B]["state"] == "Established"  # from show bgp neighbors
    assert peers[LEAF_B]["rejected_reasons"] == {"10.2.0.0/16": "outside-pool"}
    assert peers["swp1"]["state"] == "Idle" and peers["swp1"]["dynamic"] is False
    assert status["unmatched_peers"] == []
    assert [m["neighbor"] for m in status["missing_peers"]] == ["bad"]


def test_per_leaf_peer_groups_read_as_one_group(outputs, dynamic_peer):
    """The RR renders one peer-group per admitted leaf, <G>@<leafID>: read together as <G>, nobody else's."""
    outputs = copy.deepcopy(outputs)
    outputs["peer_group"] = {
        "cloudedge-leaves@leaf-b": {"remoteAs": 64577, "dynamicRanges": {"IPv4": {"ranges": [LEAF_B + "/32"]}},
                                    "members": {LEAF_B: {"status": "Established", "dynamic": True}}},
        "cloudedge-leaves@leaf-a": {"remoteAs": 64577, "dynamicRanges": {"IPv4": {"ranges": ["10.255.0.31/32"]}}},
        "cloudedge-leavesx@leaf-c": {"remoteAs": 64577, "dynamicRanges": {"IPv4": {"ranges": ["10.255.0.99/32"]}}},
    }
    outputs["neighbors"][LEAF_B]["peerGroup"] = "cloudedge-leaves@leaf-b"
    status = dynamic_peer_status(outputs, dynamic_peer)
    assert status["peer_group_found"] is True
    assert status["source_prefixes"] == ["10.255.0.31/32", LEAF_B + "/32"]
    assert [p["address"] for p in status["discovered_peers"]] == [LEAF_B]
    assert status["discovered_peers"][0]["state"] == "Established"
