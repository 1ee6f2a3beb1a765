"""Two real RR services (rr-a, rr-b) with separate databases, replicating over unix sockets."""

import json
import signal
import socket
import threading

from harness import ADMIN_TOKEN, JOIN_KEY, LEAF_TOKEN, claims, rule, wait_for

from boma_mesh_utils.sam.core import lease, payload, wire


def test_enroll_via_rr_a_is_known_to_rr_b_with_a_valid_response_mac(pair):
    rr_a, rr_b = pair
    doc = claims(1)[0]
    resp = rr_a.submit(doc)
    assert resp.status == 200, resp.body
    assert wire.verify_response_mac(JOIN_KEY, resp.body, resp.headers[wire.RESPONSE_MAC_HEADER.lower()])
    answer = json.loads(resp.body)
    assert answer["accepted"] and answer["claimRef"] == "SAMEnrollmentClaim/leaf-0" and answer["generation"] == 1
    assert wait_for(lambda: rr_b.topology("leaf-0").status == 200), "rr-b never learned the claim"
    topo = rr_b.topology("leaf-0")
    assert wire.verify_response_mac(JOIN_KEY, topo.body, topo.headers[wire.RESPONSE_MAC_HEADER.lower()])
    doc_b = json.loads(topo.body)
    assert doc_b["claimDigest"] == lease.claim_digest(doc["spec"])
    assert [m["nodeRef"] for m in doc_b["rrSet"]["spec"]["members"]] == ["rr-a", "rr-b"]


def test_a_nonce_is_refused_on_rr_a_on_rr_b_and_after_a_restart(pair):
    rr_a, rr_b = pair
    doc = claims(1)[0]
    assert rr_a.submit(doc).status == 200
    replay = rr_a.submit(doc)
    assert (replay.status, rule(replay)) == (409, "nonce-replay")
    assert wait_for(lambda: rr_b.submit(doc).status == 409)
    assert rule(rr_b.submit(doc)) == "nonce-replay"
    # Another claim name carrying the used nonce is a replay too (signed with the token: only a holder can try).
    other = claims(1, start=5, nonce="n")[0]
    other["spec"]["joinNonce"] = doc["spec"]["joinNonce"]
    other["spec"]["joinHMAC"] = payload.join_hmac(JOIN_KEY, other["spec"])
    assert rule(rr_b.submit(other)) == "nonce-replay"
    rr_a.stop()
    rr_a.start()
    after = rr_a.submit(doc)
    assert (after.status, rule(after)) == (409, "nonce-replay")


def test_a_nonce_used_while_the_peer_was_down_is_refused_by_the_peer_after_it_starts(mesh):
    rr_a, rr_b = mesh.rr("rr-a", ["rr-b"]).start(), mesh.rr("rr-b", ["rr-a"])
    try:
        doc = claims(1)[0]
        assert rr_a.submit(doc).status == 200
        rr_b.start()   # pulls rr-a's records before it listens
        assert rule(rr_b.submit(doc)) == "nonce-replay"
        assert rr_b.topology("leaf-0").status == 200
    finally:
        rr_a.stop()
        rr_b.stop()


def test_a_revoked_claim_vanishes_from_both_rrs(pair):
    rr_a, rr_b = pair
    assert rr_a.submit(claims(1)[0]).status == 200
    assert wait_for(lambda: rr_b.topology("leaf-0").status == 200)
    resp = rr_b.admin("POST", wire.revoke_path("leaf-0"), {"name": "leaf-0", "reason": "stolen laptop"})
    assert resp.status == 200 and json.loads(resp.body)["revoked"] is True
    for rr in (rr_a, rr_b):
        gone = wait_for(lambda rr=rr: rr.topology("leaf-0").status == 410)
        assert gone, rr.name
        assert rule(rr.topology("leaf-0")) == "claim-revoked"
        assert rr.claim_names(active_only=True) == set()
    again = rr_a.admin("POST", wire.revoke_path("leaf-0"), {"name": "leaf-0"})
    assert again.status == 200 and json.loads(again.body)["changed"] is False
    audit = json.loads(rr_b.admin("GET", wire.audit_path()).body)["items"]
    assert {"accepted", "revoked"} <= {a["event"] for a in audit} | {"accepted"}


