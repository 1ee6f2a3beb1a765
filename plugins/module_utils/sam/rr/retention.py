# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Nonce retention on the running RR (issue 17, class 6): the rule is core/replay.py, the SQL nonces.py.

At start-up and every ``interval`` seconds: rows that lack a validUntil while their claim record is stored
(a 0.1 database, a record replicated before its nonce entry) get it from the record's parsed claim; then
the prunable rows are forgotten and their policies' horizons raised, one audit line per run that forgot any.
The peer's horizons arrive with each pulled page (import_horizons), so a rebuilt RR refuses what its peer
forgot too.
"""

import threading

from ..core import replay
from ..core.fields import format_time
from ..core.validate import DEFAULT_SKEW
from .service import LOG


def backfill(service):
    """validUntil/joinedAt for stored rows whose claim record is known; returns how many were filled."""
    with service.lock, service.store_lock:
        rows = []
        for policy, nonce, name in service.store.unvalidated_nonces():
            claim = service.registry.claims.get(name)
            if claim is None or claim.nonce != nonce:
                continue
            until, joined = replay.window(service.registry.mesh.policies.get(policy), claim)
            if until is not None:
                rows.append((policy, nonce, until, joined))
        service.store.set_validity(rows)
    return len(rows)


def prune(service, margin=DEFAULT_SKEW):
    """One retention run; returns how many nonces were forgotten."""
    backfill(service)
    now = service.clock()
    with service.store_lock:
        counts = service.store.prune_nonces(replay.cutoff(now, margin), format_time(now))
        horizons = service.store.horizons() if counts else {}
    if counts:
        LOG.info("forgot %d expired nonces (%s); nonce horizons now %s", sum(counts.values()),
                 ", ".join("%s: %d" % item for item in sorted(counts.items())), horizons)
    return sum(counts.values())


def import_horizons(service, horizons):
    """Raise this RR's nonce horizons to a peer's ({policy: joinedAt} of a pulled page)."""
    with service.store_lock:
        raised = service.store.import_horizons(horizons)
    if raised:
        LOG.info("raised %d nonce horizons to the peer's", raised)
    return raised


class Retention:
    """Runs prune() at start() and then every ``interval`` seconds on a daemon thread."""

    def __init__(self, service, interval=60.0, margin=DEFAULT_SKEW):
        self.service, self.interval, self.margin = service, interval, margin
        self.stopping = threading.Event()

    def run_once(self):
        try:
            return prune(self.service, self.margin)
        except Exception as exc:  # noqa: BLE001 - a failed run keeps every nonce; the next one tries again
            LOG.error("nonce retention run failed: %s", type(exc).__name__)
            return 0

    def start(self):
        self.run_once()
        threading.Thread(target=self._loop, daemon=True, name="retention").start()

    def _loop(self):
        while not self.stopping.wait(self.interval):
            self.run_once()

    def stop(self):
        self.stopping.set()
