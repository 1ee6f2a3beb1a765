"""The runbook's "Negative Tests" about configuration and claims, one test each, plus DESIGN.md §3's additions."""

import datetime

import pytest
from conftest import DELETE, NOW, claim, find, policy, res, resign, rules, run, set_fields

from boma_mesh_utils.sam.core.admission import expiry


def test_baseline_mesh_is_valid(mesh):
    report = run(mesh)
    assert report.ok, [str(f) for f in report.findings]
    assert sorted(report.verified) == ["leaf-a", "leaf-b", "leaf-pve"]


def test_rr_client_rejects_peer_asn_different_from_router_asn(mesh):
    find(mesh, "BGPDynamicPeer", "cloudedge-leaves")["spec"]["peerASN"] = 65001
    report = run(mesh)
    (f,) = [f for f in report.errors if f.rule == "rr-client-asn"]
    assert (f.resource, f.path) == ("BGPDynamicPeer/cloudedge-leaves", "spec.peerASN")
    assert "64577" in f.message


def test_rr_client_false_allows_a_different_peer_asn(mesh):
    peer = find(mesh, "BGPDynamicPeer", "cloudedge-leaves")["spec"]
    peer.update(peerASN=65001, routeReflectorClient=False)
    assert "rr-client-asn" not in rules(run(mesh))


def test_dynamic_peer_rejects_config_without_import_allowlist(mesh):
    del find(mesh, "BGPDynamicPeer", "cloudedge-leaves")["spec"]["importPolicy"]["allowedPrefixes"]
    report = run(mesh)
    assert "import-allowlist-required" in rules(report)
    assert not report.ok


BOUNDS = [((32, 32), True), ((None, None), True), ((24, 32), False), ((None, 32), False), ((32, None), False),
          ((0, 32), False)]


@pytest.mark.parametrize("bounds, ok", BOUNDS)
def test_import_policy_bounds_are_omitted_or_both_32_as_routerd_requires(mesh, bounds, ok):
    policy = find(mesh, "BGPDynamicPeer", "cloudedge-leaves")["spec"]["importPolicy"]
    for key, value in zip(("allowedPrefixLengthMin", "allowedPrefixLengthMax"), bounds):
        policy.pop(key, None)
        if value is not None:
            policy[key] = value
    report = run(mesh)
    assert ("host-routes-only" in rules(report)) is not ok and report.ok is ok
    assert "host-routes-only" not in rules(report, "warning")


def test_import_policy_min_greater_than_max_is_rejected(mesh):
    find(mesh, "BGPDynamicPeer", "cloudedge-leaves")["spec"]["importPolicy"]["allowedPrefixLengthMax"] = 24
    assert "prefix-length-range" in rules(run(mesh))


def test_rrset_allows_members_without_wireguard_blocks(mesh):
    members = find(mesh, "SAMRRSet", "cloudedge-rrs")["spec"]["members"]
    assert all("wireGuard" not in m for m in members)
    assert run(mesh).ok


def test_rrset_never_lists_leaves(mesh):
    find(mesh, "SAMRRSet", "cloudedge-rrs")["spec"]["members"][1]["nodeRef"] = "leaf-b"
    assert "rrset-members-not-leaves" in rules(run(mesh))


def test_claim_is_valid_without_wireguard_public_key(mesh):
    assert "wireGuard" not in find(mesh, "SAMEnrollmentClaim", "leaf-b")["spec"]
    report = run(mesh)
    assert report.ok and "leaf-b" in [c.name for c in report.active["cloudedge-private-fou-leaves"]]


def test_missing_enrollment_policy_reference_is_a_validation_error(mesh):
    leaf = resign(set_fields(find(mesh, "SAMEnrollmentClaim", "leaf-b"), policyRef="SAMEnrollmentPolicy/nope"))
    report = run(mesh)
    (f,) = [f for f in report.errors if f.rule == "policy-reference"]
    assert (f.resource, f.path) == ("SAMEnrollmentClaim/leaf-b", "spec.policyRef")
    assert leaf["metadata"]["name"] not in sum(([c.name for c in v] for v in report.active.values()), [])


def test_missing_policy_ref_field_is_a_validation_error(mesh):
    resign(set_fields(find(mesh, "SAMEnrollmentClaim", "leaf-b"), policyRef=DELETE))
    assert "policy-reference" in rules(run(mesh))


