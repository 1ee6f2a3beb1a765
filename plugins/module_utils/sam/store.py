# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RR enrollment store (an edge file: it does I/O): accepted claims, used nonces and audit in SQLite.

Every change is one ``BEGIN IMMEDIATE`` transaction in WAL mode with ``synchronous=FULL``, so a
caller that got a return value knows the change is on disk; a crash never leaves half a change.
A nonce is recorded once per policy, forever: replaying it is refused even after a revocation or a
restart.  Replicated records are imported idempotently by (policy, nonce).
"""

import json
import sqlite3

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


class StoreRejected(Exception):
    """A change the store refuses; ``rule`` names why (nonce-replay, unknown-claim, ...)."""

    def __init__(self, rule, message):
        super().__init__("[%s] %s" % (rule, message))
        self.rule = rule


class Store:
    def __init__(self, path, timeout=10.0):
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        self.db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self):
        self.db.close()

    def _tx(self, work):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            result = work()
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return result

    def accept(self, name, policy, nonce, spec, now, expires_at=None):
        """Record an accepted claim and its nonce atomically; returns the claim's generation."""
        def work():
            if self.nonce_used(policy, nonce):
                raise StoreRejected("nonce-replay", "joinNonce %r was already used in %s" % (nonce, policy))
            self.db.execute("INSERT INTO nonces VALUES (?, ?, ?, ?)", (policy, nonce, name, now))
            row = self.db.execute("SELECT generation FROM claims WHERE name=?", (name,)).fetchone()
            generation = (row[0] + 1) if row else 1
            self.db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL)",
                            (name, policy, nonce, json.dumps(spec, sort_keys=True), generation, now, expires_at))
            self._audit(now, "accepted", name, {"policy": policy, "nonce": nonce, "generation": generation})
            return generation
        return self._tx(work)

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
        """Apply a record replicated from the peer RR; True when it changed anything (idempotent)."""
        def work():
            known = self.db.execute("SELECT claim FROM nonces WHERE policy=? AND nonce=?",
                                    (record["policy"], record["nonce"])).fetchone()
            if known is None:
                self.db.execute("INSERT INTO nonces VALUES (?, ?, ?, ?)",
                                (record["policy"], record["nonce"], record["name"], record["acceptedAt"]))
                self.db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (
                    record["name"], record["policy"], record["nonce"], json.dumps(record["spec"], sort_keys=True),
                    record["generation"], record["acceptedAt"], record.get("expiresAt"),
                    int(bool(record.get("revoked"))), record.get("revokedReason")))
                self._audit(now, "replicated", record["name"], {"nonce": record["nonce"]})
                return True
            if record.get("revoked"):
                changed = self.db.execute("UPDATE claims SET revoked=1, revoked_reason=? WHERE name=? AND revoked=0",
                                          (record.get("revokedReason"), record["name"])).rowcount
                return bool(changed)
            return False
        return self._tx(work)

    def claims(self, include_revoked=True):
        rows = self.db.execute("SELECT name, policy, nonce, spec, generation, accepted_at, expires_at, revoked, "
                               "revoked_reason FROM claims ORDER BY name").fetchall()
        out = []
        for row in rows:
            if row[7] and not include_revoked:
                continue
            out.append({"name": row[0], "policy": row[1], "nonce": row[2], "spec": json.loads(row[3]),
                        "generation": row[4], "acceptedAt": row[5], "expiresAt": row[6], "revoked": bool(row[7]),
                        "revokedReason": row[8]})
        return out

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
