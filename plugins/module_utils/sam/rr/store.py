# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The RR enrollment service's store: accepted claims, used nonces and audit in SQLite.

Every change is one ``BEGIN IMMEDIATE`` transaction in WAL mode with ``synchronous=FULL``, so a
caller that got a return value knows the change is on disk; a crash never leaves half a change.
A nonce is recorded once per policy: replaying it is refused even after a revocation or a restart; it is
forgotten only once a replay would be refused anyway (nonces.py, core/replay.py).  Replicated records are
imported idempotently by (policy, nonce).
"""

import json
import os
import sqlite3

from ..core.fields import parse_time
from .nonces import NonceStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    name TEXT PRIMARY KEY, policy TEXT NOT NULL, nonce TEXT NOT NULL, spec TEXT NOT NULL,
    generation INTEGER NOT NULL, accepted_at TEXT NOT NULL, expires_at TEXT,
    revoked INTEGER NOT NULL DEFAULT 0, revoked_reason TEXT);
CREATE TABLE IF NOT EXISTS nonces (
    policy TEXT NOT NULL, nonce TEXT NOT NULL, claim TEXT NOT NULL, used_at TEXT NOT NULL,
    PRIMARY KEY (policy, nonce));
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, event TEXT NOT NULL, claim TEXT, detail TEXT);
"""


def _rank(spec):
    """Higher for the claim that must win a same-generation tie: earlier joinTimestamp, then lower nonce."""
    when = parse_time(spec.get("joinTimestamp"))
    stamp = when.timestamp() if when is not None else float("inf")
    return (-stamp, [-ord(c) for c in str(spec.get("joinNonce"))])


def earlier(first, second):
    """RFC 3339 text comparison through datetimes (the two may use different offsets)."""
    a, b = parse_time(first), parse_time(second)
    return a is not None and b is not None and a < b


class StoreRejected(Exception):
    """A change the store refuses; ``rule`` names why (nonce-replay, unknown-claim, ...)."""

    def __init__(self, rule, message):
        super().__init__("[%s] %s" % (rule, message))
        self.rule = rule
        self.message = message


def private_database(path):
    """Create the database file 0600, or make an existing one (and a -wal/-shm left by a crash) 0600.

    Not the umask's mode (0644 outside systemd): the file holds the nonces and claims. SQLite creates the -wal
    and -shm files with the database file's mode, so they are 0600 too.
    """
    path = str(path)
    if path == ":memory:" or path.startswith("file:"):
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        try:
            if os.stat(path + suffix).st_mode & 0o077:
                os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            pass


