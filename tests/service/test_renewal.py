"""Lease renewal through real `samctl serve` processes (issue 18, item 3): a non-event on both RRs.

The leaf signs its intent again (core/signing, as `samctl agent` does) with a new nonce and timestamp; each
renewal is accepted, the generation rises, no RR reports a conflict and the listing holds one active record; the
nonces already used stay refused.
"""

import datetime
import json

from harness import JOIN_KEY, claims, rule, wait_for

from boma_mesh_utils.sam.core import signing, wire

NONCES = ("1" * 32, "2" * 32, "3" * 32)


def intent():
    doc = claims(1)[0]
    for field in signing.SIGNED_FIELDS:
        del doc["spec"][field]
    assert signing.is_intent(doc["spec"])
    return doc


def signed(doc, nonce, seconds_ago):
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds_ago)
    return {**doc, "spec": signing.sign_claim(doc["spec"], JOIN_KEY, nonce, now)}


def health(rr):
    return json.loads(rr.api("GET", wire.health_path(), token=None).body)


def listing(rr):
    return json.loads(rr.admin("GET", wire.claims_path()).body)["items"]


def test_submit_and_renew_twice_is_accepted_without_a_conflict_and_old_nonces_stay_refused(pair):
    rr_a, rr_b = pair
    doc = intent()
    versions = [signed(doc, nonce, ago) for nonce, ago in zip(NONCES, (60, 30, 0))]
    for generation, version in enumerate(versions, start=1):
        resp = rr_a.submit(version)
        assert resp.status == 200, resp.body
        assert json.loads(resp.body)["generation"] == generation
        assert wait_for(lambda g=generation: [(i["name"], i["generation"]) for i in listing(rr_b)]
                        == [("leaf-0", g)]), "rr-b never saw generation %d" % generation
        for rr in (rr_a, rr_b):
            assert health(rr)["conflicts"] == 0 and health(rr)["active"] == 1, rr.name
            (item,) = listing(rr)
            assert item["active"] and "conflict" not in item, (rr.name, item)
            assert rr.topology("leaf-0").status == 200
    for old in versions:        # the renewal just accepted included: each signed claim is used once
        for rr in (rr_a, rr_b):
            resp = rr.submit(old)
            assert (resp.status, rule(resp)) == (409, "nonce-replay"), rr.name
    (item,) = listing(rr_a)
    assert item["generation"] == 3 and item["active"]
