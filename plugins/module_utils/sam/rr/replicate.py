# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication to the peer RRs, one thread per peer plus the resync puller (the reconcile loop is reconcile.py).

Push: each change is queued per peer and POSTed by that peer's thread, retried with backoff while
the peer is down.  Pull: at start-up and every ``interval`` seconds every peer's records are
imported, which repairs whatever a push missed (a restart with a full queue, a partition).
Import on the other side is idempotent and convergent, so at-least-once delivery is enough.

Both directions are bounded (issue 17, class 6).  A push backlog is split, in order, into bodies under the
peer's body limit (wire.MAX_RECORDS_BODY, lowered to what a 413 showed); a 413 splits the body further, and
a single item the peer refuses as too large is logged and dropped from the push (the pull repairs it).  A
pull walks the peer's pages (paging.py) until ``next`` is null, importing each page as it arrives, so a
failure half-way keeps what was imported; an older peer answers one page without ``next``.  The outcome of
the last pull and whether any pull since start-up was complete are reported in GET health (sync).
"""

import datetime
import json
import random
import threading
import time

from ..core import wire
from ..core.fields import format_time
from ..core.lease import backoff_delay
from ..core.registry import Rejection
from .paging import CURSOR_RE
from .service import LOG

MAX_PAGES = 10000          # a pull that needs more pages than this is a peer gone wrong, not a big store
_EMPTY = len(b'{"nonces":[],"records":[]}')


def encoded_size(item):
    """Bytes of ``item`` as http_client.request encodes a body (plus one for its separator in a list)."""
    return len(json.dumps(item, sort_keys=True, separators=(",", ":")).encode("utf-8")) + 1


def split(documents, limit, max_items=wire.PUSH_ITEMS):
    """(bodies, too large): the records and nonces of ``documents``, in order, in bodies that each encode to at
    most ``limit`` bytes and hold at most ``max_items`` items; items that alone exceed ``limit`` are returned
    apart as (key, item)."""
    bodies, oversize = [], []
    current, size, count = {"records": [], "nonces": []}, _EMPTY, 0
    for document in documents:
        for key in ("records", "nonces"):
            for item in document.get(key) or ():
                cost = encoded_size(item)
                if _EMPTY + cost > limit:
                    oversize.append((key, item))
                    continue
                if count and (size + cost > limit or count >= max_items):
                    bodies.append(current)
                    current, size, count = {"records": [], "nonces": []}, _EMPTY, 0
                current[key].append(item)
                size, count = size + cost, count + 1
    if count:
        bodies.append(current)
    return bodies, oversize


def _items(body):
    return len(body["records"]) + len(body["nonces"])


def _label(key, item):
    name = item.get("name") if key == "records" else "%s/%s" % (item.get("policy"), item.get("nonce"))
    return "%s %s" % (key[:-1], str(name)[:80])


class Replicator:
    def __init__(self, peers, token, request, importer, interval=60.0, timeout=5.0, horizons=None,
                 page_size=wire.RECORDS_PAGE, keys=None):
        self.peers = list(peers)
        self.token = token
        self.request = request            # (endpoint, method, path, token, body, timeout) -> (status, headers, bytes)
        self.importer = importer          # document -> answer (Service.import_records)
        self.horizons = horizons          # {policy: joinedAt} of a pulled page -> None (retention.import_horizons)
        self.keys = keys                  # a page's rrKey {node, publicKey} -> None (rr_keys.MemberKeys.learn)
        self.pulled = {}                  # peer -> Unix time of its last complete pull (GET /metrics)
        self.interval = interval
        self.timeout = timeout
        self.page_size = page_size
        self.queues = {peer: [] for peer in self.peers}
        self.wake = {peer: threading.Condition() for peer in self.peers}
        self.limits = {peer: wire.MAX_RECORDS_BODY for peer in self.peers}
        self.stopping = threading.Event()
        self.pushed = 0
        self.dropped = 0
        self.state_lock = threading.Lock()
        self.sync = {"status": "pending", "at": None, "peers": {}}
        self.synced_at = None             # the last pull in which a peer answered completely (text), None: never
        self.admitting = True             # False while --startup-sync require waits: submissions get 503

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

    # -- pull ------------------------------------------------------------------------------------
    def pull_once(self):
        """Import every peer's records now; returns {peer: imported count or error text}."""
        out, peers = {}, {}
        for peer in self.peers:
            try:
                imported, pages = self._pull(peer)
                out[peer], self.pulled[peer] = imported, time.time()
                peers[peer] = {"status": "ok", "imported": imported, "pages": pages}
            except Exception as exc:  # noqa: BLE001 - any failure of one peer is logged, never fatal
                out[peer] = "failed: %s" % _why(exc)
                peers[peer] = {"status": "failed", "error": _why(exc)[:300]}
                LOG.warning("resync from %s failed: %s", peer, _why(exc))
        complete = sum(1 for info in peers.values() if info["status"] == "ok")
        at = format_time(datetime.datetime.now(datetime.timezone.utc))
        with self.state_lock:
            recovered = complete and self.synced_at is None and self.sync["status"] != "pending"
            self.sync = {"status": "ok" if complete == len(peers) else "partial" if complete else "failed",
                         "at": at, "peers": peers}
            if complete:
                self.synced_at = at
        if recovered:
            LOG.warning("resync complete after a failed start-up sync: %s", self.describe())
        return out

    def _pull(self, peer):
        """(imported, pages) of one complete walk through the peer's pages; raises on any failure."""
        cursor, imported = None, 0
        for pages in range(1, MAX_PAGES + 1):
            status, _headers, body = self.request(peer, "GET", wire.records_path(cursor, self.page_size), self.token,
                                                  None, self.timeout)
            if status != 200:
                raise OSError("HTTP %d" % status)
            document = json.loads(body.decode("utf-8"))
            if not isinstance(document, dict):
                raise ValueError("the records answer is not a JSON object")
            imported += self.importer(document)[0]["imported"]
            if self.horizons is not None and isinstance(document.get("horizons"), dict):
                self.horizons(document["horizons"])
            if self.keys is not None and pages == 1:
                self.keys(document.get("rrKey"))   # the peer's own WireGuard public key (issue 18)
            following = document.get("next")
            if following is None:       # the last page, or an older peer that answers everything at once
                return imported, pages
            if not isinstance(following, str) or not CURSOR_RE.match(following) or following == cursor:
                raise ValueError("page %d: the peer's next cursor is not usable" % pages)
            cursor = following
        raise ValueError("more than %d pages; stopped" % MAX_PAGES)

    def _puller(self):
        while not self.stopping.wait(self.interval):
            self.pull_once()

    def startup_sync(self, require=False, timeout=60.0, stop=None):
        """Pull until a peer answers completely; True when one did.  warn: one attempt; require: retried with
        a growing pause until ``timeout`` seconds have passed (or ``stop`` is set)."""
        deadline, attempt = time.monotonic() + timeout, 0
        while True:
            self.pull_once()
            if self.synced_at is not None:
                return True
            remaining = deadline - time.monotonic()
            if not require or remaining <= 0:
                return False
            attempt += 1
            if (stop or self.stopping).wait(min(0.5 * 2 ** min(attempt, 5), remaining)):
                return False

    def describe(self):
        with self.state_lock:
            peers = dict(self.sync["peers"])
        return "; ".join("%s: %s" % (peer, info.get("error") or "%d pages" % info.get("pages", 0))
                         for peer, info in sorted(peers.items())) or "no peers"

    def health(self):
        """GET health's ``sync`` (the last pull, pushes) and ``status: degraded`` until a pull since start-up was
        complete (a failed start-up sync under --startup-sync warn: nonces used only on a peer are unknown here)."""
        with self.state_lock:
            sync = dict(self.sync, lastComplete=self.synced_at, admitting=self.admitting)
            sync["peers"] = {peer: dict(info) for peer, info in self.sync["peers"].items()}
        sync["push"] = {"pushed": self.pushed, "dropped": self.dropped,
                        "queued": {peer: len(queue) for peer, queue in self.queues.items()}}
        return {"sync": sync} if self.synced_at is not None else {"sync": sync, "status": "degraded"}

    def backlog(self, peer):
        """Records and nonces queued for ``peer`` (not counting a body being sent)."""
        with self.wake[peer]:
            return sum(len(d.get("records") or ()) + len(d.get("nonces") or ()) for d in self.queues[peer])

    def check_admitting(self):
        if not self.admitting:
            raise Rejection(503, "syncing", "this RR is still learning its peers' claims and nonces at start-up "
                            "(--startup-sync require); retry shortly")

    # -- push ------------------------------------------------------------------------------------
    def _bodies(self, peer, documents):
        bodies, oversize = split(documents, self.limits[peer])
        for key, item in oversize:
            self._drop(peer, key, item, "%d bytes" % encoded_size(item))
        return bodies

    def _drop(self, peer, key, item, why):
        self.dropped += 1
        LOG.error("push to %s: %s is larger than the peer takes (%s); dropped from the push, the peer's next pull "
                  "repairs it", peer, _label(key, item), why)

    def _send(self, peer, body):
        """Push one body; returns what is left to send in its place ([] when done, smaller bodies after a 413)."""
        size = encoded_size(body) - 1
        try:
            status, _headers, _answer = self.request(peer, "POST", wire.records_path(), self.token, body, self.timeout)
        except Exception:
            if size > wire.MAX_BODY and self.limits[peer] > wire.MAX_BODY:
                # An older RR (a 64 KiB limit for every POST) may reset a large body instead of answering 413.
                self.limits[peer] = wire.MAX_BODY
                LOG.warning("push to %s: a %d-byte body failed; keeping bodies under %d bytes", peer, size,
                            wire.MAX_BODY)
            raise
        if status == 200:
            self.pushed += len(body["records"])
            return []
        if status != 413:
            raise OSError("HTTP %d" % status)
        self.limits[peer] = min(self.limits[peer], size - 1)
        if _items(body) == 1:
            key = "records" if body["records"] else "nonces"
            self._drop(peer, key, body[key][0], "HTTP 413 for %d bytes" % size)
            return []
        LOG.warning("push to %s: HTTP 413 for %d bytes; splitting under %d bytes", peer, size, self.limits[peer])
        return self._bodies(peer, [body])

    def _pusher(self, peer):
        failures = 0
        while not self.stopping.is_set():
            with self.wake[peer]:
                while not self.queues[peer] and not self.stopping.is_set():
                    self.wake[peer].wait()
                backlog, self.queues[peer] = self.queues[peer], []
            bodies = self._bodies(peer, backlog) if backlog else []
            while bodies and not self.stopping.is_set():
                try:
                    bodies[:1] = self._send(peer, bodies[0])
                    failures = 0
                except Exception as exc:  # noqa: BLE001 - transport or HTTP failure: keep the rest, back off
                    failures += 1
                    with self.wake[peer]:
                        self.queues[peer][:0] = bodies   # keep order; retried (re-split) after the backoff
                    # Never wait longer than the resync interval: the pull would repair it by then anyway.
                    delay = min(backoff_delay(failures, random.random()).total_seconds(), self.interval)  # noqa: S311
                    LOG.warning("push to %s failed (%s); retry in %.0fs", peer, _why(exc), delay)
                    self.stopping.wait(delay)
                    break


def _why(exc):
    return str(exc) or type(exc).__name__
