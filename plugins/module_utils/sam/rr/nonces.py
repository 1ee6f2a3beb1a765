# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The store's nonce retention and paging (issue 17, class 6); a mixin of store.Store (same connection).

Table ``nonce_validity`` holds, per nonce, ``valid_until`` (when a replay of its claim is refused as expired
anyway) and ``joined_at`` (its joinTimestamp), both from core/replay.py; a nonce without a row is kept forever.
A nonce is forgotten when valid_until is before the cutoff and no claim record carries it; its policy's horizon
(table ``nonce_horizons``) then rises to the latest joined_at forgotten, and accept refuses claims at or before
it.  Both are new tables and ``nonces`` keeps its 0.1 shape, so a 0.1 database upgrades in place (its nonces are
kept forever) and a rollback to 0.1 still writes its nonces (it ignores the new tables).
"""

from ..core import replay

SCHEMA = """
CREATE TABLE IF NOT EXISTS nonce_validity (
    policy TEXT NOT NULL, nonce TEXT NOT NULL, valid_until TEXT NOT NULL, joined_at TEXT NOT NULL,
    PRIMARY KEY (policy, nonce));
CREATE INDEX IF NOT EXISTS nonce_validity_by_time ON nonce_validity (valid_until);
CREATE TABLE IF NOT EXISTS nonce_horizons (policy TEXT PRIMARY KEY, joined_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS claims_by_nonce ON claims (policy, nonce);
"""
# Nonces that may go: expired before the cutoff and carried by no claim record (its current generation).
PRUNABLE = ("FROM nonce_validity AS v WHERE v.valid_until < ? AND NOT EXISTS "
            "(SELECT 1 FROM claims WHERE claims.policy = v.policy AND claims.nonce = v.nonce)")


class NonceStore:
    def _upgrade_nonces(self):
        """Create what 0.1 lacks (tables, indexes); a no-op on a current database."""
        self.db.executescript(SCHEMA)

    def horizon_refusal(self, policy, joined_at):
        """(rule, message) when a claim joined at ``joined_at`` is at or before its policy's horizon, else None."""
        # Read once and kept until a horizon rises: every accept asks, a prune run changes it.
        if getattr(self, "_horizon_cache", None) is None:
            self._horizon_cache = self.horizons()
        horizon = self._horizon_cache.get(policy)
        if horizon is not None and replay.beyond_horizon(joined_at, horizon):
            return replay.RULE, replay.horizon_message(joined_at, horizon)
        return None

    def _import_peer_nonce(self, entry):
        """One replicated nonce; its validUntil/joinedAt fill a nonce that has none (a record's import left it so)."""
        until, joined = replay.normalize(entry.get("validUntil")), replay.normalize(entry.get("joinedAt"))
        new = self._import_nonce(entry["policy"], entry["nonce"], entry["claim"], entry["usedAt"])
        if until is not None and joined is not None:
            self._set_validity(entry["policy"], entry["nonce"], until, joined)
        return new

    def _set_validity(self, policy, nonce, until, joined):
        self.db.execute("INSERT OR IGNORE INTO nonce_validity VALUES (?, ?, ?, ?)", (policy, nonce, until, joined))

    def nonces_after(self, policy, nonce, limit):
        """Up to ``limit`` nonce entries after (policy, nonce), in (policy, nonce) order (a page of GET records)."""
        rows = self.db.execute("SELECT n.policy, n.nonce, n.claim, n.used_at, v.valid_until, v.joined_at "
                               "FROM nonces AS n LEFT JOIN nonce_validity AS v "
                               "ON v.policy = n.policy AND v.nonce = n.nonce "
                               "WHERE (n.policy, n.nonce) > (?, ?) ORDER BY n.policy, n.nonce LIMIT ?",
                               (policy, nonce, limit))
        out = []
        for pol, non, claim, used, until, joined in rows.fetchall():
            entry = {"policy": pol, "nonce": non, "claim": claim, "usedAt": used}
            if until is not None:
                entry.update(validUntil=until, joinedAt=joined)
            out.append(entry)
        return out

    def claims_after(self, name, limit):
        """Up to ``limit`` claim records after ``name``, in name order."""
        return self._rows("WHERE name > ? ORDER BY name LIMIT ?", (name, limit))

    def horizons(self):
        return dict(self.db.execute("SELECT policy, joined_at FROM nonce_horizons ORDER BY policy").fetchall())

    def import_horizons(self, horizons):
        """Raise horizons to the peer's ({policy: joinedAt}); returns how many rose."""
        current = self.horizons()
        items = [(p, replay.normalize(t)) for p, t in sorted(horizons.items())
                 if isinstance(p, str) and 0 < len(p) <= 256]
        items = [(p, t) for p, t in items if t is not None and (p not in current or t > current[p])]
        if not items:
            return 0

        def work():
            for policy, joined in items:
                self._raise_horizon(policy, joined)
            return len(items)
        return self._tx(work)

    def _raise_horizon(self, policy, joined):
        self._horizon_cache = None   # re-read after this transaction, whether it commits or rolls back
        self.db.execute("INSERT INTO nonce_horizons VALUES (?, ?) ON CONFLICT (policy) DO UPDATE SET "
                        "joined_at = max(joined_at, excluded.joined_at)", (policy, joined))

    def unvalidated_nonces(self):
        """(policy, nonce, claim name) of nonces without a validity whose claim record is still stored."""
        return self.db.execute("SELECT n.policy, n.nonce, c.name FROM nonces AS n JOIN claims AS c ON "
                               "c.policy = n.policy AND c.nonce = n.nonce WHERE NOT EXISTS (SELECT 1 FROM "
                               "nonce_validity AS v WHERE v.policy = n.policy AND v.nonce = n.nonce)").fetchall()

    def set_validity(self, rows):
        """Give nonces that have none a validity: [(policy, nonce, validUntil, joinedAt)]."""
        def work():
            for row in rows:
                self._set_validity(*row)
        if rows:
            self._tx(work)

    def prune_nonces(self, cutoff, now):
        """Forget the prunable nonces (PRUNABLE, before ``cutoff``), raising their policies' horizons in the same
        transaction, with one audit line; returns {policy: count} (empty, and no transaction, when none)."""
        if self.db.execute("SELECT 1 " + PRUNABLE + " LIMIT 1", (cutoff,)).fetchone() is None:
            return {}

        def work():
            found = self.db.execute("SELECT v.policy, COUNT(*), MAX(v.joined_at) " + PRUNABLE + " GROUP BY v.policy",
                                    (cutoff,)).fetchall()
            for policy, _count, latest in found:
                self._raise_horizon(policy, latest)
            chosen = " WHERE (policy, nonce) IN (SELECT v.policy, v.nonce " + PRUNABLE + ")"
            self.db.execute("DELETE FROM nonces" + chosen, (cutoff,))
            self.db.execute("DELETE FROM nonce_validity" + chosen, (cutoff,))
            counts = {policy: count for policy, count, _latest in found}
            self._audit(now, "nonces-pruned", None, {"count": sum(counts.values()), "cutoff": cutoff,
                                                     "policies": counts, "horizons": self.horizons()})
            return counts
        return self._tx(work)
