"""Issue 17, class 7: records from the peer are checked like submissions; one bad one never stops the others."""

import datetime
import sqlite3

import pytest

from boma_mesh_utils.sam.core import payload
from boma_mesh_utils.sam.core.loader import load_resources
from boma_mesh_utils.sam.core.registry import Registry, Rejection
from boma_mesh_utils.sam.rr import imports
from boma_mesh_utils.sam.rr.store import Store
from support import synthetic

KEY = b"imports-test-token-0123"
NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)
STAMP = "2026-11-23T11:59:00Z"


def registry():
    resources, _findings = load_resources([("rr", {"resources": synthetic.service_documents("/nonexistent")})])
    return Registry(resources, (), {"bench": KEY})


def record(index=0, **extra):
    doc = synthetic.signed_claims(1, KEY, timestamp=STAMP, start=index)[0]
    rec = {"name": doc["metadata"]["name"], "policy": "bench", "nonce": doc["spec"]["joinNonce"],
           "spec": doc["spec"], "generation": 1, "acceptedAt": STAMP, "expiresAt": None,
           "revoked": False, "revokedReason": None}
    rec.update(extra)
    return rec


def resigned(rec, **spec):
    rec = dict(rec, spec=dict(rec["spec"], **spec))
    rec["spec"]["joinHMAC"] = payload.join_hmac(KEY, rec["spec"])
    return rec


def rule_of(rec, local=None):
    try:
        imports.check_record(registry(), 0, rec, local, NOW)
    except Rejection as exc:
        return exc.rule
    return None


def test_an_honest_record_passes():
    assert rule_of(record()) is None


@pytest.mark.parametrize(("change", "rule"), [
    (lambda r: dict(r, policy="nobody"), "unknown-policy"),
    (lambda r: dict(r, name="leaf 0\n"), "identifier"),
    (lambda r: dict(r, generation="1"), "malformed-record"),
    (lambda r: dict(r, generation=True), "malformed-record"),
    (lambda r: dict(r, generation=0), "malformed-record"),
    (lambda r: dict(r, acceptedAt="9999-12-31T23:59:59Z"), "time-future"),
    (lambda r: dict(r, acceptedAt="yesterday"), "time-format"),
    (lambda r: dict(r, expiresAt=7), "time-format"),
    (lambda r: dict(r, revokedReason="x" * 5000), "malformed-record"),
    (lambda r: dict(r, nonce="n\x1b[2J"), "malformed-record"),
    (lambda r: dict(r, spec=dict(r["spec"], joinHMAC="0" * 64)), "join-hmac"),
    (lambda r: dict(r, spec=dict(r["spec"], endpoint="192.0.2.1")), "join-hmac"),
    (lambda r: dict(r, spec=dict(r["spec"], leafID="leaf-\ud800")), "malformed-record"),
    (lambda r: dict(r, nonce="other"), "record-mismatch"),
    # Signed by a token holder, year-9999 joinTimestamp: refused as a submission would be.
    (lambda r: resigned(r, joinTimestamp="9999-12-31T23:59:59Z"), "timestamp-future"),
    (lambda r: "not a record", "malformed-record"),
])
def test_a_bad_record_is_refused_with_its_rule(change, rule):
    assert rule_of(change(record())) == rule


def test_a_known_record_carries_only_its_revocation():
    local = record()
    # The same nonce: the spec is the one this RR checked itself, so a retired token cannot stop a revocation.
    assert rule_of(dict(local, revoked=True, spec=dict(local["spec"], joinHMAC="0" * 64)), local) is None


def test_nonce_entries_are_checked():
    good = {"policy": "bench", "nonce": "n-1", "claim": "leaf-1", "usedAt": STAMP}
    assert imports.nonce_problem(0, good, NOW) is None
    assert imports.nonce_problem(0, dict(good, usedAt="9999-01-01T00:00:00Z"), NOW)
    assert imports.nonce_problem(0, dict(good, nonce="x" * 300), NOW)
    assert imports.nonce_problem(0, dict(good, claim="a\nb"), NOW)
    assert imports.nonce_problem(0, "n-1", NOW)


def test_refusals_escape_what_the_peer_sent():
    entry = imports.refusal(3, {"name": "evil\n"}, "identifier", "x\x1b[2J\ny")
    assert entry == {"ref": "records[3]", "rule": "identifier", "message": "x\\x1b[2J\\ny"}


def test_a_poisoned_item_never_fails_the_group_commit_of_the_others(tmp_path):
    store = Store(str(tmp_path / "c.db"))
    honest = [{"name": "leaf-%d" % i, "policy": "bench", "nonce": "n-%d" % i, "spec": {}} for i in range(3)]
    poison = {"name": "leaf-9", "policy": "bench", "nonce": "n-\ud800", "spec": {}}   # SQLite cannot encode it
    results = store.accept_many(honest[:1] + [poison] + honest[1:], STAMP)
    assert isinstance(results[1], UnicodeEncodeError)
    assert [r["name"] for r in results if isinstance(r, dict)] == ["leaf-0", "leaf-1", "leaf-2"]
    assert sorted(r["name"] for r in store.claims()) == ["leaf-0", "leaf-1", "leaf-2"]
    assert not store.nonce_used("bench", "n-9")
    store.close()
    assert sqlite3.connect(str(tmp_path / "c.db")).execute("SELECT count(*) FROM nonces").fetchone()[0] == 3


def test_same_name_and_generation_from_both_rrs_converge(tmp_path):
    early = record()
    late = resigned(dict(record(), nonce="n-late"), joinNonce="n-late", joinTimestamp="2026-11-23T11:59:30Z")
    names = []
    for order in ((early, late), (late, early)):
        store = Store(str(tmp_path / ("%d.db" % len(names))))
        for rec in order:
            store.import_record(rec, STAMP)
        names.append(store.record("leaf-0")["nonce"])
        store.close()
    assert names == [early["nonce"], early["nonce"]]
