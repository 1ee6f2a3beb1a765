"""Issue 17, classes 3 and 7 against real `samctl serve` processes.

3: the two RRs accept conflicting claims at the same moment (here: while they cannot reach each other); once
   they replicate, both pick the same winner from the records alone, report the loser and keep serving.
7: records pushed by the peer are checked like submissions; a poisoned one is refused on its own.
"""

import json

from harness import JOIN_KEY, claims, now_text, rule, wait_for

from boma_mesh_utils.sam.core import payload, wire


def conflicting():
    """leaf-0 and leaf-1 both own leaf-0's /32; leaf-1 signed 60 s earlier, so it keeps the /32."""
    x = claims(1, start=0, nonce="x", offset=-30)[0]
    y = claims(1, start=1, nonce="y", offset=-90)[0]
    y["spec"]["mobility"] = {"ownedAddresses": list(x["spec"]["mobility"]["ownedAddresses"])}
    y["spec"]["joinHMAC"] = payload.join_hmac(JOIN_KEY, y["spec"])
    return x, y


def listing(rr):
    return {i["name"]: i for i in json.loads(rr.admin("GET", wire.claims_path()).body)["items"]}


def audit(rr, event):
    items = json.loads(rr.admin("GET", wire.audit_path(1000)).body)["items"]
    return [i for i in items if i["event"] == event]


def test_both_rrs_resolve_a_conflict_the_same_way_and_tell_the_loser(mesh):
    alone = [mesh.rr("rr-a"), mesh.rr("rr-b")]      # a partition: no replication
    x, y = conflicting()
    try:
        for rr in alone:
            rr.start()
        assert alone[0].submit(x).status == 200          # rr-a takes leaf-0 first ...
        assert alone[1].submit(y).status == 200          # ... and rr-b the earlier-signed leaf-1 with the same /32
    finally:
        for rr in alone:
            rr.stop()
    pair = [mesh.rr("rr-a", ["rr-b"]), mesh.rr("rr-b", ["rr-a"])]
    try:
        for rr in pair:
            rr.start()
        assert wait_for(lambda: all(len(listing(rr)) == 2 for rr in pair), timeout=15)
        for rr in pair:
            items = listing(rr)
            assert items["leaf-1"]["active"] and "conflict" not in items["leaf-1"]
            assert not items["leaf-0"]["active"]
            assert items["leaf-0"]["conflict"]["rule"] == "duplicate-owned-address"
            resp = rr.topology("leaf-0")
            assert (resp.status, rule(resp)) == (409, "duplicate-owned-address")
            assert "SAMEnrollmentClaim/leaf-1" in json.loads(resp.body)["error"]["message"]
            assert rr.topology("leaf-1").status == 200
            health = json.loads(rr.api("GET", wire.health_path()).body)
            assert (health["active"], health["conflicts"]) == (1, 1)
        # rr-a learnt of the conflict from rr-b's record (and rr-b from rr-a's): both audit it.
        assert wait_for(lambda: all(audit(rr, "conflict-lost") for rr in pair), timeout=10)
        # A third claim for that /32 is refused on both, naming the holder.
        z = claims(1, start=2, nonce="z")[0]
        z["spec"]["mobility"] = {"ownedAddresses": list(x["spec"]["mobility"]["ownedAddresses"])}
        z["spec"]["joinHMAC"] = payload.join_hmac(JOIN_KEY, z["spec"])
        resp = pair[0].submit(z)
        assert resp.status == 409 and "leaf-1" in json.loads(resp.body)["error"]["message"]
    finally:
        for rr in pair:
            rr.stop()


def honest_record(index):
    doc = claims(1, start=index, nonce="peer")[0]
    return {"name": doc["metadata"]["name"], "policy": "bench", "nonce": doc["spec"]["joinNonce"],
            "spec": doc["spec"], "generation": 1, "acceptedAt": now_text(-5), "expiresAt": None,
            "revoked": False, "revokedReason": None}


def test_a_poisoned_record_from_the_peer_is_refused_alone_and_nothing_breaks(mesh):
    rr = mesh.rr("rr-a").start()
    try:
        future = honest_record(1)
        future["spec"]["joinTimestamp"] = "9999-12-31T23:59:59Z"        # signed by a token holder
        future["spec"]["joinHMAC"] = payload.join_hmac(JOIN_KEY, future["spec"])
        batch = [
            honest_record(0),
            future,
            dict(honest_record(2), acceptedAt="9999-12-31T23:59:59Z"),
            dict(honest_record(3), policy="elsewhere"),
            dict(honest_record(4), spec=dict(honest_record(4)["spec"], joinHMAC="0" * 64)),
            dict(honest_record(5), name="leaf-5\nfake log line"),
            dict(honest_record(6), generation="many"),
            honest_record(7),
        ]
        resp = rr.admin("POST", wire.records_path(), body={"records": batch, "nonces": [
            {"policy": "bench", "nonce": "\x1b[2J", "claim": "leaf-8", "usedAt": now_text()}]})
        assert resp.status == 200, resp.body
        answer = json.loads(resp.body)
        assert sorted((r["ref"], r["rule"]) for r in answer["refused"]) == [
            ("SAMEnrollmentClaim/leaf-1", "timestamp-future"),
            ("SAMEnrollmentClaim/leaf-2", "time-future"),
            ("SAMEnrollmentClaim/leaf-3", "unknown-policy"),
            ("SAMEnrollmentClaim/leaf-4", "join-hmac"),
            ("SAMEnrollmentClaim/leaf-6", "malformed-record"),
            ("nonces[0]", "malformed-nonce"),
            ("records[5]", "identifier"),
        ]
        assert answer["imported"] >= 2
        assert sorted(listing(rr)) == ["leaf-0", "leaf-7"]
        assert json.loads(rr.api("GET", wire.health_path()).body)["active"] == 2
        assert len(audit(rr, "import-refused")) == 7
        # The peer offers the same records again at every resync: the audit says it once.
        assert rr.admin("POST", wire.records_path(), body={"records": batch}).status == 200
        assert len(audit(rr, "import-refused")) == 7
        assert "fake log line\n" not in rr.log.read_text()
        # A lone surrogate in a submission is a 400 naming the field, not a 500.
        doc = claims(1, start=9)[0]
        doc["spec"]["leafID"] = "leaf-\ud800"
        resp = rr.submit(doc)
        assert (resp.status, rule(resp)) == (400, "malformed-json") and "claim.spec.leafID" in resp.body.decode()
    finally:
        rr.stop()
