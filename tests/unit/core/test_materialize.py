"""Materialization: the runbook's expected preflight state for every host of both example inventories."""

import pytest
from mesh_views import EXPECTED, NOW, ROOT, groups, leaf_claims, node_state

from boma_mesh_utils.sam.cli import common
from boma_mesh_utils.sam.core.loader import load_resources
from boma_mesh_utils.sam.core.materialize import MaterializeError, count_kinds, materialize, tunnel_name
from boma_mesh_utils.sam.core.model import parse_rrset
from boma_mesh_utils.sam.core.validate import validate


def _of(state, kind):
    return [r["spec"] for r in state["resources"] if r["kind"] == kind]


def test_every_inventory_host_is_covered():
    hosts = {(inv, h) for inv in ("cloudedge", "pve-minimal") for g in groups(inv).values() for h in g}
    assert hosts == set(EXPECTED)


@pytest.mark.parametrize("inventory,host", sorted(EXPECTED), ids=["%s/%s" % k for k in sorted(EXPECTED)])
def test_host_materializes_the_expected_counts(inventory, host):
    state, _report = node_state(inventory, host)
    assert count_kinds(state) == EXPECTED[(inventory, host)]
    assert state["role"] == ("rr" if host in groups(inventory)["sam_rrs"] else "leaf")


def test_leaf_b_gets_fou_tunnels_5555_to_both_rrs_and_no_wireguard():
    state, _report = node_state("cloudedge", "leaf-b")
    tunnels = _of(state, "TunnelInterface")
    assert sorted((t["peerNodeRef"], t["mode"], t["encapSport"], t["encapDport"], t["remote"]) for t in tunnels) == [
        ("rr-a", "fou", 5555, 5555, "10.10.0.2"), ("rr-b", "fou", 5555, 5555, "10.10.0.3")]
    assert sorted(p["address"] for p in _of(state, "BGPPeer")) == ["10.99.0.2", "10.99.0.3"]
    assert sorted(r["destination"] for r in _of(state, "IPv4Route")) == ["10.99.0.2/32", "10.99.0.3/32"]


def test_leaf_a_runs_ipip_over_wireguard_to_both_rrs():
    state, _report = node_state("cloudedge", "leaf-a")
    tunnels = _of(state, "TunnelInterface")
    assert {t["mode"] for t in tunnels} == {"ipip"} and all("encapSport" not in t for t in tunnels)
    assert sorted(t["remote"] for t in tunnels) == ["10.20.0.2", "10.20.0.3"], "the RRs' WireGuard addresses"
    peers = _of(state, "WireGuardPeer")
    assert sorted(p["endpoint"] for p in peers) == ["203.0.113.10:51820", "203.0.113.11:51820"]
    assert all(p["publicKey"] and p["interface"] == "wg-cloudedge" for p in peers)
    # The ipip tunnels start at the WireGuard interface's address and reach the RRs' ends through it.
    assert {p["localAddress"] for p in peers} == {"10.20.0.31"}
    wg_routes = sorted((r["destination"], r["device"], r["source"]) for r in _of(state, "IPv4Route")
                       if r["device"] == "wg-cloudedge")
    assert wg_routes == [("10.20.0.2/32", "wg-cloudedge", "10.20.0.31"), ("10.20.0.3/32", "wg-cloudedge", "10.20.0.31")]


def test_rr_has_no_static_leaf_peers_and_wireguard_only_for_leaf_a():
    state, _report = node_state("cloudedge", "rr-a")
    assert _of(state, "BGPPeer") == []
    assert [p["claimRef"] for p in _of(state, "WireGuardPeer")] == ["SAMEnrollmentClaim/leaf-a"]
    assert [p["localAddress"] for p in _of(state, "WireGuardPeer")] == ["10.20.0.2"]
    assert [(r["destination"], r["source"]) for r in _of(state, "IPv4Route") if r["device"] == "wg-cloudedge"] \
        == [("10.20.0.31/32", "10.20.0.2")]
    by_leaf = {t["leafID"]: t for t in _of(state, "TunnelInterface")}
    assert by_leaf["leaf-b"]["mode"] == "fou" and by_leaf["leaf-b"]["encapDport"] == 5555
    assert by_leaf["leaf-a"]["local"] == "10.20.0.2" and by_leaf["leaf-a"]["remote"] == "10.20.0.31"
    (dyn,) = _of(state, "BGPDynamicPeer")
    assert dyn["listenRanges"] == ["10.255.0.0/20"] and dyn["peerGroup"] == "cloudedge-leaves"
    assert [(a["leafID"], a["neighbor"], a["prefixes"]) for a in dyn["admitted"]] == [
        ("leaf-pve", "10.255.0.21", ["10.77.60.21/32"]), ("leaf-a", "10.255.0.31", ["10.77.60.31/32"]),
        ("leaf-b", "10.255.0.32", ["10.77.60.32/32"])]


def test_revoked_claim_disappears_from_the_rr_state():
    claims = leaf_claims("cloudedge")
    for claim in claims:
        if claim["metadata"]["name"] == "leaf-b":
            claim["spec"]["revoked"] = True
    state, _report = node_state("cloudedge", "rr-a", claims=claims)
    assert "leaf-b" not in {t["leafID"] for t in _of(state, "TunnelInterface")}
    (dyn,) = _of(state, "BGPDynamicPeer")
    assert "leaf-b" not in [a["leafID"] for a in dyn["admitted"]]


def test_pve_leaf_materializes_from_the_fetched_rrset_only():
    fixtures = ROOT / "tests" / "fixtures" / "routerd"
    resources, findings = load_resources(common.load_file(str(fixtures / "pve-minimal-leaf-b-fou.yaml")))
    assert not [r for r in resources if r.kind == "SAMRRSet"], "the leaf config holds no static RRSet"
    report = validate(resources, now=NOW, findings=findings)
    with pytest.raises(MaterializeError, match="rrset-missing"):
        materialize(report, "pve-leaf-b")
    fetched, more = load_resources(common.load_file(str(fixtures / "pve-minimal-leaf-rrset-fetched.yaml")))
    rrsets = {r.name: parse_rrset(r, more) for r in fetched if r.kind == "SAMRRSet"}
    state = materialize(report, "pve-leaf-b", rrsets)
    assert count_kinds(state) == {"BGPRouter": 1, "TunnelInterface": 2, "IPv4Route": 2, "BGPPeer": 2}


def test_tunnel_names_fit_the_kernel_limit_and_are_stable():
    assert tunnel_name("rr-a") == "sam-rr-a"
    long = tunnel_name("leaf-with-a-very-long-name")
    assert len(long) <= 15 and long == tunnel_name("leaf-with-a-very-long-name")
    assert tunnel_name("leaf-with-a-very-long-name") != tunnel_name("leaf-with-a-very-long-nama")