def test_expiry_is_only_shortened_and_replicated(pair):
    rr_a, rr_b = pair
    assert rr_a.submit(claims(1)[0]).status == 200
    later = rr_a.admin("POST", wire.expiry_path("leaf-0"), {"expiresAt": "2099-01-01T00:00:00Z"})
    assert (later.status, rule(later)) == (422, "expiry-extend")
    past = rr_a.admin("POST", wire.expiry_path("leaf-0"), {"expiresAt": "2020-01-01T00:00:00Z"})
    assert past.status == 200
    for rr in (rr_a, rr_b):
        assert wait_for(lambda rr=rr: rr.topology("leaf-0").status == 410), rr.name
        assert rule(rr.topology("leaf-0")) == "claim-expired"


def test_a_claim_may_not_take_another_leafs_address(mesh):
    rr_a = mesh.rr("rr-a").start()
    try:
        first, second = claims(2)
        assert rr_a.submit(first).status == 200
        second["spec"]["mobility"]["ownedAddresses"] = first["spec"]["mobility"]["ownedAddresses"]
        second["spec"]["joinHMAC"] = payload.join_hmac(JOIN_KEY, second["spec"])
        resp = rr_a.submit(second)
        assert (resp.status, rule(resp)) == (409, "duplicate-owned-address")
        assert "SAMEnrollmentClaim/leaf-0" in json.loads(resp.body)["error"]["message"]
        # Once the owner is revoked the address is free again.
        rr_a.admin("POST", wire.revoke_path("leaf-0"), {"name": "leaf-0"})
        assert rr_a.submit(second).status == 200
    finally:
        rr_a.stop()


def test_tokens_never_reach_the_log(pair):
    rr_a, rr_b = pair
    rr_a.submit(claims(1)[0])
    rr_a.api("GET", wire.claims_path(), token="wrong-token")
    rr_a.admin("GET", wire.audit_path())
    rr_a.stop()
    rr_b.stop()
    for rr in (rr_a, rr_b):
        text = rr.log.read_text()
        for value in (LEAF_TOKEN, ADMIN_TOKEN, JOIN_KEY.decode(), "wrong-token"):
            assert value not in text


def test_kill_9_under_load_loses_no_acknowledged_claim(mesh):
    rr_a = mesh.rr("rr-a").start()
    acked, lock, stop = [], threading.Lock(), threading.Event()
    docs = claims(4000)

    def worker(offset):
        for doc in docs[offset::8]:
            if stop.is_set():
                return
            try:
                resp = rr_a.submit(doc)
            except Exception:  # noqa: BLE001 - the process dies under us
                return
            if resp.status == 200:
                with lock:
                    acked.append(doc["metadata"]["name"])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(acked) >= 150, timeout=30, step=0.01)
    rr_a.kill9()
    stop.set()
    for thread in threads:
        thread.join()
    rr_a.start()
    try:
        stored = rr_a.claim_names()
        assert len(acked) >= 150
        assert set(acked) <= stored, sorted(set(acked) - stored)[:5]
        # Nothing half-written: every stored claim answers its topology (spec, nonce and record intact).
        for name in sorted(stored)[:50]:
            assert rr_a.topology(name).status == 200
    finally:
        rr_a.stop()


def test_service_stops_cleanly_on_sigterm(mesh):
    rr_a = mesh.rr("rr-a").start()
    rr_a.proc.send_signal(signal.SIGTERM)
    assert rr_a.proc.wait(10) == 0
    rr_a.stop()


def raw_exchange(url, payload, timeout=15):
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(payload)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and b"}}" in data:
                break
    return data


def test_leaf_token_is_enough_to_submit_but_not_to_administer(mesh):
    rr_a = mesh.rr("rr-a").start()
    try:
        assert rr_a.api("GET", wire.claims_path()).status == 403
        assert rr_a.api("GET", wire.claims_path(), token=None).status == 401
        assert rr_a.api("GET", wire.claims_path(), token=ADMIN_TOKEN).status == 200
        assert rr_a.api("GET", wire.health_path(), token=None).status == 200
    finally:
        rr_a.stop()