def test_policy_ttl_with_join_timestamp_expires_claims(mesh):
    report = run(mesh, now=NOW + datetime.timedelta(hours=23))
    assert report.ok, "expired claims are skipped, not fatal"
    assert sorted(report.skipped) == ["leaf-a", "leaf-b", "leaf-pve"]
    assert rules(report, "skipped") == {"claim-expired"}
    assert all(not v for v in report.active.values())


def test_claim_is_active_one_second_before_ttl_ends(mesh):
    joined = datetime.datetime(2026, 6, 28, tzinfo=datetime.timezone.utc)
    assert not run(mesh, now=joined + datetime.timedelta(hours=23, minutes=59, seconds=59)).skipped
    assert len(run(mesh, now=joined + datetime.timedelta(hours=24)).skipped) == 3


def test_expires_at_must_not_exceed_join_timestamp_plus_policy_ttl(mesh):
    set_fields(find(mesh, "SAMEnrollmentClaim", "leaf-b"), expiresAt="2026-06-29T00:00:01Z")
    report = run(mesh)
    (f,) = [f for f in report.errors if f.rule == "expires-at-bound"]
    assert f.path == "spec.expiresAt"


def test_expires_at_within_ttl_shortens_admission_without_resigning(mesh):
    leaf = set_fields(find(mesh, "SAMEnrollmentClaim", "leaf-b"), expiresAt="2026-06-28T00:30:00Z")
    report = run(mesh)
    assert report.ok and "leaf-b" in report.skipped, "expiresAt is admin-owned: not in the HMAC"
    assert leaf["spec"]["joinHMAC"]


def test_policy_endpoint_prefixes_are_enforced_on_claim_endpoint(mesh):
    resign(set_fields(find(mesh, "SAMEnrollmentClaim", "leaf-b"), endpoint="10.30.0.32"))
    (f,) = [f for f in run(mesh).errors if f.rule == "endpoint-prefix"]
    assert f.path == "spec.endpoint" and "10.20.0.0/24" in f.message


def test_policy_wireguard_endpoint_prefixes_are_enforced_on_wireguard_endpoint_host(mesh):
    leaf = find(mesh, "SAMEnrollmentClaim", "leaf-a")
    resign(set_fields(leaf, wireGuard__endpoint="203.0.113.99:51820"))
    (f,) = [f for f in run(mesh).errors if f.rule == "wireguard-endpoint-prefix"]
    assert f.path == "spec.wireGuard.endpoint" and "198.51.100.0/24" in f.message


def test_policy_endpoint_prefixes_apply_to_wireguard_endpoint_when_no_wireguard_prefixes(mesh):
    del find(mesh, "SAMEnrollmentPolicy", "cloudedge-public-wg-leaves")["spec"]["wireGuard"]["endpointPrefixes"]
    assert "wireguard-endpoint-prefix" in rules(run(mesh)), "198.51.100.31 is outside endpointPrefixes 10.20.0.0/24"


@pytest.mark.parametrize("field,value,rule", [
    ("leafID", "leaf-pve", "duplicate-leaf-id"),
    ("tunnelAddress", "10.255.0.21/32", "duplicate-tunnel-address"),
    ("mobility__ownedAddresses", ["10.77.60.21/32"], "duplicate-owned-address"),
    ("bgp__routerID", "10.255.0.21", "duplicate-router-id"),
    ("joinNonce", "leaf-pve-0001", "duplicate-join-nonce"),
])
def test_duplicate_identity_is_rejected_within_the_same_policy(field, value, rule):
    docs = [policy("cloudedge-leaves"), _pool(),
            claim("leaf-pve", 21, "cloudedge-leaves"),
            claim("leaf-x", 40, "cloudedge-leaves", **{field: value})]
    docs[-1]["metadata"]["name"] = "leaf-x"
    report = run(docs)
    (f,) = [f for f in report.errors if f.rule == rule]
    assert f.resource == "SAMEnrollmentClaim/leaf-x", "the later join is the duplicate"
    assert "SAMEnrollmentClaim/leaf-pve" in f.message
    assert [c.name for c in report.active["cloudedge-leaves"]] == ["leaf-pve"]


def test_duplicate_wireguard_public_key_is_rejected_within_the_same_policy(mesh):
    key = find(mesh, "SAMEnrollmentClaim", "leaf-a")["spec"]["wireGuard"]["publicKey"]
    extra = claim("leaf-c", 33, "cloudedge-public-wg-leaves", joinAudience="cloudedge-public-underlay",
                  wireGuard={"publicKey": key})
    mesh.append(extra)
    report = run(mesh)
    assert [f.resource for f in report.errors if f.rule == "duplicate-wireguard-public-key"] == \
        ["SAMEnrollmentClaim/leaf-c"]


