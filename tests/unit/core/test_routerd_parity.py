"""Issue 20: samctl validate refuses what routerd's validation refuses on the resources the seed uses.

One test (or table) per item of docs/enrollment.md "Differences from routerd's validation"; each fails with its
rule removed.
"""

import copy

import pytest
from conftest import DELETE, claim, find, rules, run, set_fields

from boma_mesh_utils.sam.core import materialize
from boma_mesh_utils.sam.core.loader import load_resources
from boma_mesh_utils.sam.core.render import frr, gobgp
from boma_mesh_utils.sam.core.validate import route_admission, validate


def errors(report):
    return {(f.resource, f.path, f.rule) for f in report.errors}


def router(mesh):
    return find(mesh, "BGPRouter", "mobility-bgp")["spec"]


# 1. A BGPRouter's (and a BGPDynamicPeer's) import/export policy.

ROUTER_POLICIES = [
    ({"importPolicy": {"allowedPrefixes": ["10.77.60.0/24"], "nextHopRewrite": "unchanged"}}, None),
    ({"importPolicy": {"allowedPrefixes": ["10.77.60.0/24"], "nextHopRewrite": "third-party"}},
     ("spec.importPolicy.nextHopRewrite", "choice")),
    ({"importPolicy": {"allowedPrefixes": ["10.77.60.0/24", "10.77.60.0/24"]}},
     ("spec.importPolicy.allowedPrefixes[1]", "duplicate-prefix")),
    # masked as routerd compares them: 10.77.60.9/24 is 10.77.60.0/24
    ({"importPolicy": {"allowedPrefixes": ["10.77.60.0/24", "10.77.60.9/24"]}},
     ("spec.importPolicy.allowedPrefixes[1]", "duplicate-prefix")),
    ({"exportPolicy": {"allowedPrefixes": ["10.77.60.0/24", "10.77.60.0/24"]}},
     ("spec.exportPolicy.allowedPrefixes[1]", "duplicate-prefix")),
    ({"importPolicy": {"allowedPrefixes": ["10.77.60.0/24"], "allowedPrefixLengthMin": 16,
                       "allowedPrefixLengthMax": 32}},
     ("spec.importPolicy.allowedPrefixLengthMin", "prefix-length-bounds")),
    ({"importPolicy": {"allowedPrefixes": ["10.77.60.0/24"], "allowedPrefixLengthMin": 24,
                       "allowedPrefixLengthMax": 33}},
     ("spec.importPolicy.allowedPrefixLengthMax", "range")),
    ({"importPolicy": {"allowedPrefixes": ["10.77.60.0/24"], "allowedPrefixLengthMin": 28,
                       "allowedPrefixLengthMax": 26}},
     ("spec.importPolicy.allowedPrefixLengthMin", "prefix-length-range")),
    # 0 is routerd's unset: it bounds nothing
    ({"importPolicy": {"allowedPrefixes": ["10.77.60.0/24"], "allowedPrefixLengthMin": 0,
                       "allowedPrefixLengthMax": 32}}, None),
]


@pytest.mark.parametrize("spec, error", ROUTER_POLICIES)
def test_a_bgp_routers_policies_are_checked_as_routerd_does(mesh, spec, error):
    router(mesh).update(spec)
    found = {(path, rule) for resource, path, rule in errors(run(mesh)) if resource == "BGPRouter/mobility-bgp"}
    assert found == ({error} if error else set())


def test_a_dynamic_peers_own_policy_gets_the_same_checks(mesh):
    imports = find(mesh, "BGPDynamicPeer", "cloudedge-leaves")["spec"]["importPolicy"]
    imports.update(allowedPrefixes=["10.77.60.0/24", "10.77.60.0/24"], nextHopRewrite="self")
    found = errors(run(mesh))
    assert ("BGPDynamicPeer/cloudedge-leaves", "spec.importPolicy.allowedPrefixes[1]", "duplicate-prefix") in found
    assert ("BGPDynamicPeer/cloudedge-leaves", "spec.importPolicy.nextHopRewrite", "choice") in found


# 2. A transport profile's addressingMode and innerPrefix.

