"""Real bgpd: RRs admit only each leaf's own /32, configured only by the renderer and sam_bgp.

Namespaces rr-a, rr-b, leaf-a, leaf-b, leaf-x (not admitted); every leaf linked to both RRs by veth;
BGP runs between the loopback identities (tunnel addresses) over the veths (tunnels are proven in
the kernel lane). Each admitted leaf announces its owned /32 plus the hostile set.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest
import yaml
from mesh_views import leaf_claims, node_state

from netns.harness import wait_for
from netns.playbook import run_playbook

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
IDENTITY = {"rr-a": "10.99.0.2", "rr-b": "10.99.0.3", "leaf-a": "10.255.0.31", "leaf-b": "10.255.0.32",
            "leaf-x": "10.255.0.40"}
OWNED = {"leaf-a": "10.77.60.31/32", "leaf-b": "10.77.60.32/32"}
HOSTILE = ["10.77.60.99/32", "10.77.60.0/24", "10.77.60.40/31", "0.0.0.0/0", "10.20.0.0/24", "192.168.7.7/32"]


def _states():
    states = {node: node_state("cloudedge", node)[0] for node in ("rr-a", "rr-b", "leaf-a", "leaf-b")}
    # leaf-x has a profile and a BGP router but no admitted claim: reuse leaf-b's shape with its own identity.
    leaf_x = json.loads(json.dumps(states["leaf-b"]).replace("10.255.0.32", IDENTITY["leaf-x"])
                        .replace("10.77.60.32/32", "10.77.60.40/32"))
    states["leaf-x"] = dict(leaf_x, node="leaf-x")
    return states


def _announce(node):
    other = [p for leaf, p in OWNED.items() if leaf != node]
    return other + HOSTILE if node in OWNED else []


def _apply_with_sam_bgp(topo, frrs, states, workdir, check=False, expect_rc=0, leaf_routes="all"):
    """One ansible-playbook run of boma.mesh.sam_bgp for every node (local vty sockets)."""
    nodes = []
    for node, state in states.items():
        item = {"node": node, "vty": frrs[node].vty_dir, "confdir": frrs[node].config_dir,
                "announce": _announce(node), "export_any": node.startswith("leaf"), "leaf_routes": leaf_routes}
        item.update({"config": state} if isinstance(state, str) else {"desired": state})
        nodes.append(item)
    return run_playbook(workdir, "boma.mesh.sam_bgp", {
        "desired": "{{ item.desired | default(omit) }}", "config": "{{ item.config | default(omit) }}",
        "vty_socket": "{{ item.vty }}", "confdir": "{{ item.confdir }}",
        "announce": "{{ item.announce }}", "export_any": "{{ item.export_any }}",
        "leaf_routes": "{{ item.leaf_routes }}"}, nodes, check=check, expect_rc=expect_rc)


def _established(frr):
    peers = frr.json("show bgp ipv4 unicast summary json").get("peers", {})
    return sorted(addr for addr, peer in peers.items() if peer.get("state") == "Established")


def _rib(frr, learned_only=False):
    """{prefix: sorted peer ids}; learned_only drops locally originated paths (peerId 0.0.0.0)."""
    routes = frr.json("show bgp ipv4 unicast json").get("routes", {})
    rib = {prefix: sorted({p.get("peerId") for p in paths}) for prefix, paths in routes.items()}
    if learned_only:
        rib = {prefix: [peer for peer in peers if peer not in ("0.0.0.0", "(unspec)")] for prefix, peers in rib.items()}
        rib = {prefix: peers for prefix, peers in rib.items() if peers}
    return rib


@pytest.fixture(scope="module")
def mesh(topo_module, tmp_path_factory):
    subprocess.run(["make", "-C", str(REPO), "collection"], check=True, capture_output=True)
    topo = topo_module
    workdir = tmp_path_factory.mktemp("frr")
    states = _states()
    for node, identity in IDENTITY.items():
        topo.add_host(node)
        topo.address(node, identity + "/32")
    subnet = 0
    for leaf in ("leaf-a", "leaf-b", "leaf-x"):
        for rr in ("rr-a", "rr-b"):
            topo.link(leaf, rr, "172.31.%d.0/30" % subnet)
            topo.route(leaf, IDENTITY[rr] + "/32", "172.31.%d.2" % subnet)
            topo.route(rr, IDENTITY[leaf] + "/32", "172.31.%d.1" % subnet)
            subnet += 1
    frrs = {node: topo.start_frr(node, "hostname %s\n!\n" % node) for node in IDENTITY}
    started = time.monotonic()
    recap = _apply_with_sam_bgp(topo, frrs, states, workdir)
    wait_for(lambda: all(_established(frrs[rr]) == [IDENTITY["leaf-a"], IDENTITY["leaf-b"]]
                         for rr in ("rr-a", "rr-b")), timeout=60, message="leaf sessions on both RRs")
    wait_for(lambda: all(_rib(frrs[leaf], True).get(OWNED[other]) == ["10.99.0.2", "10.99.0.3"]
                         for leaf in OWNED for other in OWNED if other != leaf),
             timeout=60, message="each leaf learns the other's /32 through both RRs")
    converged = time.monotonic() - started
    print("\nBGP convergence (sam_bgp apply -> both leaves learn each other's /32): %.1f s" % converged)
    return {"topo": topo, "frrs": frrs, "states": states, "workdir": workdir, "recap": recap}


def test_first_apply_changes_and_second_apply_is_idempotent(mesh):
    assert mesh["recap"]["changed"] == "1", "the one looped sam_bgp task changed (every node was empty)"
    assert _apply_with_sam_bgp(mesh["topo"], mesh["frrs"], mesh["states"], mesh["workdir"])["changed"] == "0"


@pytest.mark.parametrize("rr", ["rr-a", "rr-b"])
def test_rr_rib_holds_exactly_the_owned_32s_from_their_owners(mesh, rr):
    assert _rib(mesh["frrs"][rr]) == {OWNED["leaf-a"]: [IDENTITY["leaf-a"]], OWNED["leaf-b"]: [IDENTITY["leaf-b"]]}


@pytest.mark.parametrize("rr", ["rr-a", "rr-b"])
def test_hostile_routes_reach_the_rr_and_are_filtered(mesh, rr):
    frr = mesh["frrs"][rr]
    for leaf, owned in OWNED.items():
        received = frr.json("show bgp ipv4 unicast neighbors %s received-routes json" % IDENTITY[leaf])
        got = set(received.get("receivedRoutes", {}))
        assert {owned} | set(HOSTILE) <= got, "soft-reconfiguration keeps what was rejected"


def test_every_leaf_learns_the_other_leafs_32_through_both_rrs(mesh):
    for leaf in OWNED:
        other = [p for node, p in OWNED.items() if node != leaf][0]
        learned = _rib(mesh["frrs"][leaf], learned_only=True)
        assert learned == {other: ["10.99.0.2", "10.99.0.3"]}, "only the other leaf's /32, via both RRs"


def test_leaf_routes_aggregate_sends_each_leaf_the_pool_instead_of_every_32(mesh):
    """Issue 19: with leaf_routes aggregate each leaf learns the pool's aggregate from both RRs and no other leaf's
    /32 (one route per update-group: bgpd memory linear in the leaves); the RRs still hold exactly the owned /32s
    from their owners, no session is reset, and switching back restores every /32."""
    frrs, topo, states, workdir = mesh["frrs"], mesh["topo"], mesh["states"], mesh["workdir"]
    [peer] = [r for r in states["rr-a"]["resources"] if r["kind"] == "BGPDynamicPeer"]
    [pool] = peer["spec"]["allowedPrefixes"]
    rrs = {"rr-a": "10.99.0.2", "rr-b": "10.99.0.3"}
    resets = {rr: frrs[rr].json("show bgp ipv4 unicast summary json")["peers"] for rr in rrs}
    try:
        assert _apply_with_sam_bgp(topo, frrs, states, workdir, leaf_routes="aggregate")["changed"] == "1"
        wait_for(lambda: all(_rib(frrs[leaf], True) == {pool: sorted(rrs.values())} for leaf in OWNED),
                 timeout=60, message="each leaf learns only the pool's aggregate, through both RRs")
        for rr in rrs:
            assert _rib(frrs[rr], True) == {OWNED["leaf-a"]: [IDENTITY["leaf-a"]],
                                            OWNED["leaf-b"]: [IDENTITY["leaf-b"]]}, "inbound admission unchanged"
            assert pool in _rib(frrs[rr]), "the aggregate is the RR's own"
            peers = frrs[rr].json("show bgp ipv4 unicast summary json")["peers"]
            for address in (IDENTITY["leaf-a"], IDENTITY["leaf-b"]):
                assert peers[address]["state"] == "Established"
                assert peers[address]["connectionsEstablished"] == resets[rr][address]["connectionsEstablished"]
        assert _apply_with_sam_bgp(topo, frrs, states, workdir, leaf_routes="aggregate")["changed"] == "0"
    finally:
        _apply_with_sam_bgp(topo, frrs, states, workdir)
    wait_for(lambda: all(_rib(frrs[leaf], True) == {OWNED[other]: sorted(rrs.values())}
                         for leaf in OWNED for other in OWNED if other != leaf),
             timeout=60, message="leaf_routes all: each leaf learns the other's /32 again, and no aggregate")


def test_unadmitted_leaf_gets_no_session(mesh):
    for rr in ("rr-a", "rr-b"):
        assert IDENTITY["leaf-x"] not in _established(mesh["frrs"][rr])
    assert _established(mesh["frrs"]["leaf-x"]) == []


def _dynamic_peer_info(mesh, rr):
    workdir = mesh["workdir"]
    dyn = next(r for r in mesh["states"][rr]["resources"] if r["kind"] == "BGPDynamicPeer")
    out = workdir / ("info-%s.json" % rr)
    (workdir / "info.yml").write_text(yaml.safe_dump([{
        "name": "Dynamic peer status", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [
            {"name": "Read status", "boma.mesh.sam_dynamic_peer_info": {
                "peer_group": dyn["spec"]["peerGroup"], "dynamic_peer": dyn, "vty_socket": mesh["frrs"][rr].vty_dir},
             "register": "info"},
            {"name": "Save", "ansible.builtin.copy": {"content": "{{ info | to_json }}", "dest": str(out),
                                                      "mode": "0600"}}]}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(workdir / "info.yml")],
                          env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("rr", ["rr-a", "rr-b"])
def test_dynamic_peer_info_maps_peers_to_claims_and_counts_rejections(mesh, rr):
    info = _dynamic_peer_info(mesh, rr)
    peers = {p["address"]: p for p in info["discovered_peers"]}
    assert set(peers) == {IDENTITY["leaf-a"], IDENTITY["leaf-b"]}
    for leaf in OWNED:
        peer = peers[IDENTITY[leaf]]
        assert peer["claimRef"] == "SAMEnrollmentClaim/" + leaf and peer["dynamic"]
        assert (peer["accepted"], peer["rejected"]) == (1, len(HOSTILE) + 1)
        assert set(peer["rejected_routes"]) == set(HOSTILE) | {p for n, p in OWNED.items() if n != leaf}
    assert (info["accepted_total"], info["rejected_total"]) == (2, 2 * (len(HOSTILE) + 1))
    # leaf-pve is admitted in the inventory but has no namespace here.
    assert [m["leafID"] for m in info["status"]["missing_peers"]] == ["leaf-pve"]


def test_check_mode_reports_no_change_on_an_equal_host(mesh):
    recap = _apply_with_sam_bgp(mesh["topo"], mesh["frrs"], mesh["states"], mesh["workdir"], check=True)
    assert recap["changed"] == "0"


def test_invalid_candidate_is_refused_and_running_config_unchanged(mesh):
    frr = mesh["frrs"]["rr-b"]
    before = frr.vtysh("show running-config")
    bad = "router bgp 64577\n address-family ipv4 unicast\n  neighbor cloudedge-leaves route-map NOPE in\n"
    out = _apply_with_sam_bgp(mesh["topo"], mesh["frrs"], {"rr-b": bad}, mesh["workdir"], expect_rc=2)
    assert "route-map NOPE is not defined" in out
    assert frr.vtysh("show running-config") == before


def test_revoked_claim_loses_session_and_route_without_a_bgpd_restart(mesh):
    frrs, workdir = mesh["frrs"], mesh["workdir"]
    claims = leaf_claims("cloudedge")
    for claim in claims:
        claim["spec"]["revoked"] = claim["metadata"]["name"] == "leaf-b"
    revoked = {"rr-b": node_state("cloudedge", "rr-b", claims=claims)[0]}
    pid = frrs["rr-b"].pid("bgpd")
    assert _apply_with_sam_bgp(mesh["topo"], frrs, revoked, workdir)["changed"] == "1"
    wait_for(lambda: IDENTITY["leaf-b"] not in _established(frrs["rr-b"]), timeout=30,
             message="rr-b drops leaf-b's session once its listen range is gone")
    wait_for(lambda: OWNED["leaf-b"] not in _rib(frrs["rr-b"]), timeout=30, message="leaf-b's /32 leaves rr-b")
    assert frrs["rr-b"].pid("bgpd") == pid, "frr-reload, never a bgpd restart"
    assert IDENTITY["leaf-a"] in _established(frrs["rr-b"]), "other leaves keep their sessions"
    _apply_with_sam_bgp(mesh["topo"], frrs, {"rr-b": mesh["states"]["rr-b"]}, workdir)
    wait_for(lambda: _rib(frrs["leaf-a"], True).get(OWNED["leaf-b"]) == ["10.99.0.2", "10.99.0.3"], timeout=60,
             message="leaf-b re-admitted on rr-b")


def test_stopping_rr_a_keeps_routes_via_rr_b(mesh):
    frrs = mesh["frrs"]
    frrs["rr-a"].stop("bgpd")
    started = time.monotonic()
    wait_for(lambda: _rib(frrs["leaf-a"], True).get(OWNED["leaf-b"]) == ["10.99.0.3"], timeout=200,
             message="leaf-a keeps leaf-b's /32 via rr-b only")
    print("\nrr-a bgpd stopped (it sends a Cease) -> leaf-a's path via rr-a withdrawn after %.1f s"
          % (time.monotonic() - started))
    assert _rib(frrs["leaf-b"], True).get(OWNED["leaf-a"]) == ["10.99.0.3"]
