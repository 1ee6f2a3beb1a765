# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication to the peer RRs, one thread per peer plus the resync puller (the reconcile loop is reconcile.py).

Push: each change is queued per peer and POSTed by that peer's thread, retried with backoff while
the peer is down.  Pull: at start-up and every ``interval`` seconds every peer's records are
imported, which repairs whatever a push missed (a restart with a full queue, a partition).
Import on the other side is idempotent and convergent, so at-least-once delivery is enough.
"""

import json
import random
import threading

from ..core import wire
from ..core.lease import backoff_delay
from .service import LOG


class Replicator:
    def __init__(self, peers, token, request, importer, interval=60.0, timeout=5.0):
        self.peers = list(peers)
        self.token = token
        self.request = request            # (endpoint, method, path, token, body, timeout) -> (status, headers, bytes)
        self.importer = importer          # document -> answer (Service.import_records)
        self.interval = interval
        self.timeout = timeout
        self.queues = {peer: [] for peer in self.peers}
        self.wake = {peer: threading.Condition() for peer in self.peers}
        self.stopping = threading.Event()
        self.pushed = 0

    def push(self, document):
        for peer in self.peers:
            with self.wake[peer]:
                self.queues[peer].append(document)
                self.wake[peer].notify()

    def start(self):
        for peer in self.peers:
            threading.Thread(target=self._pusher, args=(peer,), daemon=True, name="push " + peer).start()
        if self.peers:
            threading.Thread(target=self._puller, daemon=True, name="resync").start()

    def stop(self):
        self.stopping.set()
        for peer in self.peers:
            with self.wake[peer]:
                self.wake[peer].notify()

    def pull_once(self):
        """Import every peer's records now; returns {peer: imported count or error text}."""
        out = {}
        for peer in self.peers:
            try:
                status, _headers, body = self.request(peer, "GET", wire.records_path(), self.token, None, self.timeout)
                if status != 200:
                    raise OSError("HTTP %d" % status)
                out[peer] = self.importer(json.loads(body.decode("utf-8")))[0]["imported"]
            except Exception as exc:  # noqa: BLE001 - any failure of one peer is logged, never fatal
                out[peer] = "unreachable: %s" % _why(exc)
                LOG.warning("resync from %s failed: %s", peer, _why(exc))
        return out

    def _puller(self):
        while not self.stopping.wait(self.interval):
            self.pull_once()

    def _pusher(self, peer):
        failures = 0
        while not self.stopping.is_set():
            with self.wake[peer]:
                while not self.queues[peer] and not self.stopping.is_set():
                    self.wake[peer].wait()
                batch, self.queues[peer] = self.queues[peer], []
            if not batch:
                continue
            merged = {"records": [r for d in batch for r in d["records"]],
                      "nonces": [n for d in batch for n in d["nonces"]]}
            try:
                status, _headers, _body = self.request(peer, "POST", wire.records_path(), self.token,
                                                       merged, self.timeout)
                if status != 200:
                    raise OSError("HTTP %d" % status)
                failures = 0
                self.pushed += len(merged["records"])
            except Exception as exc:  # noqa: BLE001 - transport or HTTP failure: keep the batch, back off
                failures += 1
                with self.wake[peer]:
                    self.queues[peer][:0] = batch   # keep order; retried after the backoff
                # Never wait longer than the resync interval: the pull would repair it by then anyway.
                delay = min(backoff_delay(failures, random.random()).total_seconds(), self.interval)  # noqa: S311
                LOG.warning("push to %s failed (%s); retry in %.0fs", peer, _why(exc), delay)
                self.stopping.wait(delay)


def _why(exc):
    return str(exc) or type(exc).__name__