@pytest.mark.parametrize("fields, error", [
    ({"addressingMode": "edge-index"}, None),
    ({"addressingMode": DELETE}, None),     # routerd's default: edge-index
    ({"addressingMode": "stable"}, ("spec.addressingMode", "choice")),
    ({"innerPrefix": DELETE}, ("spec.innerPrefix", "required")),
    ({"innerPrefix": "10.255.0.0/33"}, ("spec.innerPrefix", "ipv4-prefix")),
    ({"innerPrefix": "fd00::/64"}, ("spec.innerPrefix", "ipv4-prefix")),
    ({"innerPrefix": "10.255.0.1/32"}, ("spec.innerPrefix", "inner-prefix-size")),
    ({"innerPrefix": "10.255.0.0/31"}, None),
    ({"underlayInterface": DELETE}, ("spec.underlayInterface", "required")),
])
def test_transport_addressing_is_checked_as_routerd_does(mesh, fields, error):
    set_fields(find(mesh, "SAMTransportProfile", "rr-a-fou"), **fields)
    found = {(path, rule) for resource, path, rule in errors(run(mesh)) if resource == "SAMTransportProfile/rr-a-fou"}
    assert found == ({error} if error else set())


# 3. underlayInterface against the document's Interfaces.

def interface(name, kind="Interface"):
    return {"apiVersion": "net.routerd.net/v1alpha1", "kind": kind, "metadata": {"name": name},
            "spec": {"ifname": name}}


def test_underlay_interface_must_be_an_interface_of_the_document_when_it_defines_interfaces(mesh):
    assert run(mesh).ok    # an inventory names no Interface: nothing to check against
    mesh.append(interface("private-wan"))
    assert run(mesh).ok
    find(mesh, "SAMTransportProfile", "rr-a-fou")["spec"]["underlayInterface"] = "privat-wan"
    assert errors(run(mesh)) == {("SAMTransportProfile/rr-a-fou", "spec.underlayInterface", "reference")}


@pytest.mark.parametrize("kind", ["WireGuardInterface", "Bridge", "VRF", "PPPoESession"])
def test_every_interface_kind_of_routerds_index_counts(mesh, kind):
    mesh.extend([interface("private-wan"), interface("wg-x", kind)])
    find(mesh, "SAMTransportProfile", "rr-a-fou")["spec"]["underlayInterface"] = "wg-x"
    assert run(mesh).ok


# 4. MobilityPool: overlap, groupRef, members.

def pool(mesh):
    return find(mesh, "MobilityPool", "cloudedge")["spec"]


@pytest.mark.parametrize("fields, error", [
    ({"groupRef": DELETE}, ("spec.groupRef", "required")),
    ({"mode": "all-addresses"}, ("spec.mode", "choice")),
    ({"members": DELETE}, ("spec.members", "required")),
    ({"members": [{"nodeRef": "rr-a", "site": "dc-a", "role": "edge"}]}, ("spec.members[0].role", "member-role")),
    ({"members": [{"nodeRef": "rr-a", "site": "dc-a"}]}, ("spec.members[0].role", "required")),
    ({"members": [{"nodeRef": "rr-a", "role": "cloud"}]}, ("spec.members[0].site", "required")),
    ({"members": [{"nodeRef": "rr-a", "site": "dc-a", "role": "cloud"},
                  {"nodeRef": "rr-a", "site": "dc-b", "role": "onprem"}]},
     ("spec.members[1].nodeRef", "duplicate-member")),
    ({"members": DELETE, "membersFrom": [{"resource": "MobilityMemberSet/rrs"}]}, None),
    ({"members": DELETE, "membersFrom": [{"resource": "SAMRRSet/rrs"}]}, ("spec.membersFrom[0].resource", "reference")),
])
def test_a_pools_group_mode_and_members_are_checked_as_routerd_does(mesh, fields, error):
    set_fields(find(mesh, "MobilityPool", "cloudedge"), **fields)
    found = {(path, rule) for resource, path, rule in errors(run(mesh)) if resource == "MobilityPool/cloudedge"}
    assert found == ({error} if error else set())


def test_mobility_pools_must_be_disjoint(mesh):
    other = copy.deepcopy(find(mesh, "MobilityPool", "cloudedge"))
    other["metadata"]["name"] = "cloudedge-b"
    other["spec"]["prefix"] = "10.77.60.128/25"
    mesh.append(other)
    assert errors(run(mesh)) == {("MobilityPool/cloudedge-b", "spec.prefix", "mobility-pool-overlap")}
    other["spec"]["prefix"] = "10.77.61.0/24"
    assert run(mesh).ok


# 5. The effective import allowlist: a BGPDynamicPeer without one inherits its BGPRouter's.

def inheriting(mesh, **router_policy):
    del find(mesh, "BGPDynamicPeer", "cloudedge-leaves")["spec"]["importPolicy"]
    router(mesh)["importPolicy"] = dict({"allowedPrefixes": ["10.77.60.0/24"]}, **router_policy)
    return mesh


def test_a_dynamic_peer_without_an_allowlist_inherits_its_routers(mesh):
    assert run(inheriting(mesh, allowedPrefixLengthMin=32, allowedPrefixLengthMax=32)).ok


