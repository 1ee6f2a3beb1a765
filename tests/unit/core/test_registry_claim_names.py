"""Issue 17 class 2: a claim name is bound to its leafID and policy in the RR's registry."""

import copy

import pytest
from test_registry import KEY, NOW, STAMP, record

from boma_mesh_utils.sam.core.loader import Resource, load_resources
from boma_mesh_utils.sam.core.model import parse_claim
from boma_mesh_utils.sam.core.registry import Registry, Rejection
from support import synthetic


def registry(second_policy=False):
    docs = synthetic.service_documents("/nonexistent")
    if second_policy:
        other = copy.deepcopy(docs[1])
        other["metadata"]["name"] = "other"
        docs.append(other)
    resources, _findings = load_resources([("rr", {"resources": docs})])
    return Registry(resources)


def claim(doc, name):
    return parse_claim(Resource("SAMEnrollmentClaim", name, doc["spec"]), [])


def test_a_name_held_by_another_leaf_is_refused_even_when_revoked():
    reg = registry()
    first, second = synthetic.signed_claims(2, KEY, timestamp=STAMP)
    reg.put(record(first))
    with pytest.raises(Rejection) as exc:
        reg.check_conflicts(claim(second, "leaf-0"), "bench", NOW)
    assert (exc.value.status, exc.value.rule) == (409, "claim-name-taken")
    assert "leaf-1" in exc.value.message and "leaf-0" in exc.value.message
    reg.put(record(first, revoked=True))
    with pytest.raises(Rejection, match="claim-name-taken"):
        reg.check_conflicts(claim(second, "leaf-0"), "bench", NOW)


def test_the_same_leaf_may_replace_its_record_but_not_from_another_policy():
    reg = registry(second_policy=True)
    first = synthetic.signed_claims(1, KEY, timestamp=STAMP)[0]
    reg.put(record(first))
    reg.check_conflicts(claim(first, "leaf-0"), "bench", NOW)          # same leaf, same policy: a renewal
    moved = copy.deepcopy(first)
    moved["spec"]["policyRef"] = "SAMEnrollmentPolicy/other"
    with pytest.raises(Rejection, match="claim-name-taken"):
        reg.check_conflicts(claim(moved, "leaf-0"), "other", NOW)


def test_a_name_reserved_by_a_submission_in_flight_is_bound_too():
    reg = registry()
    first, second = synthetic.signed_claims(2, KEY, timestamp=STAMP)
    mine = claim(first, "leaf-x")
    reg.reserve(mine, "bench")
    with pytest.raises(Rejection, match="claim-name-taken"):
        reg.check_conflicts(claim(second, "leaf-x"), "bench", NOW)
    reg.check_conflicts(mine, "bench", NOW)
    reg.release(mine, "bench")
    reg.check_conflicts(claim(second, "leaf-x"), "bench", NOW)
    assert reg.reserved == {}
