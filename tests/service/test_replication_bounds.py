"""Issue 17, class 6: replication between real RRs is bounded both ways, a failed start-up sync is loud, and an
RR forgets expired nonces without reopening replay."""

import json
import signal

from harness import claims, now_text, rule, wait_for

from boma_mesh_utils.sam.core import wire


def health(rr):
    return json.loads(rr.api("GET", wire.health_path(), token=None).body)


def audit_events(rr):
    return [a["event"] for a in json.loads(rr.admin("GET", wire.audit_path(1000)).body)["items"]]


def set_ttl(mesh, ttl):
    config = json.loads(mesh.config.read_text())
    policy = next(r for r in config["resources"] if r["kind"] == "SAMEnrollmentPolicy")
    policy["spec"]["ttl"] = ttl
    mesh.config.write_text(json.dumps(config))


def test_a_backlog_is_pushed_and_many_claims_are_pulled_in_pages_both_ways(mesh):
    # rr-b starts while rr-a is down: its start-up sync fails (warn: it serves, degraded) and its pushes queue.
    rr_b = mesh.rr("rr-b", ["rr-a"], extra=["--page-size", "7"]).start()
    rr_a = rr_c = None
    try:
        docs = claims(300)
        for doc in docs:
            assert rr_b.submit(doc).status == 200
        # A backlog of 300 records and 300 nonces: one merged POST (about 270 kB) was over the 64 KiB limit.
        rr_a = mesh.rr("rr-a").start()   # no peer of its own: it learns rr-b's claims only from the pushes
        assert wait_for(lambda: len(rr_a.claim_names()) == 300, timeout=30), len(rr_a.claim_names())
        assert rule(rr_a.submit(docs[-1])) == "nonce-replay"
        # The other way: rr-b pulls rr-a's claims in pages of 7 every second.
        for doc in claims(20, start=300):
            assert rr_a.submit(doc).status == 200
        assert wait_for(lambda: len(rr_b.claim_names()) == 320, timeout=30)
        assert wait_for(lambda: health(rr_b)["status"] == "ok")   # a complete pull after the failed start-up
        # The claims arrive page by page; the pull's page count shows once it is complete (320 / 7 -> 46 pages).
        assert wait_for(lambda: health(rr_b)["sync"]["peers"]["unix:" + rr_a.socket].get("pages", 0) >= 46)
        # A new RR learns everything at start-up, 320 records and 320 nonces in pages of 7.
        rr_c = mesh.rr("rr-c", ["rr-b"], extra=["--page-size", "7"]).start()
        assert len(rr_c.claim_names()) == 320
        assert rule(rr_c.submit(docs[0])) == "nonce-replay"
        sync = health(rr_c)["sync"]
        assert health(rr_c)["status"] == "ok" and sync["peers"]["unix:" + rr_b.socket]["pages"] >= 46
    finally:
        for rr in (rr_a, rr_b, rr_c):
            if rr is not None:
                rr.stop()


def test_startup_sync_warn_serves_degraded_until_a_pull_succeeds(mesh):
    rr_a = mesh.rr("rr-a", ["rr-b"]).start()
    rr_b = None
    try:
        found = health(rr_a)
        assert found["status"] == "degraded" and found["sync"]["status"] == "failed"
        peer = "unix:" + str(mesh.tmp / "rr-b.sock")
        assert found["sync"]["lastComplete"] is None and found["sync"]["peers"][peer]["status"] == "failed"
        assert "ERROR start-up sync failed" in rr_a.log.read_text() and "--startup-sync warn" in rr_a.log.read_text()
        assert rr_a.submit(claims(1)[0]).status == 200   # warn: it serves
        rr_b = mesh.rr("rr-b", ["rr-a"]).start()
        assert wait_for(lambda: health(rr_a)["status"] == "ok", timeout=15)
        assert health(rr_a)["sync"]["status"] == "ok" and health(rr_b)["status"] == "ok"
    finally:
        rr_a.stop()
        if rr_b is not None:
            rr_b.stop()


def test_startup_sync_require_with_a_dead_peer_refuses_submissions_then_exits_1(mesh):
    rr_a = mesh.rr("rr-a", ["rr-b"], extra=["--startup-sync", "require", "--startup-sync-timeout", "3"]).start()
    try:
        refused = rr_a.submit(claims(1)[0])
        assert (refused.status, rule(refused)) == (503, "syncing")
        assert health(rr_a)["status"] == "degraded" and health(rr_a)["sync"]["admitting"] is False
        assert rr_a.proc.wait(30) == 1
        log = rr_a.log.read_text()
        assert "samctl: start-up sync failed: no peer answered completely within 3s" in log
        assert "rr-b.sock" in log and "(--startup-sync require)" in log and "Traceback" not in log
    finally:
        rr_a.stop()


def test_startup_sync_require_lets_two_rrs_restarting_together_sync_from_each_other(mesh):
    extra = ["--startup-sync", "require", "--startup-sync-timeout", "20"]
    rr_a = mesh.rr("rr-a", ["rr-b"], extra=extra).start()    # listening, waiting for rr-b
    rr_b = mesh.rr("rr-b", ["rr-a"], extra=extra).start()
    try:
        for rr in (rr_a, rr_b):
            assert wait_for(lambda rr=rr: health(rr)["sync"]["admitting"], timeout=20), rr.name
        assert rr_a.submit(claims(1)[0]).status == 200
    finally:
        rr_a.stop()
        rr_b.stop()


def test_a_forgotten_nonce_stays_refused_also_after_a_longer_ttl_and_on_a_rebuilt_peer(mesh):
    set_ttl(mesh, "3s")
    rr_a = mesh.rr("rr-a", extra=["--nonce-margin", "0"]).start()
    rr_c = None
    try:
        first = claims(1, nonce="a")[0]
        assert rr_a.submit(first).status == 200
        assert rr_a.submit(claims(1, nonce="b")[0]).status == 200   # leaf-0 again: nonce a-0 is carried no more
        assert wait_for(lambda: "nonces-pruned" in audit_events(rr_a), timeout=15)
        expired = rr_a.submit(first)
        assert (expired.status, rule(expired)) == (422, "claim-expired")
        # A longer ttl would make the forgotten claim valid again: the nonce horizon refuses it.
        set_ttl(mesh, "1h")
        rr_a.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reloaded documents" in rr_a.log.read_text())
        replay = rr_a.submit(first)
        assert (replay.status, rule(replay)) == (409, "nonce-horizon")
        assert "spec.joinTimestamp" in json.loads(replay.body)["error"]["message"]
        # A rebuilt RR (empty database) learns the horizon with the records it pulls.
        rr_c = mesh.rr("rr-c", ["rr-a"], extra=["--startup-sync", "require"]).start()
        assert wait_for(lambda: health(rr_c)["sync"]["admitting"], timeout=15)
        again = rr_c.submit(first)
        assert (again.status, rule(again)) == (409, "nonce-horizon")
        fresh = claims(1, nonce="c")[0]
        assert fresh["spec"]["joinTimestamp"] >= now_text(-5) and rr_c.submit(fresh).status == 200
    finally:
        rr_a.stop()
        if rr_c is not None:
            rr_c.stop()
