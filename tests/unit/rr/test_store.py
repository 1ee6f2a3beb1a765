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


# -- nonce retention (issue 17, class 6) ---------------------------------------------------------------------
OLD = "2026-06-01T00:00:00Z"       # validUntil of an expired claim
CUTOFF = "2026-06-28T00:55:00Z"    # NOW minus the clock margin


def accept(store, name, nonce, valid_until=None, joined_at=None, now=NOW):
    result = store.accept_many([{"name": name, "policy": "fou", "nonce": nonce, "spec": SPEC,
                                 "validUntil": valid_until, "joinedAt": joined_at}], now)[0]
    if isinstance(result, Exception):
        raise result
    return result["generation"]


def test_an_expired_nonce_no_record_carries_is_forgotten_a_live_or_carried_one_stays(db):
    store = Store(db)
    accept(store, "leaf-b", "old", OLD, "2026-05-31T00:00:00Z")
    accept(store, "leaf-b", "newer", OLD, "2026-05-31T00:30:00Z")      # replaces "old": only "newer" is carried
    accept(store, "leaf-c", "live", "2026-06-29T00:00:00Z", "2026-06-28T00:00:00Z")
    accept(store, "leaf-c", "live-2", "2026-06-29T01:00:00Z", "2026-06-28T00:10:00Z")   # "live": unreferenced
    accept(store, "leaf-d", "forever")                                  # no ttl: no validUntil
    accept(store, "leaf-d", "forever-2")
    assert store.prune_nonces(CUTOFF, NOW) == {"fou": 1}
    assert not store.nonce_used("fou", "old")
    for kept in ("newer", "live", "forever"):   # carried by leaf-b's record / not yet expired / no validUntil
        assert store.nonce_used("fou", kept), kept
    assert store.horizons() == {"fou": "2026-05-31T00:00:00Z"}
    (line,) = [a for a in store.audit() if a["event"] == "nonces-pruned"]
    assert line["detail"]["count"] == 1
    assert store.prune_nonces(CUTOFF, NOW) == {}   # nothing left to forget: no transaction, no audit line


def test_the_horizon_refuses_a_claim_joined_at_or_before_it(db):
    store = Store(db)
    accept(store, "leaf-b", "old", OLD, "2026-05-31T00:00:00Z")
    accept(store, "leaf-b", "newer", "2026-06-29T00:00:00Z", "2026-06-28T00:00:00Z")
    store.prune_nonces(CUTOFF, NOW)
    # The forgotten claim again, or any claim as old (a longer ttl could have made it valid again): refused.
    for joined in ("2026-05-31T00:00:00Z", "2026-05-30T00:00:00Z"):
        with pytest.raises(StoreRejected) as err:
            accept(store, "leaf-b", "old", OLD, joined)
        assert err.value.rule == "nonce-horizon" and "joinTimestamp" in err.value.message
    assert accept(store, "leaf-e", "fresh", "2026-06-29T00:00:00Z", "2026-05-31T00:00:01Z") == 1
    # The horizon survives a restart and only rises, also from a peer.
    store.close()
    again = Store(db)
    assert again.import_horizons({"fou": "2026-01-01T00:00:00Z", "bad": "not a time"}) == 0
    assert again.import_horizons({"fou": "2026-06-01T00:00:00.5Z"}) == 1
    assert again.horizons() == {"fou": "2026-06-01T00:00:01Z"}   # rounded up: never below the real one


def test_replicated_nonces_carry_their_validity_and_fill_a_missing_one(db):
    store = Store(db)
    record = {"name": "leaf-b", "policy": "fou", "nonce": "n1", "spec": SPEC, "generation": 1, "acceptedAt": NOW}
    store.import_record(record, NOW)                       # a record's import stores its nonce without validity
    entry = {"policy": "fou", "nonce": "n1", "claim": "leaf-b", "usedAt": NOW,
             "validUntil": OLD, "joinedAt": "2026-05-31T00:00:00Z"}
    garbage = {"policy": "fou", "nonce": "n3", "claim": "x", "usedAt": NOW, "validUntil": "garbage", "joinedAt": 1}
    assert store.import_nonces([entry, dict(entry, nonce="n2"), garbage]) == 2
    page = {n["nonce"]: n for n in store.nonces_after("", "", 10)}
    assert page["n1"]["validUntil"] == OLD and page["n2"]["joinedAt"] == "2026-05-31T00:00:00Z"
    assert "validUntil" not in page["n3"]   # unusable validity: kept forever
    assert store.prune_nonces(CUTOFF, NOW) == {"fou": 1}   # n2; n1 is carried by the record
    assert [n["nonce"] for n in store.nonces_after("", "", 10)] == ["n1", "n3"]


OLD_SCHEMA = """
CREATE TABLE claims (
    name TEXT PRIMARY KEY, policy TEXT NOT NULL, nonce TEXT NOT NULL, spec TEXT NOT NULL,
    generation INTEGER NOT NULL, accepted_at TEXT NOT NULL, expires_at TEXT,
    revoked INTEGER NOT NULL DEFAULT 0, revoked_reason TEXT);
CREATE TABLE nonces (
    policy TEXT NOT NULL, nonce TEXT NOT NULL, claim TEXT NOT NULL, used_at TEXT NOT NULL,
    PRIMARY KEY (policy, nonce));
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, event TEXT NOT NULL, claim TEXT, detail TEXT);
INSERT INTO claims VALUES ('leaf-b', 'fou', 'n2', '{}', 2, '2026-01-01T00:00:00Z', NULL, 0, NULL);
INSERT INTO nonces VALUES ('fou', 'n1', 'leaf-b', '2025-01-01T00:00:00Z');
INSERT INTO nonces VALUES ('fou', 'n2', 'leaf-b', '2026-01-01T00:00:00Z');
"""


def test_a_0_1_database_upgrades_in_place_and_keeps_its_old_nonces(db):
    old = sqlite3.connect(db)
    old.executescript(OLD_SCHEMA)
    old.close()
    store = Store(db)
    tables = {row[0] for row in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"nonce_validity", "nonce_horizons"} <= tables
    assert store.nonce_used("fou", "n1") and store.claims()[0]["nonce"] == "n2"
    assert store.prune_nonces("2099-01-01T00:00:00Z", NOW) == {}   # no validUntil: kept, whatever the time
    with pytest.raises(StoreRejected, match="nonce-replay"):
        accept(store, "leaf-x", "n1")
    assert accept(store, "leaf-x", "n3", OLD, "2026-05-31T00:00:00Z") == 1
    store.close()
    assert Store(db).nonce_used("fou", "n3")   # opening an upgraded database again changes nothing
    # A rollback to 0.1 still works on it: the nonces table keeps its shape (0.1 inserts positionally).
    old = sqlite3.connect(db)
    old.execute("INSERT OR IGNORE INTO nonces VALUES ('fou', 'n4', 'leaf-y', ?)", (NOW,))
    old.commit()
    old.close()
    assert Store(db).nonce_used("fou", "n4")
