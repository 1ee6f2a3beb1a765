"""RR enrollment store: durable accepts, nonce replay refused across restarts, idempotent replication."""

import sqlite3
import threading

import pytest

from boma_mesh_utils.sam.rr.store import Store, StoreRejected

NOW = "2026-06-28T01:00:00Z"
SPEC = {"leafID": "leaf-b", "joinNonce": "leaf-b-0001", "tunnelAddress": "10.255.0.32/32"}


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "rr.db")


def test_accept_records_claim_nonce_and_audit(db):
    store = Store(db)
    assert store.accept("leaf-b", "fou", "leaf-b-0001", SPEC, NOW, "2026-06-29T00:00:00Z") == 1
    (claim,) = store.claims()
    assert (claim["name"], claim["generation"], claim["spec"], claim["revoked"]) == ("leaf-b", 1, SPEC, False)
    assert store.nonce_used("fou", "leaf-b-0001") and not store.nonce_used("other", "leaf-b-0001")
    assert store.audit()[0]["event"] == "accepted"


def test_wal_and_full_sync_are_on(db):
    store = Store(db)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_replayed_nonce_is_refused_even_after_restart_and_revocation(db):
    store = Store(db)
    store.accept("leaf-b", "fou", "leaf-b-0001", SPEC, NOW)
    with pytest.raises(StoreRejected) as err:
        store.accept("leaf-b", "fou", "leaf-b-0001", SPEC, NOW)
    assert err.value.rule == "nonce-replay"
    store.revoke("leaf-b", "lost laptop", NOW)
    store.close()
    again = Store(db)
    with pytest.raises(StoreRejected, match="nonce-replay"):
        again.accept("leaf-b", "fou", "leaf-b-0001", SPEC, NOW)
    assert again.claims()[0]["revoked"] and again.claims(include_revoked=False) == []


def test_a_new_nonce_re_admits_with_a_new_generation(db):
    store = Store(db)
    store.accept("leaf-b", "fou", "leaf-b-0001", SPEC, NOW)
    store.revoke("leaf-b", "rotate", NOW)
    assert store.accept("leaf-b", "fou", "leaf-b-0002", SPEC, NOW) == 2
    assert not store.claims()[0]["revoked"]


def test_refused_change_leaves_nothing_behind(db):
    store = Store(db)
    store.accept("leaf-b", "fou", "n1", SPEC, NOW)
    before = (store.claims(), store.audit())
    with pytest.raises(StoreRejected):
        store.accept("leaf-x", "fou", "n1", SPEC, NOW)
    with pytest.raises(StoreRejected, match="unknown-claim"):
        store.revoke("nobody", "x", NOW)
    assert (store.claims(), store.audit()) == before


def test_replicated_records_import_idempotently(db, tmp_path):
    rr_a, rr_b = Store(db), Store(str(tmp_path / "rr-b.db"))
    rr_a.accept("leaf-b", "fou", "n1", SPEC, NOW)
    (record,) = rr_a.claims()
    assert rr_b.import_record(record, NOW) is True
    assert rr_b.import_record(record, NOW) is False
    assert rr_b.nonce_used("fou", "n1"), "a nonce used on rr-a is refused on rr-b"
    rr_a.revoke("leaf-b", "gone", NOW)
    assert rr_b.import_record(rr_a.claims()[0], NOW) is True and rr_b.claims()[0]["revoked"]


def test_concurrent_accepts_lose_nothing_and_double_nothing(db):
    errors, results = [], []

    def worker(num):
        store = Store(db)
        try:
            for item in range(25):
                results.append(store.accept("leaf-%d-%d" % (num, item), "fou", "n-%d-%d" % (num, item), SPEC, NOW))
                try:
                    store.accept("dup-%d-%d" % (num, item), "fou", "n-%d-%d" % (num, item), SPEC, NOW)
                except StoreRejected:
                    pass
        except sqlite3.Error as exc:  # pragma: no cover - would fail the test below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(Store(db).claims()) == 200 == len(results)
