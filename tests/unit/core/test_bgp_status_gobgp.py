"""core/bgp_status_gobgp.py: gobgpd's JSON in bgp_status's result shape; what is accepted comes from the RIB."""

import pytest

from boma_mesh_utils.sam.core.bgp_status_gobgp import gobgp_peer_status

SPEC = {"peerGroup": "leaves", "listenRanges": ["10.255.0.0/20"], "allowedPrefixes": ["10.77.60.0/24"],
        "admitted": [{"claimRef": "SAMEnrollmentClaim/leaf-a", "leafID": "leaf-a", "neighbor": "10.255.0.31",
                      "prefixes": ["10.77.60.31/32"]},
                     {"claimRef": "SAMEnrollmentClaim/leaf-b", "leafID": "leaf-b", "neighbor": "10.255.0.32",
                      "prefixes": ["10.77.60.32/32"]}]}


def path(prefix, neighbor=None):
    item = {"nlri": {"prefix": prefix}}
    if neighbor:
        item["neighbor-ip"] = neighbor
    return item


OUTPUTS = {
    "neighbors": [
        {"conf": {"peer_group": "leaves"}, "state": {"neighbor_address": "10.255.0.31", "session_state": 6}},
        {"conf": {"peer_group": "leaves"}, "state": {"neighbor_address": "10.255.0.99", "session_state": 6}},
        {"conf": {"neighbor_address": "10.99.0.3", "peer_group": "rrs"}, "state": {"session_state": 6}},
    ],
    "adj_in": {"10.255.0.31": {p: [path(p, "10.255.0.31")] for p in ("10.77.60.31/32", "10.77.60.32/32", "0.0.0.0/0")},
               "10.255.0.99": {}},
    "rib": {"10.77.60.31/32": [path("10.77.60.31/32", "10.255.0.31")], "10.77.60.5/32": [path("10.77.60.5/32")]},
    "ranges": ["10.255.0.31/32"],
}


def test_accepted_is_what_reached_the_rib_and_rejected_what_did_not_with_the_admission_rule():
    status = gobgp_peer_status(OUTPUTS, SPEC)
    peers = {p["address"]: p for p in status["discovered_peers"]}
    assert sorted(peers) == ["10.255.0.31", "10.255.0.99"], "the group's members only"
    leaf_a = peers["10.255.0.31"]
    assert (leaf_a["state"], leaf_a["dynamic"], leaf_a["leafID"]) == ("Established", True, "leaf-a")
    assert (leaf_a["received"], leaf_a["accepted"], leaf_a["rejected"]) == (3, 1, 2)
    assert leaf_a["rejected_reasons"] == {"0.0.0.0/0": "default-route", "10.77.60.32/32": "other-claim"}
    assert status["unmatched_peers"] == ["10.255.0.99"]
    assert [m["leafID"] for m in status["missing_peers"]] == ["leaf-b"]
    assert status["listen_ranges_missing"] == ["10.255.0.32/32"] and status["source_prefixes"] == ["10.255.0.31/32"]
    assert status["rejected_summary"]["by_reason"] == {"default-route": 1, "other-claim": 1}


def test_unknown_ranges_are_said_and_not_guessed():
    status = gobgp_peer_status(dict(OUTPUTS, ranges=None), SPEC)
    assert status["listen_ranges_missing"] == [] and any("ranges unknown" in w for w in status["warnings"])


@pytest.mark.parametrize("outputs", [None, {}, {"neighbors": "x", "rib": [], "adj_in": 3},
                                     {"neighbors": [None, {"conf": 1}, {"state": {"neighbor_address": "x"}}]}])
def test_odd_input_never_raises(outputs):
    status = gobgp_peer_status(outputs, SPEC)
    assert status["discovered_peers"] == [] and status["accepted_total"] == 0