def test_leaf_id_is_unique_across_policies_too(mesh):
    # routerd checks leafID per policy; the RR names the leaf's prefix-list and route-map after it, so two
    # policies with one leafID would give two neighbors one filter (issue 17): the later claim loses.
    other = claim("leaf-b2", 40, "cloudedge-leaves", leafID="leaf-b")
    mesh.append(other)
    report = run(mesh)
    assert [f.resource for f in report.errors if f.rule == "duplicate-leaf-id"] == ["SAMEnrollmentClaim/leaf-b2"]


def test_owned_address_is_unique_across_policies_too(mesh):
    mesh.append(claim("leaf-c", 40, "cloudedge-leaves", mobility__ownedAddresses=["10.77.60.32/32"]))
    report = run(mesh)
    assert [f.resource for f in report.errors if f.rule == "duplicate-owned-address"] == ["SAMEnrollmentClaim/leaf-c"]


def test_fou_transport_profile_requires_encap_sport_and_dport(mesh):
    spec = find(mesh, "SAMTransportProfile", "rr-a-fou")["spec"]
    del spec["encapSport"], spec["encapDport"]
    found = [f for f in run(mesh).errors if f.rule == "fou-requires-encap-ports"]
    assert sorted(f.path for f in found) == ["spec.encapDport", "spec.encapSport"]


@pytest.mark.parametrize("mode", ["ipip", "gre"])
def test_ipip_and_gre_transport_profiles_reject_fou_encap_ports(mesh, mode):
    find(mesh, "SAMTransportProfile", "rr-a")["spec"].update(mode=mode, encapSport=5555)
    (f,) = [f for f in run(mesh).errors if f.rule == "encap-ports-not-allowed"]
    assert f.path == "spec.encapSport" and mode in f.message


@pytest.mark.parametrize("field", ["joinNonce", "joinTimestamp", "joinHMAC"])
def test_join_token_from_requires_nonce_timestamp_and_hmac(mesh, field):
    spec = find(mesh, "SAMEnrollmentClaim", "leaf-b")["spec"]
    del spec[field]
    (f,) = [f for f in run(mesh).errors if f.rule == "join-auth-required"]
    assert f.path == "spec." + field


def test_duplicate_join_nonce_is_rejected_within_the_same_policy(mesh):
    mesh.append(claim("leaf-c", 33, joinNonce="leaf-b-0001"))
    assert [f.resource for f in run(mesh).errors if f.rule == "duplicate-join-nonce"] == ["SAMEnrollmentClaim/leaf-c"]


def test_unauthorized_mobility_pool_32_is_rejected(mesh):
    resign(set_fields(find(mesh, "SAMEnrollmentClaim", "leaf-b"), mobility__ownedAddresses=["10.77.61.5/32"]))
    (f,) = [f for f in run(mesh).errors if f.rule == "mobility-pool-owned"]
    assert str(f) == ("error: SAMEnrollmentClaim/leaf-b spec.mobility.ownedAddresses[0] [mobility-pool-owned] "
                      "10.77.61.5/32 is outside MobilityPool/cloudedge 10.77.60.0/24")


def test_owned_address_must_be_a_host_route(mesh):
    resign(set_fields(find(mesh, "SAMEnrollmentClaim", "leaf-b"), mobility__ownedAddresses=["10.77.60.0/28"]))
    assert "owned-host-route" in rules(run(mesh))


def test_revoked_claims_are_skipped_not_fatal(mesh):
    set_fields(find(mesh, "SAMEnrollmentClaim", "leaf-b"), revoked=True)
    report = run(mesh)
    assert report.ok and report.skipped == ["leaf-b"]
    (f,) = [f for f in report.findings if f.rule == "claim-revoked"]
    assert f.severity == "skipped" and f.resource == "SAMEnrollmentClaim/leaf-b"


def test_policy_without_join_token_is_rejected_unless_allow_unsigned():
    docs = [policy("open", joinTokenFrom=None), _pool(), claim("leaf-b", 32, "open", key=None)]
    del docs[0]["spec"]["joinTokenFrom"]
    report = run(docs)
    assert [f.resource for f in report.errors if f.rule == "unsigned-policy"] == ["SAMEnrollmentPolicy/open"]
    docs[0]["spec"]["allowUnsigned"] = True
    report = run(docs)
    assert report.ok and "unsigned-policy" in rules(report, "warning")
    assert [c.name for c in report.active["open"]] == ["leaf-b"]


