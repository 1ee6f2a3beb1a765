"""Issue 17, class 6: replication is bounded both ways (split pushes, paged pulls) and a failed sync is reported."""

import json
import threading
import time
import urllib.parse

import pytest

from boma_mesh_utils.sam.core import wire
from boma_mesh_utils.sam.core.registry import Rejection
from boma_mesh_utils.sam.rr import paging, replicate
from boma_mesh_utils.sam.rr.replicate import Replicator, encoded_size
from boma_mesh_utils.sam.rr.store import Store

NOW = "2026-06-28T01:00:00Z"
PEER = "unix:/peer.sock"


def record(index, pad=0):
    return {"name": "leaf-%04d" % index, "policy": "fou", "nonce": "n-%d" % index, "generation": 1,
            "acceptedAt": NOW, "spec": {"leafID": "leaf-%d" % index, "pad": "x" * pad}}


def nonce(index):
    return {"policy": "fou", "nonce": "n-%d" % index, "claim": "leaf-%04d" % index, "usedAt": NOW}


def changes(count, pad=0):
    """What Service.submit pushes: one document per accepted claim."""
    return [{"records": [record(i, pad)], "nonces": [nonce(i)]} for i in range(count)]


def body_size(body):
    return len(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8"))


class FakePeer:
    """A peer's records POST with a body limit: 413 above it, like http_server.read_json."""

    def __init__(self, limit):
        self.limit, self.bodies, self.statuses = limit, [], []
        self.done = threading.Event()

    def __call__(self, endpoint, method, path, token, body, timeout):
        assert (endpoint, method, path) == (PEER, "POST", wire.records_path())
        status = 413 if body_size(body) > self.limit else 200
        self.statuses.append(status)
        if status == 200:
            self.bodies.append(body)
            self.done.set()
        return status, {}, b"{}"

    def received(self, key):
        return [item for body in self.bodies for item in body[key]]


def push_all(peer, documents, limit=None):
    rep = Replicator([PEER], b"t" * 16, peer, importer=None, interval=0.2)
    if limit is not None:
        rep.limits[PEER] = limit
    for document in documents:
        rep.push(document)
    threading.Thread(target=rep._pusher, args=(PEER,), daemon=True).start()
    want = sum(len(d["records"]) for d in documents)
    deadline = time.monotonic() + 10
    while len(peer.received("records")) + rep.dropped < want and time.monotonic() < deadline:
        time.sleep(0.01)
    rep.stop()
    return rep


def test_split_keeps_order_and_every_body_under_the_limit():
    documents = changes(300, pad=200)
    bodies, oversize = replicate.split(documents, 8192)
    assert len(bodies) > 1 and not oversize
    assert all(body_size(b) <= 8192 for b in bodies)
    assert [r["name"] for b in bodies for r in b["records"]] == [r["name"] for d in documents for r in d["records"]]
    assert [n["nonce"] for b in bodies for n in b["nonces"]] == [n["nonce"] for d in documents for n in d["nonces"]]
    many, _oversize = replicate.split(changes(600), 1 << 30)
    assert len(many) == 3 and all(len(b["records"]) + len(b["nonces"]) <= wire.PUSH_ITEMS for b in many)


def test_a_backlog_is_pushed_in_bodies_under_the_peers_limit():
    peer = FakePeer(wire.MAX_RECORDS_BODY)
    documents = changes(400, pad=4000)   # about 1.7 MB: one merged POST would pass the limit
    assert body_size({"records": [r for d in documents for r in d["records"]]}) > wire.MAX_RECORDS_BODY
    rep = push_all(peer, documents)
    assert [r["name"] for r in peer.received("records")] == [r["name"] for d in documents for r in d["records"]]
    assert len(peer.received("nonces")) == 400
    assert set(peer.statuses) == {200} and all(body_size(b) <= wire.MAX_RECORDS_BODY for b in peer.bodies)
    assert rep.pushed == 400 and rep.queues[PEER] == []


def test_a_413_splits_further_and_a_single_item_too_large_is_dropped_not_retried_forever(caplog):
    peer = FakePeer(6000)   # an older peer, or one with a smaller limit than ours
    documents = changes(40, pad=500)
    documents[7]["records"][0]["spec"]["pad"] = "x" * 7000   # this record alone is more than the peer takes
    rep = push_all(peer, documents)
    names = [r["name"] for r in peer.received("records")]
    assert names == [r["name"] for d in documents for r in d["records"] if r["name"] != "leaf-0007"]
    assert len(peer.received("nonces")) == 40
    assert 413 in peer.statuses and rep.dropped == 1 and rep.limits[PEER] < wire.MAX_RECORDS_BODY
    assert "record leaf-0007 is larger than the peer takes" in caplog.text
    assert rep.queues[PEER] == []


class PagedPeer:
    """A peer answering GET records from a real store through paging.page (or, old=True, all at once)."""

    def __init__(self, store, old=False, fail_at=None):
        self.store, self.old, self.fail_at = store, old, fail_at
        self.paths = []

    def __call__(self, endpoint, method, path, token, body, timeout):
        assert method == "GET" and path.startswith(wire.records_path())
        self.paths.append(path)
        if self.fail_at is not None and len(self.paths) == self.fail_at:
            raise OSError("connection reset")
        if self.old:   # an older RR: the path's query is ignored, everything comes at once without "next"
            document = {"records": self.store.claims(), "nonces": self.store.nonces_after("", "", -1)}
        else:
            document = paging.page(self.store, urllib.parse.urlsplit(path).query)
        data = json.dumps(document).encode()
        assert len(data) < wire.RECORDS_PAGE_BYTES + 64 * 1024
        return 200, {}, data


class Importer:
    def __init__(self):
        self.records, self.nonces, self.horizons = [], [], {}

    def __call__(self, document):
        self.records += document["records"]
        self.nonces += document["nonces"]
        return {"imported": len(document["records"]) + len(document["nonces"])}, None


@pytest.fixture
def peer_store(tmp_path):
    store = Store(str(tmp_path / "peer.db"))
    for index in range(95):
        store.accept("leaf-%04d" % index, "fou", "n-%d" % index, {"leafID": "x"}, NOW)
    store.import_nonces([nonce(1000 + i) for i in range(40)])   # nonces of replaced claims: more nonces
    store.import_horizons({"fou": "2026-01-01T00:00:00Z"})
    return store


def test_a_pull_walks_every_page_and_imports_each_as_it_arrives(peer_store):
    importer, peer = Importer(), PagedPeer(peer_store)
    horizons = []
    rep = Replicator([PEER], b"t" * 16, peer, importer, page_size=10, horizons=horizons.append)
    assert rep.pull_once() == {PEER: 95 + 135}
    assert len(peer.paths) == 14 and "limit=10" in peer.paths[0] and "after=" in peer.paths[1]
    assert sorted(r["name"] for r in importer.records) == sorted(r["name"] for r in peer_store.claims())
    assert len(importer.nonces) == 135 == len({(n["policy"], n["nonce"]) for n in importer.nonces})
    assert horizons[0] == {"fou": "2026-01-01T00:00:00Z"}
    sync = rep.health()
    assert "status" not in sync and sync["sync"]["status"] == "ok" and sync["sync"]["peers"][PEER]["pages"] == 14


def test_a_pull_that_fails_half_way_keeps_what_it_imported_and_health_says_degraded(peer_store):
    importer = Importer()
    rep = Replicator([PEER], b"t" * 16, PagedPeer(peer_store, fail_at=4), importer, page_size=10)
    assert rep.pull_once()[PEER].startswith("failed: connection reset")
    assert len(importer.records) == 30   # three pages arrived and were imported
    health = rep.health()
    assert health["status"] == "degraded" and health["sync"]["status"] == "failed"
    assert health["sync"]["lastComplete"] is None and "connection reset" in health["sync"]["peers"][PEER]["error"]
    rep.request = PagedPeer(peer_store)
    rep.pull_once()
    assert "status" not in rep.health() and rep.health()["sync"]["lastComplete"] is not None


def test_an_older_peer_without_paging_is_one_page(peer_store):
    importer, peer = Importer(), PagedPeer(peer_store, old=True)
    rep = Replicator([PEER], b"t" * 16, peer, importer, page_size=10)
    assert rep.pull_once() == {PEER: 95 + 135} and len(peer.paths) == 1


def test_without_paging_parameters_the_whole_document_comes_at_once(peer_store):
    # The sam_rr role reads the records in one GET, and so does an older RR pulling from this one.
    document = paging.page(peer_store, "")
    assert len(document["records"]) == 95 and len(document["nonces"]) == 135 and document["next"] is None
    assert paging.page(peer_store, "limit=10")["next"] is not None


def test_a_peer_whose_cursor_does_not_advance_is_a_failed_pull():
    def stuck(endpoint, method, path, token, body, timeout):
        return 200, {}, json.dumps({"records": [], "nonces": [], "next": "abc"}).encode()

    rep = Replicator([PEER], b"t" * 16, stuck, Importer())
    assert "not usable" in rep.pull_once()[PEER]


def test_pages_stay_far_below_the_clients_limit_with_large_records(tmp_path):
    store = Store(str(tmp_path / "big.db"))
    for index in range(300):
        store.accept("leaf-%04d" % index, "fou", "n-%d" % index, {"pad": "x" * 30000}, NOW)   # 9 MB in all
    seen, cursor, pages = [], None, 0
    while True:
        page = paging.page(store, "limit=500" + ("" if cursor is None else "&after=" + cursor))
        pages += 1
        assert encoded_size(page) <= wire.RECORDS_PAGE_BYTES + 64 * 1024
        seen += [r["name"] for r in page["records"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == sorted("leaf-%04d" % i for i in range(300)) and pages >= 5


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "limit=100000", "after=%21%21", "after=bm90IGpzb24"])
def test_malformed_page_parameters_are_400(query):
    with pytest.raises(Rejection) as err:
        paging.parameters(query)
    assert err.value.status == 400 and err.value.rule == "malformed-request"


def test_startup_sync_require_retries_until_the_timeout_and_warn_tries_once():
    calls = []

    def dead(endpoint, method, path, token, body, timeout):
        calls.append(time.monotonic())
        raise OSError("no such file or directory")

    rep = Replicator([PEER], b"t" * 16, dead, Importer())
    assert rep.startup_sync(require=False) is False and len(calls) == 1
    start = time.monotonic()
    assert rep.startup_sync(require=True, timeout=1.2) is False
    assert 1.0 < time.monotonic() - start < 3 and len(calls) >= 3
    rep.admitting = False
    with pytest.raises(Rejection) as err:
        rep.check_admitting()
    assert (err.value.status, err.value.rule) == (503, "syncing")