def test_an_inherited_policy_must_also_admit_host_routes_only(mesh):
    (f,) = [f for f in run(inheriting(mesh, allowedPrefixLengthMin=24, allowedPrefixLengthMax=32)).errors
            if f.rule == "host-routes-only"]
    assert f.resource == "BGPDynamicPeer/cloudedge-leaves" and "BGPRouter/mobility-bgp" in f.message


def test_neither_the_peer_nor_its_router_has_an_allowlist(mesh):
    del find(mesh, "BGPDynamicPeer", "cloudedge-leaves")["spec"]["importPolicy"]
    assert errors(run(mesh)) == {("BGPDynamicPeer/cloudedge-leaves", "spec.importPolicy.allowedPrefixes",
                                  "import-allowlist-required")}


def test_a_peers_next_hop_rewrite_without_its_own_allowlist_is_refused(mesh):
    inheriting(mesh)
    find(mesh, "BGPDynamicPeer", "cloudedge-leaves")["spec"]["importPolicy"] = {"nextHopRewrite": "peer-address"}
    assert "import-allowlist-required" in rules(run(mesh))


def test_the_peers_own_allowlist_wins_over_its_routers(mesh):
    router(mesh)["importPolicy"] = {"allowedPrefixes": ["10.0.0.0/8"], "allowedPrefixLengthMin": 8}
    report = run(mesh)
    assert report.ok
    state = materialize.materialize(report, "rr-a")
    (peer,) = [r for r in state["resources"] if r["kind"] == "BGPDynamicPeer"]
    assert peer["spec"]["allowedPrefixes"] == ["10.77.60.0/24"]


def test_materialized_and_rendered_peer_carries_the_inherited_allowlist(mesh):
    report = run(inheriting(mesh, allowedPrefixLengthMin=32, allowedPrefixLengthMax=32, nextHopRewrite="unchanged"))
    state = materialize.materialize(report, "rr-a")
    (peer,) = [r for r in state["resources"] if r["kind"] == "BGPDynamicPeer"]
    assert (peer["spec"]["allowedPrefixes"], peer["spec"]["allowedPrefixLengthMin"],
            peer["spec"]["allowedPrefixLengthMax"], peer["spec"]["nextHopRewrite"]) == (
        ["10.77.60.0/24"], 32, 32, "unchanged")
    # GoBGP refuses (fail closed) a leaf prefix outside allowedPrefixes: with an empty list it would check nothing
    assert "10.77.60.21/32" in gobgp.render_gobgp(state)
    assert "10.77.60.21/32" in frr.render_frr(state)
    assert route_admission(report).admit_route("10.255.0.21", "10.77.60.21/32").accepted


# 6. A claim without endpoint (WireGuard-only) stays refused: boma's RR tunnel to the leaf needs it.

def test_a_claim_without_endpoint_is_refused(mesh):
    leaf = find(mesh, "SAMEnrollmentClaim", "leaf-a")
    del leaf["spec"]["endpoint"]
    assert ("SAMEnrollmentClaim/leaf-a", "spec.endpoint", "required") in errors(run(mesh))


# 7. A nonce is spent once a claim carried it, even if that claim is now revoked or expired.

@pytest.mark.parametrize("how", [{"revoked": True}, {"expiresAt": "2026-06-28T00:30:00Z"}])
def test_an_active_claim_may_not_reuse_the_nonce_of_a_skipped_claim(mesh, how):
    old = find(mesh, "SAMEnrollmentClaim", "leaf-b")
    old["spec"].update(how)
    mesh.append(claim("leaf-c", 33, joinNonce=old["spec"]["joinNonce"], joinTimestamp="2026-06-28T00:40:00Z"))
    report = run(mesh)
    assert errors(report) == {("SAMEnrollmentClaim/leaf-c", "spec.joinNonce", "duplicate-join-nonce")}
    assert "leaf-c" not in {c.name for cs in report.active.values() for c in cs}


def test_a_skipped_claims_nonce_in_another_policy_is_no_duplicate(mesh):
    old = find(mesh, "SAMEnrollmentClaim", "leaf-b")
    old["spec"]["revoked"] = True
    mesh.append(claim("leaf-c", 33, "cloudedge-leaves", joinNonce=old["spec"]["joinNonce"]))
    assert run(mesh).ok


def test_samctl_core_path_sees_the_same(mesh):
    # validate() on loaded resources (what samctl validate calls) and the conftest runner agree
    resources, findings = load_resources([("t", inheriting(mesh, allowedPrefixLengthMin=24))])
    assert "host-routes-only" in {f.rule for f in validate(resources, findings=findings).errors}
