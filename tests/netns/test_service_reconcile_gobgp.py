"""Real gobgpd + `samctl serve --reconcile bgp --bgp-daemon gobgp` (issue 20): a GoBGP RR admits and revokes.

As test_service_reconcile.py, with gobgpd on both sides: rr-a's gobgpd starts from a bare ``[global]`` file and
every line it ends up with comes from the service's reconcile (sam_gobgp's path: lint, ``gobgpd -d``, atomic
write, SIGHUP, read-back).  leaf-b's gobgpd runs its rendered leaf configuration with ``export_any`` (tests only)
and announces its owned /32 and the hostile set.  A claim submitted through the API admits leaf-b's /32 and
nothing else; its revocation ends the session and withdraws the /32; the daemon is reloaded, never restarted.
"""

import time

import pytest
from mesh_views import node_state

from boma_mesh_utils.sam.core import wire
from boma_mesh_utils.sam.core.render.gobgp import render_gobgp
from netns.harness import wait_for
from netns.test_service_reconcile import (
    ADMIN_TOKEN,
    HOSTILE,
    LEAF,
    LEAF_TOKEN,
    OWNED,
    RR,
    Service,
    _claim,
    link_rr_and_leaf,
)

ESTABLISHED = 6
BARE = '[global.config]\n  as = 64577\n  router-id = "%s"\n'


def sessions(gobgp):
    return sorted(n["state"]["neighbor_address"] for n in gobgp.gobgp("neighbor") or ()
                  if n.get("state", {}).get("session_state") == ESTABLISHED)


def learned(gobgp):
    table = gobgp.gobgp("global", "rib", "-a", "ipv4") or {}
    return {prefix: sorted(p["neighbor-ip"] for p in paths if p.get("neighbor-ip"))
            for prefix, paths in table.items() if any(p.get("neighbor-ip") for p in paths)}


@pytest.fixture(scope="module")
def mesh(topo_module, tmp_path_factory):
    topo, tmp = topo_module, tmp_path_factory.mktemp("reconcile-gobgp")
    link_rr_and_leaf(topo)
    rr = topo.start_gobgpd("rr-a", BARE % RR)
    leaf = topo.start_gobgpd("leaf-b", render_gobgp(node_state("cloudedge", "leaf-b")[0], {"export_any": True}))
    for prefix in [OWNED] + HOSTILE:
        leaf.gobgp("global", "rib", "add", "-a", "ipv4", prefix, json=False)
    service = Service(topo, None, tmp, ["--bgp-daemon", "gobgp", "--gobgp-config", rr.config_path,
                                        "--gobgp-api-target", "unix://" + rr.api_socket, "--gobgp-pid", str(rr.pid)])
    yield {"rr": rr, "leaf": leaf, "service": service}
    service.stop()


def runs(service):
    return [line for line in service.log.read_text().splitlines() if "reconcile: gobgp" in line]


def test_a_claim_and_its_revocation_reach_gobgpd_through_the_service(mesh):
    rr, service = mesh["rr"], mesh["service"]
    wait_for(lambda: "import-policy-list" in open(rr.config_path).read(), timeout=20,
             message="the start-up reconcile wrote the RR's policy")
    assert sessions(rr) == [], "no admitted leaf: no dynamic-neighbors range, no session"
    name, spec = _claim()
    resp = service.api("POST", wire.submit_path(), LEAF_TOKEN, wire.submit_request(name, spec))
    accepted = time.monotonic()
    assert resp.status == 200, resp.body
    wait_for(lambda: sessions(rr) == [LEAF], timeout=30, message="leaf-b's session on the GoBGP RR")
    wait_for(lambda: learned(rr) == {OWNED: [LEAF]}, timeout=20, message="only leaf-b's own /32 admitted")
    print("\nsubmit 200 -> leaf-b's /32 in the GoBGP RR's RIB: %.2f s" % (time.monotonic() - accepted))
    received = set(rr.gobgp("neighbor", LEAF, "adj-in", "-a", "ipv4") or {})
    assert set(HOSTILE) <= received, "the hostile routes did arrive and were refused"
    pid = rr.pid
    resp = service.api("POST", wire.revoke_path(name), ADMIN_TOKEN, {"name": name, "reason": "netns test"})
    revoked = time.monotonic()
    assert resp.status == 200, resp.body
    wait_for(lambda: learned(rr) == {} and sessions(rr) == [], timeout=20,
             message="leaf-b's /32 and session gone after the revocation")
    print("revoke 200 -> leaf-b's session and /32 gone: %.2f s" % (time.monotonic() - revoked))
    time.sleep(4)             # leaf-b retries every 2 s and is refused: no range admits it
    assert sessions(rr) == [] and rr.is_running() and rr.pid == pid
    log = service.log.read_text()
    assert len(runs(service)) >= 3 and "reconcile failed" not in log, log[-3000:]
    assert any("neighbor %s reset" % LEAF in line for line in runs(service)), runs(service)
    for secret in (LEAF_TOKEN, ADMIN_TOKEN):
        assert secret not in log
