"""Several join tokens per policy (spec.joinTokens): parsing, which token signed a claim, leases, retirement."""

import copy
import datetime

import pytest

from boma_mesh_utils.sam.core.fields import format_time
from boma_mesh_utils.sam.core.keyring import JoinKey, keys_of, signer
from boma_mesh_utils.sam.core.loader import load_resources
from boma_mesh_utils.sam.core.registry import RETIRED, Registry, Rejection
from boma_mesh_utils.sam.core.validate import validate
from boma_mesh_utils.sam.rr.reconcile import Reconciler
from support import synthetic

OLD, NEW = b"old-join-token-aaaa", b"new-join-token-bbbb"
NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)
STAMP = "2026-11-23T11:59:00Z"
RETIRE = NOW + datetime.timedelta(hours=2)


def documents(tokens):
    docs = copy.deepcopy(synthetic.service_documents("/nonexistent"))
    del docs[1]["spec"]["joinTokenFrom"]
    docs[1]["spec"]["joinTokens"] = tokens
    return docs


def rotation_docs():
    return documents([{"id": "2026-05", "file": "/etc/boma/old", "notAfter": format_time(RETIRE)},
                      {"id": "2026-11", "file": "/etc/boma/new"}])


def keys(old_until=RETIRE):
    return [JoinKey("2026-05", OLD, old_until), JoinKey("2026-11", NEW)]


def errors(report):
    return [(f.resource, f.path, f.rule) for f in report.errors]


def resources(docs):
    found, findings = load_resources([("rr", {"resources": docs})])
    assert findings == []
    return found


def test_join_tokens_parse_with_ids_and_not_after():
    report = validate(resources(rotation_docs()), now=NOW)
    assert report.ok, errors(report)
    policy = report.mesh.policies["bench"]
    assert [(t.id, t.source.file, t.not_after) for t in policy.tokens] == [
        ("2026-05", "/etc/boma/old", RETIRE), ("2026-11", "/etc/boma/new", None)]
    assert policy.token.file == "/etc/boma/old"        # still a signed policy for every older rule


def test_routerd_join_token_from_is_the_token_default():
    report = validate(resources(synthetic.service_documents("/etc/boma/t")), now=NOW)
    assert [(t.id, t.source.file) for t in report.mesh.policies["bench"].tokens] == [("default", "/etc/boma/t")]


@pytest.mark.parametrize("tokens, path, rule", [
    ([{"id": "a", "file": "/x"}, {"id": "a", "file": "/y"}], "spec.joinTokens[1].id", "join-token-id"),
    ([{"id": "has space", "file": "/x"}], "spec.joinTokens[0].id", "join-token-id"),
    ([{"file": "/x"}], "spec.joinTokens[0].id", "required"),
    ([{"id": "a", "file": "/x", "env": "T"}], "spec.joinTokens[0]", "secret-source"),
    ([{"id": "a", "file": "/x", "notAfter": "tomorrow"}], "spec.joinTokens[0].notAfter", "rfc3339"),
    (["just-a-string"], "spec.joinTokens[0]", "type"),
    ([], "spec.joinTokens", "required"),
])
def test_bad_join_tokens_name_the_field(tokens, path, rule):
    report = validate(resources(documents(tokens)), now=NOW)
    assert ("SAMEnrollmentPolicy/bench", path, rule) in errors(report), errors(report)


def test_join_token_from_and_join_tokens_together_are_refused():
    docs = documents([{"id": "a", "file": "/x"}])
    docs[1]["spec"]["joinTokenFrom"] = {"file": "/y"}
    assert ("SAMEnrollmentPolicy/bench", "spec.joinTokens", "join-token-sources") in errors(
        validate(resources(docs), now=NOW))


def test_a_claim_signed_with_either_token_is_valid_and_the_signer_is_named():
    docs = rotation_docs() + synthetic.signed_claims(1, OLD, STAMP) + synthetic.signed_claims(1, NEW, STAMP, start=1)
    report = validate(resources(docs), tokens={"bench": keys()}, now=NOW)
    assert report.ok, errors(report)
    assert {name: key.id for name, key in report.signed_with.items()} == {"leaf-0": "2026-05", "leaf-1": "2026-11"}


def test_a_claim_of_a_token_past_its_not_after_or_of_no_listed_token_is_refused():
    docs = rotation_docs() + synthetic.signed_claims(1, OLD, STAMP)
    report = validate(resources(docs), tokens={"bench": keys(old_until=NOW - datetime.timedelta(seconds=1))}, now=NOW)
    assert [(f.path, f.rule) for f in report.errors] == [("spec.joinHMAC", "join-token-expired")]
    assert "'2026-05'" in report.errors[0].message and "re-sign" in report.errors[0].message
    report = validate(resources(docs), tokens={"bench": [JoinKey("2026-11", NEW)]}, now=NOW)
    assert [(f.path, f.rule) for f in report.errors] == [("spec.joinHMAC", "join-hmac")]
    assert "join tokens (2026-11)" in report.errors[0].message