class Store(NonceStore):
    def __init__(self, path, timeout=10.0):
        private_database(path)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        self.db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self.commits = 0  # each one is a WAL fsync (synchronous=FULL); the bench reports it
        self._upgrade_nonces()   # nonces.py: retention tables, also on a 0.1 database

    def close(self):
        self.db.close()

    def quick_check(self):
        """'ok', or SQLite's first complaint about the file (PRAGMA quick_check; may raise DatabaseError)."""
        return self.db.execute("PRAGMA quick_check(1)").fetchone()[0]

    def _tx(self, work):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            result = work()
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        self.commits += 1
        return result

    def accept(self, name, policy, nonce, spec, now, expires_at=None):
        """Record an accepted claim and its nonce atomically; returns the claim's generation."""
        result = self.accept_many([{"name": name, "policy": policy, "nonce": nonce, "spec": spec,
                                    "expiresAt": expires_at}], now)[0]
        if isinstance(result, Exception):
            raise result
        return result["generation"]

    def accept_many(self, items, now):
        """Accept several claims in one transaction (one fsync: group commit).

        Returns, per item, its stored record, a StoreRejected (nonce replay, also within the batch) or the
        exception that item raised: one that the database refuses never takes the honest claims of its batch
        with it (issue 17).  The batch runs plainly first; only when an item raises is it run again with one
        SAVEPOINT per item, so the common case pays nothing for the rare one.
        """
        def plain():
            return [self._accept_one(item, now) for item in items]

        def isolated():
            out = []
            for item in items:
                self.db.execute("SAVEPOINT item")
                try:
                    out.append(self._accept_one(item, now))
                except Exception as exc:  # noqa: BLE001 - this item only; the transaction goes on
                    self.db.execute("ROLLBACK TO item")
                    out.append(exc)
                self.db.execute("RELEASE item")
            return out
        try:
            return self._tx(plain)
        except sqlite3.OperationalError:
            raise    # the database itself (disk full, locked): the whole batch fails, nothing acknowledged
        except Exception:  # noqa: BLE001 - one item's fault: rolled back, run again item by item
            return self._tx(isolated)

    def _accept_one(self, item, now):
        name, policy, nonce = item["name"], item["policy"], item["nonce"]
        refused = self.horizon_refusal(policy, item.get("joinedAt"))   # nonces.py (issue 17, class 6)
        if refused:
            return StoreRejected(*refused)
        if not self._import_nonce(policy, nonce, name, now, item.get("validUntil"), item.get("joinedAt")):
            return StoreRejected("nonce-replay", "joinNonce %r was already used in %s" % (nonce, policy))
        row = self.db.execute("SELECT generation FROM claims WHERE name=?", (name,)).fetchone()
        generation = (row[0] + 1) if row else 1
        record = {"name": name, "policy": policy, "nonce": nonce, "spec": item["spec"],
                  "generation": generation, "acceptedAt": now, "expiresAt": item.get("expiresAt"),
                  "revoked": False, "revokedReason": None}
        self.db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL)",
                        (name, policy, nonce, json.dumps(item["spec"], sort_keys=True), generation, now,
                         item.get("expiresAt")))
        detail = {"policy": policy, "nonce": nonce, "generation": generation}
        if item.get("joinToken"):
            detail["joinToken"] = item["joinToken"]   # which of the policy's tokens signed it (rotation)
        self._audit(now, "accepted", name, detail)
        return record

    def revoke(self, name, reason, now):
        def work():
            if self.db.execute("UPDATE claims SET revoked=1, revoked_reason=? WHERE name=?",
                               (reason, name)).rowcount != 1:
                raise StoreRejected("unknown-claim", "SAMEnrollmentClaim/%s is not known" % name)
            self._audit(now, "revoked", name, {"reason": reason})
        self._tx(work)

    def set_expiry(self, name, expires_at, now):
        def work():
            if self.db.execute("UPDATE claims SET expires_at=? WHERE name=?", (expires_at, name)).rowcount != 1:
                raise StoreRejected("unknown-claim", "SAMEnrollmentClaim/%s is not known" % name)
            self._audit(now, "expiry", name, {"expiresAt": expires_at})
        self._tx(work)

    def import_record(self, record, now):
        """Apply a claim record replicated from the peer RR; True when it changed anything.

        Convergent whatever the order: the record is keyed by its nonce, revoked is sticky, an
        expiry only moves earlier and the higher generation of a name wins; two claims accepted under one
        name and generation by the two RRs at once resolve to the earlier joinTimestamp, then nonce, on both.
        """
        def work():
            changed = self._import_nonce(record["policy"], record["nonce"], record["name"], record["acceptedAt"])
            row = self.db.execute("SELECT nonce, generation, expires_at, revoked FROM claims WHERE name=?",
                                  (record["name"],)).fetchone()
            if row is None or (row[0] != record["nonce"] and (record["generation"], _rank(record["spec"])) >
                               (row[1], _rank(json.loads(self._spec_of(record["name"]))))):
                self.db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (
                    record["name"], record["policy"], record["nonce"], json.dumps(record["spec"], sort_keys=True),
                    record["generation"], record["acceptedAt"], record.get("expiresAt"),
                    int(bool(record.get("revoked"))), record.get("revokedReason")))
                self._audit(now, "replicated", record["name"], {"nonce": record["nonce"]})
                return True
            if row[0] != record["nonce"]:
                return changed  # an older generation of this name: only its nonce matters
            if record.get("revoked") and not row[3]:
                self.db.execute("UPDATE claims SET revoked=1, revoked_reason=? WHERE name=?",
                                (record.get("revokedReason"), record["name"]))
                self._audit(now, "replicated-revocation", record["name"], {})
                changed = True
            theirs = record.get("expiresAt")
            if theirs and (row[2] is None or earlier(theirs, row[2])):
                self.db.execute("UPDATE claims SET expires_at=? WHERE name=?", (theirs, record["name"]))
                self._audit(now, "replicated-expiry", record["name"], {"expiresAt": theirs})
                changed = True
            return changed
        return self._tx(work)

    def _spec_of(self, name):
        return self.db.execute("SELECT spec FROM claims WHERE name=?", (name,)).fetchone()[0]

    def note(self, event, reasons, now):
        """Audit lines {claim ref or name: reason} in one transaction (conflicts, refused imports, left out)."""
        def work():
            for ref, why in sorted(reasons.items()):
                self._audit(now, event, ref.rpartition("/")[2], {"reason": why})
        self._tx(work)

    def import_nonces(self, nonces):
        """Record nonces the peer has seen (including those of replaced claims); returns how many were new."""
        def work():
            return sum(self._import_peer_nonce(n) for n in nonces)
        return self._tx(work)

    def _import_nonce(self, policy, nonce, claim, used_at, valid_until=None, joined_at=None):
        new = self.db.execute("INSERT OR IGNORE INTO nonces VALUES (?, ?, ?, ?)",
                              (policy, nonce, claim, used_at)).rowcount == 1
        if new and valid_until is not None and joined_at is not None:
            self._set_validity(policy, nonce, valid_until, joined_at)   # nonces.py: when it may be forgotten
        return new

    def nonces(self):
        rows = self.db.execute("SELECT policy, nonce, claim, used_at FROM nonces ORDER BY policy, nonce")
        return [{"policy": p, "nonce": n, "claim": c, "usedAt": u} for p, n, c, u in rows.fetchall()]

    def record(self, name):
        """One claim record (the shape claims() returns), or None."""
        found = self._rows("WHERE name=?", (name,))
        return found[0] if found else None

    def claims(self, include_revoked=True):
        return [r for r in self._rows("ORDER BY name", ()) if include_revoked or not r["revoked"]]

    def _rows(self, where, params):
        rows = self.db.execute("SELECT name, policy, nonce, spec, generation, accepted_at, expires_at, revoked, "
                               "revoked_reason FROM claims " + where, params).fetchall()
        return [{"name": row[0], "policy": row[1], "nonce": row[2], "spec": json.loads(row[3]),
                 "generation": row[4], "acceptedAt": row[5], "expiresAt": row[6], "revoked": bool(row[7]),
                 "revokedReason": row[8]} for row in rows]

    def nonce_used(self, policy, nonce):
        row = self.db.execute("SELECT 1 FROM nonces WHERE policy=? AND nonce=?", (policy, nonce)).fetchone()
        return row is not None

    def audit(self, limit=100):
        rows = self.db.execute("SELECT at, event, claim, detail FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        return [{"at": at, "event": event, "claim": claim, "detail": json.loads(detail or "{}")}
                for at, event, claim, detail in rows.fetchall()]

    def _audit(self, now, event, claim, detail):
        self.db.execute("INSERT INTO audit (at, event, claim, detail) VALUES (?, ?, ?, ?)",
                        (now, event, claim, json.dumps(detail, sort_keys=True)))
