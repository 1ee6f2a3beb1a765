"""Issue 17 class 2: claim names have the safe identifier set, are bound to their leaf and policy, and every
accepted name can be revoked through the API and ``samctl claim``."""

import json
import subprocess

import pytest
from harness import JOIN_KEY, SAMCTL, claims, rule

from boma_mesh_utils.sam.core import payload, wire
from boma_mesh_utils.sam.io import admin_client


@pytest.fixture
def rr_a(mesh):
    rr = mesh.rr("rr-a").start()
    yield rr
    rr.stop()


def named(doc, name, **changes):
    doc["metadata"]["name"] = name
    doc["spec"].update(changes)
    doc["spec"]["joinHMAC"] = payload.join_hmac(JOIN_KEY, doc["spec"])
    return doc


def records(rr):
    return {i["name"]: i for i in json.loads(rr.admin("GET", wire.claims_path()).body)["items"]}


@pytest.mark.parametrize("name", [
    "leaf 0", "leaf-0\n", " leaf-0", "leaf-0\x07", "le\u0430f-0", "leaf\u20100", "-leaf-0", ".leaf", "a" * 64,
    "leaf-0\r\nX-Injected: 1",
])
def test_a_name_outside_the_safe_set_is_refused_at_submission(rr_a, name):
    resp = rr_a.submit(named(claims(1)[0], name))
    err = json.loads(resp.body)["error"]
    assert (resp.status, err["rule"]) == (400, "identifier"), err
    assert "claim.metadata.name" in err["message"]
    assert records(rr_a) == {}
    assert rr_a.submit(claims(1)[0]).status == 200, "the nonce was not used up and the service stays up"


def test_every_accepted_name_can_be_revoked_through_the_api_and_samctl(rr_a, mesh):
    names = ["a" * 63, "Leaf_0.x-y"]
    for index, (name, doc) in enumerate(zip(names, claims(2))):
        assert rr_a.submit(named(doc, name)).status == 200, index
    answer = admin_client.revoke("unix:" + rr_a.socket, "admin-api-token-ghijkl", names[0], reason="test")
    assert answer["revoked"] is True
    cli = subprocess.run([SAMCTL, "claim", "revoke", names[1], "--reason", "test", "--rr-socket", rr_a.socket,
                          "--admin-token-file", mesh.admin_token], check=False, capture_output=True, text=True,
                         timeout=30)
    assert cli.returncode == 0, cli.stderr
    assert all(records(rr_a)[name]["revoked"] for name in names)


def test_a_claim_under_another_leafs_name_does_not_replace_its_record(rr_a):
    first, second = claims(2)
    assert rr_a.submit(first).status == 200                      # leaf-0 under the name leaf-0
    hostile = named(second, "leaf-0")                           # leaf-1, validly signed, under leaf-0's name
    resp = rr_a.submit(hostile)
    err = json.loads(resp.body)["error"]
    assert (resp.status, err["rule"]) == (409, "claim-name-taken"), err
    assert "leaf-0" in err["message"] and "leaf-1" in err["message"]
    kept = records(rr_a)
    assert set(kept) == {"leaf-0"} and kept["leaf-0"]["leafID"] == "leaf-0" and kept["leaf-0"]["generation"] == 1
    assert rr_a.topology("leaf-0").status == 200
    # Nor after the owner's record was revoked: a name stays bound to its leaf.
    assert rr_a.admin("POST", wire.revoke_path("leaf-0"), {"reason": "test"}).status == 200
    resp = rr_a.submit(named(claims(1, start=1, nonce="m")[0], "leaf-0"))
    assert (resp.status, rule(resp)) == (409, "claim-name-taken")


def test_the_same_leaf_and_policy_may_replace_its_own_record(rr_a):
    assert rr_a.submit(claims(1)[0]).status == 200
    assert rr_a.submit(claims(1, nonce="again")[0]).status == 200
    assert records(rr_a)["leaf-0"]["generation"] == 2


def test_a_leaf_id_with_a_trailing_newline_does_not_match_the_policy_pattern(rr_a):
    resp = rr_a.submit(named(claims(1)[0], "leaf-0", leafID="leaf-0\n"))
    err = json.loads(resp.body)["error"]
    assert resp.status == 422, err
    found = {(f["path"], f["rule"]) for f in err["findings"]}
    assert found >= {("spec.leafID", "leaf-id-pattern"), ("spec.leafID", "identifier")}
    assert records(rr_a) == {}
