"""Issue 18 against real `samctl serve` processes: GET /metrics, and each RR's WireGuard public key in the RRSet
it serves (its own from --wg-key-file, the other RR's learned through replication)."""

import base64
import json
import os

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from harness import JOIN_KEY, claims, rule, wait_for

from boma_mesh_utils.sam.core import payload, wire
from support import prometheus_text


def scrape(rr):
    resp = rr.api("GET", "/metrics", token=None)
    assert resp.status == 200 and resp.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return prometheus_text.parse(resp.body.decode("utf-8")), resp.body.decode("utf-8")


def test_metrics_count_claims_submissions_and_replication(pair):
    rr_a, rr_b = pair
    docs = claims(3)
    for doc in docs:
        assert rr_a.submit(doc).status == 200
    assert rule(rr_a.submit(docs[0])) == "nonce-replay"
    forged = claims(1, start=3)[0]
    forged["spec"]["joinHMAC"] = payload.join_hmac(b"not-the-join-token-at-all", forged["spec"])
    assert rule(rr_a.submit(forged)) == "join-hmac"
    assert rr_a.admin("POST", wire.revoke_path("leaf-1"), {"name": "leaf-1", "reason": "test"}).status == 200
    found, text = scrape(rr_a)
    value = prometheus_text.value
    assert value(found, "boma_sam_claims", state="active") == 2
    assert value(found, "boma_sam_claims", state="revoked") == 1
    assert value(found, "boma_sam_claims", state="expired") == value(found, "boma_sam_claims", state="conflict") == 0
    assert value(found, "boma_sam_submissions_total", result="accepted") == 3
    assert value(found, "boma_sam_submissions_total", result="refused", rule="nonce-replay") == 1
    assert value(found, "boma_sam_submissions_total", result="refused", rule="join-hmac") == 1
    peer = "unix:" + rr_b.socket
    assert value(found, "boma_sam_replication_backlog", peer=peer) >= 0
    assert "boma_sam_reconcile_duration_seconds" not in found     # no --reconcile
    # Counts only: no claim name, token or nonce in the answer.
    for secret in ("leaf-0", "leaf-1", "n-0", JOIN_KEY.decode(), "api-token"):
        assert secret not in text
    # The other RR learnt the claims by replication: it counts them, but no submissions of its own.
    assert wait_for(lambda: value(scrape(rr_b)[0], "boma_sam_claims", state="revoked") == 1)
    assert value(scrape(rr_b)[0], "boma_sam_claims", state="active") == 2
    assert not scrape(rr_b)[0]["boma_sam_submissions_total"]["samples"]
    assert wait_for(lambda: value(scrape(rr_b)[0], "boma_sam_replication_last_success_timestamp_seconds",
                                  peer="unix:" + rr_a.socket) > 0)
    assert rr_a.api("POST", "/metrics", token=None, body={}).status == 405


def new_key(path):
    key = X25519PrivateKey.generate()
    private = base64.b64encode(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())).decode()
    tmp = str(path) + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(private + "\n")
    os.replace(tmp, str(path))
    return private, base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def served_keys(rr, claim="leaf-0"):
    resp = rr.topology(claim)
    assert resp.status == 200, resp.body
    return {m["nodeRef"]: (m.get("wireGuard") or {}).get("publicKey")
            for m in json.loads(resp.body)["rrSet"]["spec"]["members"]}


def test_each_rr_serves_its_own_key_and_learns_the_others_also_after_a_rotation(mesh):
    keys = {name: mesh.tmp / (name + ".wg.key") for name in ("rr-a", "rr-b")}
    held = {name: new_key(path) for name, path in keys.items()}
    rr_a = mesh.rr("rr-a", ["rr-b"], extra=["--wg-key-file", str(keys["rr-a"])])
    rr_b = mesh.rr("rr-b", ["rr-a"], extra=["--wg-key-file", str(keys["rr-b"])])
    try:
        rr_a.start()
        rr_b.start()
        assert rr_a.submit(claims(1)[0]).status == 200
        want = {name: pair[1] for name, pair in held.items()}
        assert wait_for(lambda: served_keys(rr_a) == want, timeout=15), served_keys(rr_a)
        assert wait_for(lambda: served_keys(rr_b) == want, timeout=15), served_keys(rr_b)
        # Rotate rr-b's key: the file changes, rr-b serves the new key, rr-a learns it at its next pull (1 s).
        rotated = new_key(keys["rr-b"])
        want["rr-b"] = rotated[1]
        assert wait_for(lambda: served_keys(rr_b)["rr-b"] == rotated[1], timeout=5)
        assert wait_for(lambda: served_keys(rr_a) == want, timeout=10), served_keys(rr_a)
        # A restarted rr-a serves the learned key before it can pull it again (rr-b is down): it was persisted.
        rr_b.stop()
        rr_a.stop()
        rr_a.start()
        assert served_keys(rr_a) == want
        found, _text = scrape(rr_a)
        assert prometheus_text.value(found, "boma_sam_rr_public_keys", source="peer") == 1
        # No private key anywhere: not in answers, not in logs.
        for rr in (rr_a, rr_b):
            log = rr.log.read_text()
            for private, _public in list(held.values()) + [rotated]:
                assert private not in log
        assert held["rr-a"][0] not in rr_a.topology("leaf-0").body.decode()
    finally:
        rr_a.stop()
        rr_b.stop()


def test_a_group_readable_key_file_stops_the_start(mesh):
    path = mesh.tmp / "wg.key"
    private, _public = new_key(path)
    os.chmod(path, 0o640)
    rr = mesh.rr("rr-a", extra=["--wg-key-file", str(path)])
    proc_failed = False
    try:
        rr.start(timeout=10)
    except RuntimeError:
        proc_failed = True
    finally:
        rr.stop()
    log = rr.log.read_text()
    assert proc_failed and "must not be readable by group or others" in log and private not in log
