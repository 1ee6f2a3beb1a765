"""The RR's pure admission registry: conflicts, reservations, leases, topology answers."""

import datetime

import pytest

from boma_mesh_utils.sam.core.lease import claim_digest
from boma_mesh_utils.sam.core.loader import Resource, load_resources
from boma_mesh_utils.sam.core.model import parse_claim
from boma_mesh_utils.sam.core.records import overlay
from boma_mesh_utils.sam.core.registry import Registry, Rejection
from support import synthetic

KEY = b"registry-test-token"
NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)
STAMP = "2026-11-23T11:59:00Z"


def registry():
    resources, _findings = load_resources([("rr", {"resources": synthetic.service_documents("/nonexistent")})])
    return Registry(resources)


def record(doc, generation=1, **extra):
    rec = {"name": doc["metadata"]["name"], "policy": "bench", "nonce": doc["spec"]["joinNonce"],
           "spec": doc["spec"], "generation": generation, "acceptedAt": STAMP, "expiresAt": None,
           "revoked": False, "revokedReason": None}
    rec.update(extra)
    return rec


def test_a_valid_claim_passes_and_a_forged_one_names_the_field():
    reg = registry()
    doc = synthetic.signed_claims(1, KEY, timestamp=STAMP)[0]
    claim, policy, signer, digest = reg.check("leaf-0", doc["spec"], {"bench": KEY}, NOW)
    assert digest == claim_digest(doc["spec"])
    assert signer.id == "default" and signer.key == KEY
    assert (claim.name, policy) == ("leaf-0", "bench")
    with pytest.raises(Rejection) as exc:
        reg.check("leaf-0", doc["spec"], {"bench": b"another-token"}, NOW)
    assert (exc.value.status, exc.value.rule, exc.value.findings[0]["path"]) == (422, "join-hmac", "spec.joinHMAC")


def test_an_unreadable_token_is_503_naming_the_reason_not_a_value():
    reg = registry()
    doc = synthetic.signed_claims(1, KEY, timestamp=STAMP)[0]
    with pytest.raises(Rejection) as exc:
        reg.check("leaf-0", doc["spec"], {"bench": "token file /x does not exist"}, NOW)
    assert exc.value.status == 503 and "/x does not exist" in exc.value.message


def test_identities_of_active_and_in_flight_claims_conflict_revoked_ones_do_not():
    reg = registry()
    first, second = synthetic.signed_claims(2, KEY, timestamp=STAMP)
    second["spec"]["tunnelAddress"] = first["spec"]["tunnelAddress"]
    reg.put(record(first))
    claim_b = parse_claim(Resource("SAMEnrollmentClaim", "leaf-1", second["spec"]), [])
    with pytest.raises(Rejection) as exc:
        reg.check_conflicts(claim_b, "bench", NOW)
    assert (exc.value.status, exc.value.rule) == (409, "duplicate-tunnel-address")
    reg.put(record(first, revoked=True))
    reg.check_conflicts(claim_b, "bench", NOW)          # the revoked owner no longer holds it
    claim_a = parse_claim(Resource("SAMEnrollmentClaim", "leaf-0", first["spec"]), [])
    reg.reserve(claim_a, "bench")                        # ... but a claim committing right now does
    with pytest.raises(Rejection):
        reg.check_conflicts(claim_b, "bench", NOW)
    reg.release(claim_a, "bench")
    reg.check_conflicts(claim_b, "bench", NOW)


def test_expiry_only_moves_earlier_and_the_record_overrides_the_spec():
    reg = registry()
    doc = synthetic.signed_claims(1, KEY, timestamp=STAMP)[0]
    reg.put(record(doc))
    assert reg.expiry_of("leaf-0") == NOW - datetime.timedelta(minutes=1) + datetime.timedelta(hours=24)
    with pytest.raises(Rejection, match="expiry-extend"):
        reg.new_expiry("leaf-0", "2027-01-01T00:00:00Z", NOW)
    assert reg.new_expiry("leaf-0", "2026-11-23T13:00:00+01:00", NOW) == "2026-11-23T12:00:00Z"
    with pytest.raises(Rejection, match="time-format"):
        reg.new_expiry("leaf-0", "tomorrow", NOW)
    assert overlay(record(doc, expiresAt="2026-11-23T12:30:00Z", revoked=True))["revoked"] is True


def test_topology_answers_only_an_active_claim_of_its_rrset():
    reg = registry()
    doc = synthetic.signed_claims(1, KEY, timestamp=STAMP)[0]
    with pytest.raises(Rejection, match="unknown-claim"):
        reg.topology("rrs", "SAMEnrollmentClaim/leaf-0", NOW)
    reg.put(record(doc))
    answer = reg.topology("rrs", "SAMEnrollmentClaim/leaf-0", NOW)
    assert answer["rrSet"]["spec"]["members"][0]["nodeRef"] == "rr-a"
    with pytest.raises(Rejection, match="rrset-mismatch"):
        reg.topology("other", "SAMEnrollmentClaim/leaf-0", NOW)
    with pytest.raises(Rejection, match="claim-expired"):
        reg.topology("rrs", "SAMEnrollmentClaim/leaf-0", NOW + datetime.timedelta(days=2))
    reg.put(record(doc, revoked=True))
    with pytest.raises(Rejection, match="claim-revoked"):
        reg.topology("rrs", "SAMEnrollmentClaim/leaf-0", NOW)
    assert reg.listing(NOW)["items"][0]["active"] is False