def test_an_unreadable_token_leaves_the_claim_unverified_not_refused():
    docs = rotation_docs() + synthetic.signed_claims(1, OLD, STAMP)
    unreadable = JoinKey("2026-05", "token file /etc/boma/old does not exist")
    report = validate(resources(docs), tokens={"bench": [unreadable, JoinKey("2026-11", NEW)]}, now=NOW)
    assert report.ok and report.unverified == ["leaf-0"]
    note = [f for f in report.findings if f.rule == "hmac-not-verified"][0]
    assert note.path == "spec.joinTokens" and "2026-05: token file /etc/boma/old does not exist" in note.message


def test_keyring_helpers():
    assert keys_of(b"k") == [JoinKey("default", b"k")] and keys_of(None) == []
    spec = synthetic.signed_claims(1, NEW, STAMP)[0]["spec"]
    assert signer(keys(), spec).id == "2026-11" and signer([JoinKey("x", "unreadable")], spec) is None


def registry(key_list):
    return Registry(resources(rotation_docs()), tokens={"bench": key_list})


def record(doc):
    return {"name": doc["metadata"]["name"], "policy": "bench", "nonce": doc["spec"]["joinNonce"],
            "spec": doc["spec"], "generation": 1, "acceptedAt": STAMP, "expiresAt": None, "revoked": False,
            "revokedReason": None}


def test_the_lease_of_a_claim_ends_with_its_token():
    reg = registry(keys())
    old, new = synthetic.signed_claims(1, OLD, STAMP)[0], synthetic.signed_claims(1, NEW, STAMP, start=1)[0]
    reg.put(record(old))
    reg.put(record(new))
    assert reg.expiry_of("leaf-0") == RETIRE                       # ttl 24h, but the token goes in 2 h
    assert reg.expiry_of("leaf-1") == datetime.datetime(2026, 11, 24, 11, 59, tzinfo=datetime.timezone.utc)
    assert reg.is_active("leaf-0", NOW) and not reg.is_active("leaf-0", RETIRE)
    assert reg.next_expiry(NOW) == RETIRE
    listed = reg.listing(NOW, retiring=True)["items"]
    assert [(i["name"], i["joinToken"]) for i in listed] == [("leaf-0", {
        "id": "2026-05", "notAfter": format_time(RETIRE), "retiring": True, "status": "retiring"})]
    desired = {r.name: r.spec for r in reg.desired_resources() if r.kind == "SAMEnrollmentClaim"}
    assert desired["leaf-0"]["expiresAt"] == format_time(RETIRE) and "expiresAt" not in desired["leaf-1"]
    assert reg.signed_with["leaf-0"].key == OLD and reg.signed_with["leaf-1"].key == NEW


def test_a_claim_whose_token_was_removed_is_retired_everywhere():
    reg = registry([JoinKey("2026-11", NEW)])
    reg.put(record(synthetic.signed_claims(1, OLD, STAMP)[0]))
    assert reg.signed_with["leaf-0"] is RETIRED and not reg.is_active("leaf-0", NOW)
    assert [r for r in reg.desired_resources() if r.kind == "SAMEnrollmentClaim"] == []
    assert reg.token_info("leaf-0")["status"] == "retired"
    with pytest.raises(Rejection) as exc:
        reg.topology("rrs", "SAMEnrollmentClaim/leaf-0", NOW)
    assert (exc.value.status, exc.value.rule) == (410, "join-token-retired")
    # A token this RR cannot read proves nothing either way: the claim is not dropped for it.
    reg = registry([JoinKey("2026-05", "token file /etc/boma/old does not exist"), JoinKey("2026-11", NEW)])
    reg.put(record(synthetic.signed_claims(1, OLD, STAMP)[0]))
    assert reg.signed_with["leaf-0"] is None and reg.is_active("leaf-0", NOW)
    assert reg.token_info("leaf-0")["status"] == "unverified"


def test_the_reconciler_wakes_when_a_lease_ends_without_a_request():
    runs = []
    reconciler = Reconciler(lambda: runs.append(1) or "ok", interval=0.0,
                            next_due=lambda: 0.1 if len(runs) < 3 else None)
    reconciler.start()
    try:
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=10)
        while len(runs) < 3 and datetime.datetime.now() < deadline:
            reconciler.stopping.wait(0.05)
    finally:
        reconciler.stop()
    assert len(runs) >= 3   # start-up, then twice on the lease timer alone
