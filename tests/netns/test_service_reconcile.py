"""Real bgpd + `samctl serve --reconcile bgp`: an admitted claim reaches the RR's FRR in seconds, a revoke removes it.

Namespaces rr-a (FRR + the enrollment service, run with ``ip netns exec``) and leaf-b (FRR), one veth;
BGP runs between the loopback identities as in test_frr_admission.  The RR's documents are the cloudedge
inventory's (shared + rr-a's), with the policies' join token in a 0600 file of this test; leaf-b's claim is
signed now with that token and submitted through the API (unix socket), as a leaf's enrollment would.
The RR's FRR starts with nothing but a hostname: every BGP line it ends up with comes from the reconciler.
"""

import datetime
import json
import pathlib
import select
import subprocess
import sys
import time

import pytest
from mesh_views import host_vars, node_state, rr_view_reading, secret_file

from boma_mesh_utils.sam.core import payload, wire
from boma_mesh_utils.sam.core.fields import format_time
from boma_mesh_utils.sam.core.render.frr import render_frr
from boma_mesh_utils.sam.io import enroll_client
from netns.harness import wait_for
from netns.procs import _stop_procs

SAMCTL = str(pathlib.Path(sys.executable).with_name("samctl"))
JOIN_TOKEN = "reconcile-join-token-0123456789"
LEAF_TOKEN = "reconcile-leaf-api-token-abcdef"
ADMIN_TOKEN = "reconcile-admin-api-token-ghijkl"
RR, LEAF = "10.99.0.2", "10.255.0.32"
OWNED = "10.77.60.32/32"
HOSTILE = ["10.77.60.99/32", "10.77.60.0/24", "0.0.0.0/0", "192.168.7.7/32"]
LISTEN = "bgp listen range %s/32 peer-group cloudedge-leaves@leaf-b" % LEAF
ADMISSION = (LISTEN, "ip prefix-list SAM-LEAF-leaf-b seq 5 permit %s" % OWNED,
             " neighbor cloudedge-leaves@leaf-b prefix-list SAM-LEAF-leaf-b in")
INTERVAL = 0.5   # --reconcile-interval (the default)


def _claim():
    """leaf-b's inventory claim, re-signed now with this test's token (the inventory's is dated)."""
    doc = next(r for r in host_vars("cloudedge", "leaf-b")["sam_node_resources"] if r["kind"] == "SAMEnrollmentClaim")
    spec = dict(doc["spec"], joinNonce="reconcile-%d" % time.time_ns(),
                joinTimestamp=format_time(datetime.datetime.now(datetime.timezone.utc)))
    spec["joinHMAC"] = payload.join_hmac(JOIN_TOKEN.encode(), spec)
    return doc["metadata"]["name"], spec


