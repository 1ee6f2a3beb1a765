"""Real gobgpd configured only through boma.mesh.sam_gobgp (issue 20): the RR admits each leaf's own /32 only.

Namespaces rr, leaf-a and leaf-b as in test_gobgp_admission.py, but every gobgpd starts from a bare ``[global]``
file and sam_gobgp (an ansible-playbook run, as a user runs it) renders, lints, checks, writes and reloads each
one, verifies what gobgpd holds and originates each leaf's owned /32.  The leaves export everything
(``export_any``, tests only) and announce the runbook's hostile set too.  Then: a second run changes nothing, a
revocation is one reload that drops the leaf's /32 everywhere, and a candidate that would run open is refused
with the file and the daemon left as they were.
"""

import copy
import pathlib
import subprocess
import sys
import time

import pytest
from inprocess import collection_on_path, run_module
from mesh_views import leaf_claims, node_state

from netns.harness import wait_for
from netns.playbook import run_playbook

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
RR = "10.99.0.2"
LEAVES = {"leaf-a": ("10.255.0.31", "10.77.60.31/32", "10.98.1.0/30"),
          "leaf-b": ("10.255.0.32", "10.77.60.32/32", "10.98.2.0/30")}
HOSTILE = ["10.77.60.99/32", "10.77.60.0/24", "10.77.60.40/31", "0.0.0.0/0", "10.20.0.0/24", "192.168.7.7/32"]
ESTABLISHED = 6      # gobgp's JSON session_state
BARE = "[global.config]\n  as = 64577\n  router-id = \"%s\"\n"


def rr_state(revoked=()):
    claims = copy.deepcopy(leaf_claims("cloudedge"))
    for claim in claims:
        if claim["metadata"]["name"] in revoked:
            claim["spec"]["revoked"] = True
    return node_state("cloudedge", "rr-a", claims=claims)[0]


def apply(daemons, states, workdir, check=False, expect_rc=0, config=None):
    """One ansible-playbook run of boma.mesh.sam_gobgp for the given nodes; the recap, or stdout on failure."""
    nodes = []
    for node, state in states.items():
        daemon = daemons[node]
        item = {"node": node, "path": daemon.config_path, "pid": daemon.pid, "target": "unix://" + daemon.api_socket,
                "export_any": node != "rr"}
        item.update({"config": config, "role": "rr"} if config is not None else {"desired": state})
        nodes.append(item)
    return run_playbook(workdir, "boma.mesh.sam_gobgp", {
        "desired": "{{ item.desired | default(omit) }}", "config": "{{ item.config | default(omit) }}",
        "role": "{{ item.role | default(omit) }}", "config_path": "{{ item.path }}", "pid": "{{ item.pid }}",
        "api_target": "{{ item.target }}", "export_any": "{{ item.export_any }}"}, nodes, check=check,
        expect_rc=expect_rc)


def sessions(gobgp):
    """Addresses of the established sessions."""
    return sorted(n["state"]["neighbor_address"] for n in gobgp.gobgp("neighbor") or ()
                  if n.get("state", {}).get("session_state") == ESTABLISHED)


def rib(gobgp):
    table = gobgp.gobgp("global", "rib", "-a", "ipv4") or {}
    return {prefix: sorted(p.get("neighbor-ip", "local") for p in paths) for prefix, paths in table.items()}


def learned(gobgp):
    return {prefix: peers for prefix, peers in rib(gobgp).items() if peers != ["local"]}


@pytest.fixture(scope="module")
def mesh(topo_module, tmp_path_factory):
    subprocess.run(["make", "-C", str(REPO), "collection"], check=True, capture_output=True)
    topo, workdir = topo_module, tmp_path_factory.mktemp("gobgp")
    topo.add_host("rr")
    topo.address("rr", RR + "/32")
    for node, (tunnel, _owned, subnet) in LEAVES.items():
        topo.add_host(node)
        topo.link("rr", node, subnet)
        topo.address(node, tunnel + "/32")
        prefix = subnet.rsplit(".", 1)[0]
        topo.route("rr", tunnel + "/32", "%s.2" % prefix)
        topo.route(node, RR + "/32", "%s.1" % prefix)
    daemons = {"rr": topo.start_gobgpd("rr", BARE % RR)}
    for node, (tunnel, *_rest) in LEAVES.items():
        daemons[node] = topo.start_gobgpd(node, BARE % tunnel)
    states = {"rr": rr_state(), **{node: node_state("cloudedge", node)[0] for node in LEAVES}}
    started = time.monotonic()
    recap = apply(daemons, states, workdir)
    for node in LEAVES:
        for prefix in [v[1] for n, v in LEAVES.items() if n != node] + HOSTILE:
            daemons[node].gobgp("global", "rib", "add", "-a", "ipv4", prefix, json=False)
    wait_for(lambda: learned(daemons["rr"]) == {"10.77.60.31/32": ["10.255.0.31"], "10.77.60.32/32": ["10.255.0.32"]},
             timeout=60, message="the RR holds exactly the owned /32s, each from its owner")
    print("\nsam_gobgp apply -> owned /32s admitted on the RR: %.1f s" % (time.monotonic() - started))
    return {"topo": topo, "workdir": workdir, "daemons": daemons, "states": states, "recap": recap}