def test_join_timestamp_beyond_skew_in_the_future_is_rejected(mesh):
    resign(set_fields(find(mesh, "SAMEnrollmentClaim", "leaf-b"), joinTimestamp="2026-06-28T01:05:01Z"))
    (f,) = [f for f in run(mesh).errors if f.rule == "timestamp-future"]
    assert f.path == "spec.joinTimestamp"


def test_join_timestamp_within_skew_is_accepted(mesh):
    resign(set_fields(find(mesh, "SAMEnrollmentClaim", "leaf-b"), joinTimestamp="2026-06-28T01:04:59Z"))
    assert run(mesh).ok


def test_unreadable_token_still_checks_presence_and_scope_and_says_hmac_unverified(mesh):
    claim_b = find(mesh, "SAMEnrollmentClaim", "leaf-b")
    claim_b["spec"]["joinHMAC"] = "EXAMPLE_HMAC_SHA256_HEX"
    tokens = {"cloudedge-private-fou-leaves": "token file /x does not exist"}
    report = run(mesh, tokens=tokens)
    assert report.ok and "leaf-b" in report.unverified
    (note,) = [f for f in report.findings if f.rule == "hmac-not-verified"
               and f.resource == "SAMEnrollmentPolicy/cloudedge-private-fou-leaves"]
    assert "not verified" in note.message and "/x does not exist" in note.message
    set_fields(claim_b, tunnelAddress="10.254.0.32/32")
    del claim_b["spec"]["joinNonce"]
    assert {"tunnel-address-prefix", "join-auth-required"} <= rules(run(mesh, tokens=tokens))


def test_wrong_join_hmac_is_rejected_and_names_the_policy(mesh):
    resign(find(mesh, "SAMEnrollmentClaim", "leaf-b"), key=b"another-token")
    (f,) = [f for f in run(mesh).errors if f.rule == "join-hmac"]
    assert f.message == "does not match SAMEnrollmentPolicy/cloudedge-private-fou-leaves joinTokenFrom"


def test_uppercase_join_hmac_is_rejected_like_routerd(mesh):
    spec = find(mesh, "SAMEnrollmentClaim", "leaf-b")["spec"]
    spec["joinHMAC"] = spec["joinHMAC"].upper()
    assert "join-hmac-format" in rules(run(mesh))


def test_signed_field_change_after_signing_breaks_the_hmac(mesh):
    set_fields(find(mesh, "SAMEnrollmentClaim", "leaf-b"), mobility__ownedAddresses=["10.77.60.33/32"])
    assert "join-hmac" in rules(run(mesh))


@pytest.mark.parametrize("field,value,rule", [
    ("leafID", "rogue-1", "leaf-id-pattern"),
    ("joinAudience", "someone-else", "join-audience"),
    ("rrSetRef", "SAMRRSet/other", "rrset-scope"),
    ("tunnelAddress", "10.254.0.32/32", "tunnel-address-prefix"),
])
def test_claim_outside_policy_scope_is_rejected(mesh, field, value, rule):
    resign(set_fields(find(mesh, "SAMEnrollmentClaim", "leaf-b"), **{field: value}))
    report = run(mesh)
    (f,) = [f for f in report.errors if f.rule == rule]
    assert f.resource == "SAMEnrollmentClaim/leaf-b" and f.path == "spec." + field
    assert "leaf-b" not in [c.name for c in report.active["cloudedge-private-fou-leaves"]]


def test_wireguard_allowed_ips_must_be_inside_allowed_extra_prefixes(mesh):
    resign(set_fields(find(mesh, "SAMEnrollmentClaim", "leaf-a"), wireGuard__allowedIPs=["0.0.0.0/0"]))
    (f,) = [f for f in run(mesh).errors if f.rule == "wireguard-allowed-ips"]
    assert f.path == "spec.wireGuard.allowedIPs[0]"


def test_expiry_is_the_earlier_of_ttl_and_expires_at(mesh):
    report = run(mesh)
    leaf = report.mesh.claims["leaf-b"]
    pol = report.mesh.policies["cloudedge-private-fou-leaves"]
    assert expiry(pol, leaf) == datetime.datetime(2026, 6, 29, tzinfo=datetime.timezone.utc)


def _pool():
    return res("MobilityPool", "cloudedge", {"prefix": "10.77.60.0/24", "groupRef": "cloudedge",
                                             "members": [{"nodeRef": "rr-a", "site": "dc-a", "role": "cloud"}]})