class Service:
    """`samctl serve --reconcile bgp` in rr-a's namespace; ``daemon_argv``: its BGP daemon's options (FRR's here,
    gobgpd's in test_service_reconcile_gobgp)."""

    def __init__(self, topo, frr, tmp, daemon_argv=None):
        self.socket = "unix:" + str(tmp / "rr-a.sock")
        self.log = tmp / "rr-a.log"
        self.confdir = tmp / "frr-persist"
        self.confdir.mkdir()
        config = tmp / "rr.json"
        config.write_text(json.dumps({"resources": rr_view_reading(secret_file(tmp / "join-token", JOIN_TOKEN))}))
        argv = ["ip", "netns", "exec", topo.netns_name("rr-a"), SAMCTL, "serve", "-v", "--config", str(config),
                "--node", "rr-a", "--db", str(tmp / "rr-a.db"), "--socket", str(tmp / "rr-a.sock"),
                "--token-file", secret_file(tmp / "leaf-token", LEAF_TOKEN),
                "--admin-token-file", secret_file(tmp / "admin-token", ADMIN_TOKEN),
                "--reconcile", "bgp", "--reconcile-interval", str(INTERVAL)]
        argv += daemon_argv if daemon_argv is not None else [
            "--frr-vty-socket", frr.vty_dir, "--frr-confdir", str(self.confdir)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        topo._track(self.proc.pid)   # a crashed run's service is killed by the next run's cleanup_stale
        ready, _w, _x = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError("samctl serve did not start: %r\n%s" % (line, self.log.read_text()[-3000:]))

    def api(self, method, path, token, body=None):
        return enroll_client.request(self.socket, method, path, token, body, timeout=10)

    def reconciles(self):
        return [line for line in self.log.read_text().splitlines() if "reconcile: bgp" in line]

    def stop(self):
        _stop_procs([self.proc], grace=10)
        self.proc.stdout.close()


def _established(frr):
    peers = frr.json("show bgp ipv4 unicast summary json").get("peers", {})
    return sorted(addr for addr, peer in peers.items() if peer.get("state") == "Established")


def _rib(frr):
    return {prefix: sorted({p.get("peerId") for p in paths})
            for prefix, paths in frr.json("show bgp ipv4 unicast json").get("routes", {}).items()}


def link_rr_and_leaf(topo):
    """rr-a and leaf-b, their loopback identities routed over one veth."""
    for node, identity in (("rr-a", RR), ("leaf-b", LEAF)):
        topo.add_host(node)
        topo.address(node, identity + "/32")
    topo.link("leaf-b", "rr-a", "172.31.0.0/30")
    topo.route("leaf-b", RR + "/32", "172.31.0.2")
    topo.route("rr-a", LEAF + "/32", "172.31.0.1")


@pytest.fixture(scope="module")
def mesh(topo_module, tmp_path_factory):
    topo, tmp = topo_module, tmp_path_factory.mktemp("reconcile")
    link_rr_and_leaf(topo)
    leaf_config = render_frr(node_state("cloudedge", "leaf-b")[0], {"announce": tuple(HOSTILE), "export_any": True})
    frrs = {"rr-a": topo.start_frr("rr-a", "hostname rr-a\n!\n"), "leaf-b": topo.start_frr("leaf-b", leaf_config)}
    started = time.monotonic()
    service = Service(topo, frrs["rr-a"], tmp)
    yield {"topo": topo, "frrs": frrs, "service": service, "started": started}
    service.stop()


def test_claim_admitted_and_revoked_through_the_api_reach_frr_without_a_restart(mesh):
    rr, leaf, service = mesh["frrs"]["rr-a"], mesh["frrs"]["leaf-b"], mesh["service"]
    bgpd = rr.pid("bgpd")

    # (a) the start-up reconcile renders the router (listen limit), but no leaf is admitted yet: no peer-group.
    wait_for(lambda: " bgp listen limit " in rr.vtysh("show running-config"), timeout=20,
             message="start-up reconcile configured the router")
    print("\nservice start -> start-up reconcile applied: %.1f s" % (time.monotonic() - mesh["started"]))
    running = rr.vtysh("show running-config")
    assert LISTEN not in running and "SAM-LEAF-leaf-b" not in running
    assert _established(rr) == []
    # Let the rate limit run out, so the figure below is the steady-state latency of one change.
    time.sleep(INTERVAL)

    # (b) submit -> listen range + prefix-list in the running config, session up, only the owned /32 admitted.
    name, spec = _claim()
    resp = service.api("POST", wire.submit_path(), LEAF_TOKEN, wire.submit_request(name, spec))
    accepted = time.monotonic()
    assert resp.status == 200, resp.body
    # frr-reload adds the lines one by one: wait for the whole admission, not just its first line.
    wait_for(lambda: all(line in rr.vtysh("show running-config") for line in ADMISSION), timeout=15,
             interval=0.05, message="leaf-b's listen range, prefix-list and route-map entry after the submit")
    print("submit 200 -> listen range + admission in the RR's running config: %.2f s" % (time.monotonic() - accepted))
    wait_for(lambda: _established(rr) == [LEAF], timeout=20, message="leaf-b's session on rr-a")
    wait_for(lambda: OWNED in _rib(rr), timeout=20, message="leaf-b's /32 in the RR's RIB")
    print("submit 200 -> leaf-b's /32 in the RR's RIB: %.2f s" % (time.monotonic() - accepted))
    assert _rib(rr) == {OWNED: [LEAF]}, "the owned /32 from its owner, no hostile prefix"
    received = set(rr.json("show bgp ipv4 unicast neighbors %s received-routes json" % LEAF)["receivedRoutes"])
    assert set(HOSTILE) <= received, "the hostile routes did arrive and were filtered"
    assert LISTEN in (service.confdir / "frr.conf").read_text(), "persisted into --frr-confdir"

    # (c) revoke -> listen range, session and route gone; bgpd was reloaded, never restarted.
    resp = service.api("POST", wire.revoke_path(name), ADMIN_TOKEN, {"name": name, "reason": "netns test"})
    revoked = time.monotonic()
    assert resp.status == 200 and json.loads(resp.body)["changed"] is True, resp.body
    wait_for(lambda: not any(line in rr.vtysh("show running-config") for line in ADMISSION), timeout=15,
             interval=0.05, message="listen range, prefix-list and route-map entry removed after the revoke")
    print("revoke 200 -> listen range gone: %.2f s" % (time.monotonic() - revoked))
    wait_for(lambda: OWNED not in _rib(rr), timeout=20, message="leaf-b's /32 leaves the RR")
    wait_for(lambda: _established(rr) == [], timeout=20, message="leaf-b's session is dropped")
    assert rr.pid("bgpd") == bgpd and rr.is_running("bgpd"), "frr-reload, never a bgpd restart"
    assert leaf.is_running("bgpd")

    # (d) the log tells what each run did and never a token.
    # The revoke's run logs after its final check, which is after the range left the running config.
    wait_for(lambda: len(service.reconciles()) >= 3, timeout=15,
             message="three reconcile runs logged (start-up, submit, revoke)")
    runs = service.reconciles()
    log = service.log.read_text()
    assert LISTEN not in (service.confdir / "frr.conf").read_text(), "persisted at the end of the revoke's run"
    assert "bgp changed" in runs[0] and "(0 leaves)" in runs[0], runs
    # start-up runs the whole path; the submit and the revoke are deltas (issue 19), each verified
    # the leaf's prefix-list entry, then its own peer-group: 2 router lines (with the fast preset's timers, 3),
    # its listen range and 5 address-family lines
    assert any("bgp delta +10 -0 lines, 3 objects verified (1 leaves)" in line for line in runs), runs
    assert "bgp delta +0 -3 lines, 3 objects verified (0 leaves)" in runs[-1], runs
    assert "reconcile failed" not in log, log[-3000:]
    for secret in (JOIN_TOKEN, LEAF_TOKEN, ADMIN_TOKEN):
        assert secret not in log


def _uptime(frr, peer):
    peers = frr.json("show bgp ipv4 unicast summary json").get("peers", {})
    return peers.get(peer, {}).get("peerUptimeMsec")


def test_renewals_change_nothing_in_frr_and_keep_the_session(mesh):
    """Issue 18: a leaf's renewal (same identity, new nonce/timestamp/HMAC) is a non-event on the RR: accepted at
    a higher generation, no frr-reload run, the running config unchanged, the BGP session never reset."""
    rr, service = mesh["frrs"]["rr-a"], mesh["service"]
    name, spec = _claim()
    assert service.api("POST", wire.submit_path(), LEAF_TOKEN, wire.submit_request(name, spec)).status == 200
    wait_for(lambda: _established(rr) == [LEAF], timeout=30, message="leaf-b's session on rr-a (re-enrolled)")
    wait_for(lambda: OWNED in _rib(rr), timeout=20, message="leaf-b's /32 in the RR's RIB")
    time.sleep(INTERVAL * 2)      # the enrollment's own reconcile is over
    before, bgpd, runs = rr.vtysh("show running-config"), rr.pid("bgpd"), len(service.reconciles())
    log_mark = len(service.log.read_text().splitlines())
    uptime, generations, latencies = _uptime(rr, LEAF), [], []
    for _renewal in range(3):
        time.sleep(1.1)           # a new joinTimestamp (whole seconds)
        name, spec = _claim()
        started = time.monotonic()
        resp = service.api("POST", wire.submit_path(), LEAF_TOKEN, wire.submit_request(name, spec))
        latencies.append(time.monotonic() - started)
        assert resp.status == 200, resp.body
        generations.append(json.loads(resp.body)["generation"])
        time.sleep(INTERVAL + 0.5)   # the reconcile the renewal triggered has run
    lines = service.log.read_text().splitlines()[log_mark:]
    skipped = [line for line in lines if "reconcile: unchanged (same desired state)" in line]
    assert generations == sorted(generations) and len(set(generations)) == 3, generations
    assert len(service.reconciles()) == runs, "no full apply (frr-reload) ran for a renewal"
    assert len(skipped) >= 3, lines
    assert rr.vtysh("show running-config") == before
    assert rr.pid("bgpd") == bgpd and _established(rr) == [LEAF]
    assert _uptime(rr, LEAF) > uptime, "the session was never reset"
    print("\n3 renewals: submit %s ms; reconcile runs %d, full applies (frr-reload) 0; session uptime %d -> %d ms"
          % ("/".join("%.0f" % (t * 1000) for t in latencies), len(skipped), uptime, _uptime(rr, LEAF)))
