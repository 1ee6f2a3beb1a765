"""Issue 17, class 3: claims that both RRs accepted at once resolve the same way on both, from the records alone."""

import datetime

import pytest

from boma_mesh_utils.sam.core import admission, payload
from boma_mesh_utils.sam.core.loader import Resource, load_resources
from boma_mesh_utils.sam.core.registry import Registry, Rejection
from boma_mesh_utils.sam.core.validate import validate, validate_leaving_out
from support import synthetic

KEY = b"registry-test-token"
NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)


def registry(records=()):
    resources, _findings = load_resources([("rr", {"resources": synthetic.service_documents("/nonexistent")})])
    return Registry(resources, records)


def record(doc, accepted="2026-11-23T11:59:30Z"):
    return {"name": doc["metadata"]["name"], "policy": "bench", "nonce": doc["spec"]["joinNonce"],
            "spec": doc["spec"], "generation": 1, "acceptedAt": accepted, "expiresAt": None,
            "revoked": False, "revokedReason": None}


def colliding():
    """leaf-0 (joinTimestamp 11:59:00) and leaf-1 (11:58:00, earlier) both own 10.64.0.1/32; leaf-2 is honest."""
    first = synthetic.signed_claims(1, KEY, timestamp="2026-11-23T11:59:00Z")[0]
    second, third = synthetic.signed_claims(2, KEY, timestamp="2026-11-23T11:58:00Z", start=1)
    second["spec"]["mobility"] = {"ownedAddresses": list(first["spec"]["mobility"]["ownedAddresses"])}
    second["spec"]["joinHMAC"] = payload.join_hmac(KEY, second["spec"])
    return [record(first), record(second), record(third)]


@pytest.mark.parametrize("order", [(0, 1, 2), (1, 0, 2), (2, 1, 0)])
def test_the_same_loser_whatever_order_the_records_arrived_in(order):
    records = colliding()
    reg = registry(records[i] for i in order)
    lost = reg.conflicts(NOW)
    # The earlier joinTimestamp keeps the /32: leaf-1, although leaf-0 may have been stored first.
    assert list(lost) == ["leaf-0"] and lost["leaf-0"].rule == "duplicate-owned-address"
    assert "SAMEnrollmentClaim/leaf-1" in lost["leaf-0"].message
    assert [reg.is_active(n, NOW) for n in ("leaf-0", "leaf-1", "leaf-2")] == [False, True, True]


def test_the_loser_is_told_listed_and_left_out_of_the_desired_state():
    reg = registry(colliding())
    with pytest.raises(Rejection) as exc:
        reg.topology("rrs", "SAMEnrollmentClaim/leaf-0", NOW)
    assert (exc.value.status, exc.value.rule) == (409, "duplicate-owned-address")
    assert "earlier joinTimestamp" in exc.value.message
    assert reg.topology("rrs", "SAMEnrollmentClaim/leaf-1", NOW)["claimRef"] == "SAMEnrollmentClaim/leaf-1"
    items = {i["name"]: i for i in reg.listing(NOW)["items"]}
    assert items["leaf-0"]["conflict"]["rule"] == "duplicate-owned-address" and not items["leaf-0"]["active"]
    assert "conflict" not in items["leaf-1"]
    desired = reg.desired_resources(NOW)
    assert sorted(r.name for r in desired if r.kind == "SAMEnrollmentClaim") == ["leaf-1", "leaf-2"]
    # ... so the validator accepts the rest instead of refusing the whole set over one conflict.
    assert validate(desired, now=NOW).ok
    assert not validate(reg.desired_resources(), now=NOW).ok


def test_a_loser_takes_over_when_the_winner_is_revoked_and_submissions_see_the_winner():
    records = colliding()
    reg = registry(records)
    claim = reg.claims["leaf-0"]
    with pytest.raises(Rejection) as exc:          # a third claim for the /32 names the holder, not the loser
        reg.check_conflicts(claim.__class__(**{**claim.__dict__, "name": "leaf-9"}), "bench", NOW)
    assert "SAMEnrollmentClaim/leaf-1" in exc.value.message
    reg.put(dict(records[1], revoked=True))
    assert reg.conflicts(NOW) == {} and reg.is_active("leaf-0", NOW)


def test_validate_leaving_out_keeps_the_honest_claims_and_says_why():
    resources = registry(colliding()).desired_resources()
    report, left_out = validate_leaving_out(resources, now=NOW)
    assert report.ok and list(left_out) == ["SAMEnrollmentClaim/leaf-0"]
    assert left_out["SAMEnrollmentClaim/leaf-0"][0].rule == "duplicate-owned-address"
    assert sorted(c.name for cs in report.active.values() for c in cs) == ["leaf-1", "leaf-2"]
    # An error in the RR's own documents still stops everything: those are the operator's.
    broken = [r if r.kind != "SAMRRSet" else Resource(r.kind, r.name, {"members": "x"}) for r in resources]
    report, _left = validate_leaving_out(broken, now=NOW)
    assert not report.ok


def test_a_year_9999_timestamp_never_raises():
    doc = synthetic.signed_claims(1, KEY, timestamp="9999-12-31T23:59:59Z")[0]
    reg = registry([record(doc, accepted="9999-12-31T23:59:59Z")])
    assert reg.expiry_of("leaf-0") == admission.NEVER
    assert reg.is_active("leaf-0", NOW)          # what to do with it is the import check's job (rr/imports.py)
    assert reg.listing(NOW)["items"][0]["name"] == "leaf-0"
    assert reg.next_expiry(NOW) == admission.NEVER
