"""Issue 18: the RRs' held WireGuard public keys are merged into the served RRSet (pure part)."""

import base64
import copy

from boma_mesh_utils.sam.core import member_keys

KEY_A = base64.b64encode(b"a" * 32).decode()
KEY_B = base64.b64encode(b"b" * 32).decode()
SPEC = {"enrollmentPolicyRef": "SAMEnrollmentPolicy/p", "members": [
    {"nodeRef": "rr-a", "endpoint": "10.0.0.1", "wireGuard": {"publicKey": KEY_B, "endpoint": "10.0.0.1:51820"}},
    {"nodeRef": "rr-b", "endpoint": "10.0.0.2"}]}


def test_a_public_key_is_the_base64_text_of_32_bytes():
    assert member_keys.is_public_key(KEY_A)
    for bad in (None, 42, "", KEY_A[:-1], KEY_A + "=", base64.b64encode(b"x" * 31).decode() + "AA",
                "!" * 44, KEY_A.replace("Y", "\n"), base64.b64encode(b"c" * 33).decode()[:44]):
        assert not member_keys.is_public_key(bad), bad


def test_held_keys_win_and_the_document_is_never_changed():
    before = copy.deepcopy(SPEC)
    served = member_keys.with_member_keys(SPEC, {"rr-a": KEY_A, "rr-b": KEY_B})
    assert SPEC == before
    assert served["members"][0]["wireGuard"] == {"publicKey": KEY_A, "endpoint": "10.0.0.1:51820"}
    assert served["members"][1]["wireGuard"] == {"publicKey": KEY_B}   # a member without wireGuard gets the key
    assert served["enrollmentPolicyRef"] == SPEC["enrollmentPolicyRef"]


def test_unknown_nodes_bad_keys_and_no_keys_leave_the_spec_alone():
    assert member_keys.with_member_keys(SPEC, {}) is SPEC
    served = member_keys.with_member_keys(SPEC, {"rr-c": KEY_A, "rr-b": "not-a-key"})
    assert served == SPEC
    assert member_keys.with_member_keys({"members": "x"}, {"rr-a": KEY_A}) == {"members": "x"}
    odd = {"members": ["x", {"nodeRef": 3}, {"nodeRef": "rr-a"}]}
    assert member_keys.with_member_keys(odd, {"rr-a": KEY_A})["members"][:2] == ["x", {"nodeRef": 3}]


def test_mismatches_name_the_members_whose_document_key_differs():
    assert member_keys.mismatches(SPEC, {"rr-a": KEY_A, "rr-b": KEY_B}) == {"rr-a": KEY_B}
    assert member_keys.mismatches(SPEC, {"rr-a": KEY_B}) == {}
    assert member_keys.mismatches(SPEC, {"rr-a": "junk"}) == {}
    assert member_keys.member_nodes([SPEC, {"members": [{"nodeRef": "rr-c"}, "x"]}, None]) == {"rr-a", "rr-b", "rr-c"}