def test_the_first_run_changes_every_node_and_the_second_nothing(mesh):
    assert mesh["recap"]["changed"] == "1" and mesh["recap"]["failed"] == "0"
    assert apply(mesh["daemons"], mesh["states"], mesh["workdir"])["changed"] == "0"
    assert apply(mesh["daemons"], mesh["states"], mesh["workdir"], check=True)["changed"] == "0"


def test_hostile_routes_reach_the_rr_and_only_the_owned_32s_are_admitted(mesh):
    rr = mesh["daemons"]["rr"]
    for node, (tunnel, owned, _subnet) in LEAVES.items():
        received = sorted(rr.gobgp("neighbor", tunnel, "adj-in", "-a", "ipv4") or {})
        other = [v[1] for n, v in LEAVES.items() if n != node]
        assert received == sorted([owned] + other + HOSTILE), (node, received)
    assert learned(rr) == {"10.77.60.31/32": ["10.255.0.31"], "10.77.60.32/32": ["10.255.0.32"]}
    leaf_a = mesh["daemons"]["leaf-a"]
    assert rib(leaf_a)["10.77.60.31/32"] == ["local"], "sam_gobgp originated leaf-a's owned /32"
    # leaf-a announces leaf-b's /32 itself too (hostile): the RR's path is the one that matters
    wait_for(lambda: RR in rib(leaf_a).get("10.77.60.32/32", ()), timeout=20, message="leaf-a learns leaf-b's /32")


def test_a_candidate_that_would_run_open_is_refused_and_nothing_changes(mesh):
    rr = mesh["daemons"]["rr"]
    before = pathlib.Path(rr.config_path).read_text()
    from boma_mesh_utils.sam.core.render.gobgp import render_gobgp  # noqa: PLC0415
    open_policy = render_gobgp(mesh["states"]["rr"]).replace('default-import-policy = "reject-route"',
                                                             'default-import-policy = "accept-route"')
    out = apply({"rr": rr}, {"rr": None}, mesh["workdir"], expect_rc=2, config=open_policy)
    assert "candidate rejected, nothing applied" in out and "default-import-policy" in out
    assert pathlib.Path(rr.config_path).read_text() == before
    assert learned(rr) == {"10.77.60.31/32": ["10.255.0.31"], "10.77.60.32/32": ["10.255.0.32"]}


def test_dynamic_peer_info_reports_the_gobgp_rr_as_it_reports_frr(mesh):
    """sam_dynamic_peer_info with daemon: gobgp, in-process (its gobgp calls reach the RR's unix socket)."""
    collection_on_path()
    rr = mesh["daemons"]["rr"]
    peer = next(r for r in mesh["states"]["rr"]["resources"] if r["kind"] == "BGPDynamicPeer")
    result, _raw = run_module("sam_dynamic_peer_info", {
        "peer_group": peer["spec"]["peerGroup"], "dynamic_peer": peer, "daemon": "gobgp",
        "api_target": "unix://" + rr.api_socket, "gobgp_config": rr.config_path})
    status = result["status"]
    assert not result["changed"] and status["peer_group_found"]
    peers = {p["address"]: p for p in status["discovered_peers"]}
    assert sorted(peers) == ["10.255.0.31", "10.255.0.32"] and status["unmatched_peers"] == []
    for node, (tunnel, owned, _subnet) in LEAVES.items():
        item = peers[tunnel]
        assert (item["state"], item["dynamic"], item["leafID"], item["accepted"]) == ("Established", True, node, 1)
        assert item["received"] == 1 + 1 + len(HOSTILE) and item["rejected"] == 1 + len(HOSTILE)
        assert owned not in item["rejected_routes"]
        other = next(v[1] for n, v in LEAVES.items() if n != node)
        assert item["rejected_reasons"][other] == "other-claim" and item["rejected_reasons"]["0.0.0.0/0"] == \
            "default-route"
    assert result["accepted_total"] == 2 and result["rejected_total"] == 2 * (1 + len(HOSTILE))
    assert status["source_prefixes"] == ["10.255.0.21/32", "10.255.0.31/32", "10.255.0.32/32"]
    assert status["listen_ranges_missing"] == []
    assert [m["leafID"] for m in status["missing_peers"]] == ["leaf-pve"], "leaf-pve is admitted, never came up"


def test_a_revocation_is_one_reload_that_drops_the_leafs_32_everywhere(mesh):
    daemons, workdir = mesh["daemons"], mesh["workdir"]
    revoked = rr_state(revoked={"leaf-b"})
    recap = apply({"rr": daemons["rr"]}, {"rr": revoked}, workdir)
    assert recap["changed"] == "1"
    wait_for(lambda: learned(daemons["rr"]) == {"10.77.60.31/32": ["10.255.0.31"]}, timeout=20,
             message="leaf-b's /32 left the RR")
    wait_for(lambda: RR not in rib(daemons["leaf-a"]).get("10.77.60.32/32", ()), timeout=20,
             message="leaf-a no longer learns leaf-b's /32 from the RR")
    # its session is reset and cannot come back: its /32 range is gone from the RR's dynamic neighbors
    wait_for(lambda: LEAVES["leaf-b"][0] not in sessions(daemons["rr"]), timeout=20, message="leaf-b's session ended")
    time.sleep(5)     # leaf-b's connect-retry is 2 s: it tries again, and gobgpd refuses it
    assert sessions(daemons["rr"]) == [LEAVES["leaf-a"][0]]
    assert daemons["rr"].is_running()
    assert apply({"rr": daemons["rr"]}, {"rr": revoked}, workdir)["changed"] == "0"
    mesh["states"]["rr"] = revoked
