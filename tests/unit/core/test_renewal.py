"""Lease renewal on the RR is a non-event (issue 18, item 3).

A renewal is a new claim from the same leaf (same name, leafID, policy, identities; new nonce and timestamp, so a
new joinHMAC). It must replace the leaf's record without a duplicate conflict, leave the RR's materialized state
and its FRR text byte-identical (nothing for the reconciler to apply), and keep the old nonce burned.

The submission path is the service's (rr/service.submit) without threads or HTTP: Registry.check, check_conflicts,
the store's commit (which owns the nonce rule), Registry.put.
"""

import datetime
import json
import pathlib

import pytest

from boma_mesh_utils.sam.cli import common
from boma_mesh_utils.sam.core import signing
from boma_mesh_utils.sam.core.loader import load_resources
from boma_mesh_utils.sam.core.materialize import materialize
from boma_mesh_utils.sam.core.registry import Registry
from boma_mesh_utils.sam.core.render.frr import render_frr
from boma_mesh_utils.sam.core.validate import validate_leaving_out
from boma_mesh_utils.sam.io.tokens import read_token
from boma_mesh_utils.sam.rr.store import Store, StoreRejected

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures"
T0 = datetime.datetime(2026, 6, 28, 0, 0, tzinfo=datetime.timezone.utc)
POLICY = "cloudedge-public-wg-leaves"
WG_KEY = "I+4Y+hjlbT6+dKuOP/vY4/dy7IuYUtDmhTuhJSJgjwA="


def key():
    return read_token(file=str(FIXTURES / "tokens" / "cloudedge-join-token"))


def intent(name="cloudedge-leaf-a-wg-intent.yaml"):
    (doc,) = [r for _s, router in common.load_file(str(FIXTURES / "intent" / name))
              for r in router["spec"]["resources"] if r["kind"] == "SAMEnrollmentClaim"]
    return doc["spec"]


def sign(nonce_byte, now):
    return signing.sign_claim(intent(), key(), nonce_byte * 32, now, wg_public_key=WG_KEY)


@pytest.fixture
def rr(tmp_path):
    resources, findings = load_resources(common.load_file(str(FIXTURES / "routerd" / "cloudedge-rr-a.yaml")))
    assert findings == []
    store = Store(str(tmp_path / "claims.db"))
    yield Registry(resources, tokens={POLICY: key()}), store
    store.close()


def submit(rr, spec, now, name="leaf-a"):
    """rr/service.submit's steps: check, conflicts, the store's commit (nonce rule), put; the record or a refusal."""
    reg, store = rr
    claim, policy, signer, _digest = reg.check(name, spec, reg.tokens, now)
    reg.check_conflicts(claim, policy, now)
    (result,) = store.accept_many([{"name": name, "policy": policy, "nonce": claim.nonce, "spec": spec,
                                    "expiresAt": spec.get("expiresAt")}], common_time(now))
    if isinstance(result, StoreRejected):
        return result
    reg.put(result, claim, signer)
    return result


def common_time(now):
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def rr_state(reg, now):
    report, left_out = validate_leaving_out(reg.desired_resources(now), now=now)
    assert report.ok and left_out == {}
    return materialize(report, "rr-a")


def test_a_renewal_replaces_the_record_and_changes_nothing_on_the_rr(rr):
    reg, store = rr
    first = sign("a", T0)
    assert submit(rr, first, T0)["generation"] == 1
    before_state = rr_state(reg, T0 + datetime.timedelta(seconds=30))
    before_frr = render_frr(before_state)
    assert "leaf-a" in json.dumps(before_state) and "10.77.60.31/32" in before_frr

    t1 = T0 + datetime.timedelta(seconds=30)
    renewal = sign("b", t1)
    assert renewal["joinHMAC"] != first["joinHMAC"] and renewal["joinTimestamp"] != first["joinTimestamp"]
    record = submit(rr, renewal, t1)
    assert record["generation"] == 2 and record["nonce"] == "b" * 32
    assert reg.conflicts(t1) == {}
    items = reg.listing(t1)["items"]
    assert [(i["name"], i["generation"], i["active"]) for i in items] == [("leaf-a", 2, True)]
    assert "conflict" not in items[0]
    assert reg.expiry_of("leaf-a") == t1 + datetime.timedelta(hours=24)   # the lease moved on

    after_state = rr_state(reg, t1)
    assert after_state == before_state                          # empty reconcile delta
    assert render_frr(after_state) == before_frr                # byte-identical FRR text
    assert len(store.claims()) == 1


def test_the_old_signed_claim_is_a_nonce_replay_after_a_renewal(rr):
    reg, _store = rr
    first = sign("a", T0)
    submit(rr, first, T0)
    t1 = T0 + datetime.timedelta(seconds=30)
    submit(rr, sign("b", t1), t1)
    t2 = t1 + datetime.timedelta(seconds=1)
    refused = submit(rr, first, t2)
    assert isinstance(refused, StoreRejected) and refused.rule == "nonce-replay"
    assert reg.records["leaf-a"]["generation"] == 2 and reg.records["leaf-a"]["nonce"] == "b" * 32
    # The renewal itself, resubmitted, is a replay too; a third signature is a renewal again.
    assert submit(rr, reg.records["leaf-a"]["spec"], t2).rule == "nonce-replay"
    assert submit(rr, sign("c", t2), t2)["generation"] == 3


def test_a_renewal_with_a_new_wireguard_key_is_not_a_conflict_with_itself(rr):
    reg, _store = rr
    submit(rr, sign("a", T0), T0)
    t1 = T0 + datetime.timedelta(minutes=1)
    other_key = "Vwx8I2800y295QsGAWEzFl1Opq2pw49ych1cTzLcZEQ="
    rotated = signing.sign_claim(intent(), key(), "d" * 32, t1, wg_public_key=other_key)
    assert submit(rr, rotated, t1)["generation"] == 2
    assert reg.conflicts(t1) == {}
    # The materialized WireGuard peer follows the new key (a real change, unlike a plain renewal).
    peers = [r for r in rr_state(reg, t1)["resources"] if r["kind"] == "WireGuardPeer"]
    assert [p["spec"]["publicKey"] for p in peers if p["spec"].get("claimRef") == "SAMEnrollmentClaim/leaf-a"] \
        == [other_key]
