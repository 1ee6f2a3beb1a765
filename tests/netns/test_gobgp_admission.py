"""Real gobgpd: the RR admits only each leaf's own /32, configured only by render_gobgp.

Namespaces rr (gobgpd from the materialized rr-a state), leaf-a and leaf-b (gobgpd from their
leaf states, rendered with the test-only ``export_any`` so they can announce a hostile set);
veth /30s and static routes between the loopback identities (tunnel addresses; tunnels
themselves are proven in the kernel lane).  Each leaf announces its owned /32 plus the other
leaf's /32, an unclaimed /32, the pool aggregate, a /31 around its own /32, the default route,
the underlay and an address outside the pool.  Then leaf-b's claim is revoked: the RR config
is re-rendered, gobgpd reloads it on SIGHUP, soft_reset_commands run, and leaf-b's /32 leaves
the RR (and leaf-a).
"""

import copy
import os
import signal
import time

from mesh_views import leaf_claims, node_state

from boma_mesh_utils.sam.core.render.gobgp import render_gobgp, soft_reset_commands
from netns.harness import wait_for

RR = "10.99.0.2"
LEAVES = {  # node: (tunnel address, owned /32, /31 around it, veth subnet)
    "leaf-a": ("10.255.0.31", "10.77.60.31/32", "10.77.60.30/31", "10.98.1.0/30"),
    "leaf-b": ("10.255.0.32", "10.77.60.32/32", "10.77.60.32/31", "10.98.2.0/30"),
}
HOSTILE = ["10.77.60.99/32", "10.77.60.0/24", "0.0.0.0/0", "10.20.0.0/24", "192.168.7.7/32"]
ESTABLISHED = 6  # gobgp JSON session_state
SESSION_TIMEOUT = 30


def rr_state(revoked=()):
    """Materialized rr-a state; the named leaves' claims are marked revoked before validation."""
    claims = copy.deepcopy(leaf_claims("cloudedge"))
    for claim in claims:
        if claim["metadata"]["name"] in revoked:
            claim["spec"]["revoked"] = True
    state, report = node_state("cloudedge", "rr-a", claims=claims)
    assert sorted(report.skipped) == sorted(revoked)
    return state


def announcements(node):
    owned, around = LEAVES[node][1:3]
    others = [v[1] for n, v in LEAVES.items() if n != node]
    return [owned, *others, around, *HOSTILE]


def rib(gobgp):
    """{prefix: sorted neighbor addresses of its paths} of gobgpd's global RIB."""
    table = gobgp.gobgp("global", "rib", "-a", "ipv4") or {}
    return {prefix: sorted(p.get("neighbor-ip", "local") for p in paths) for prefix, paths in table.items()}


def adj_in(gobgp, neighbor):
    return gobgp.gobgp("neighbor", neighbor, "adj-in", "-a", "ipv4") or {}


def from_rr(gobgp):
    """{prefix: next hop} of the paths a leaf learned from the RR."""
    table = gobgp.gobgp("global", "rib", "-a", "ipv4") or {}
    return {prefix: next(a["nexthop"] for a in p["attrs"] if a.get("type") == 3)
            for prefix, paths in table.items() for p in paths if p.get("neighbor-ip") == RR}


def established(gobgp, neighbor):
    peer = gobgp.gobgp("neighbor", neighbor)
    return peer["state"]["session_state"] == ESTABLISHED


def assert_policy_installed(rr, leaves):
    """gobgpd installs NO policy when it rejects any part of it (then import defaults to accept)."""
    text = rr.gobgp("global", "policy", "import", json=False)
    assert "Default: REJECT" in text and "SAM-ADMISSION" in text, text
    prefix_sets = rr.gobgp("policy", "prefix", json=False)
    for leaf in ("leaf-pve", "leaf-a", "leaf-b"):
        assert ("SAM-LEAF-" + leaf in prefix_sets) == (leaf in leaves), prefix_sets


def until(predicate, message, timeout=10):
    return wait_for(predicate, timeout=timeout, message=message)


def test_rr_admits_only_owned_32s_and_drops_a_revoked_leaf(topo):
    start = time.monotonic()
    topo.add_host("rr")
    for node, (tunnel, _owned, _around, subnet) in LEAVES.items():
        topo.add_host(node)
        topo.link("rr", node, subnet)  # rr .1, leaf .2
        topo.address(node, tunnel + "/32")
        prefix = subnet.rsplit(".", 1)[0]
        topo.route("rr", tunnel + "/32", "%s.2" % prefix)
        topo.route(node, RR + "/32", "%s.1" % prefix)
    topo.address("rr", RR + "/32")

    state = rr_state()
    rr = topo.start_gobgpd("rr", render_gobgp(state), api_port=50051)
    assert_policy_installed(rr, {"leaf-pve", "leaf-a", "leaf-b"})
    leaves = {}
    for node in LEAVES:
        config = render_gobgp(node_state("cloudedge", node)[0], {"export_any": True})
        leaves[node] = topo.start_gobgpd(node, config, api_port=50051)
    for node, (tunnel, *_rest) in LEAVES.items():
        until(lambda tunnel=tunnel: established(rr, tunnel), "rr <- %s session" % node, SESSION_TIMEOUT)
    sessions_up = time.monotonic() - start

    for node, gobgp in leaves.items():
        for prefix in announcements(node):
            gobgp.gobgp("global", "rib", "add", "-a", "ipv4", prefix, json=False)
    for node, (tunnel, *_rest) in LEAVES.items():
        expected = sorted(announcements(node))
        until(lambda tunnel=tunnel, expected=expected: sorted(adj_in(rr, tunnel)) == expected,
              "rr received all of %s's announcements" % node)

    # Exactly the two owned /32s, each from its owner only.
    until(lambda: rib(rr) == {"10.77.60.31/32": ["10.255.0.31"], "10.77.60.32/32": ["10.255.0.32"]},
          "rr RIB holds exactly the owned /32s")
    # Each leaf learns (only) the other leaf's /32 from the RR, next hop = the owner.
    until(lambda: from_rr(leaves["leaf-a"]) == {"10.77.60.32/32": "10.255.0.32"}, "leaf-a learns leaf-b's /32")
    until(lambda: from_rr(leaves["leaf-b"]) == {"10.77.60.31/32": "10.255.0.31"}, "leaf-b learns leaf-a's /32")
    admitted = time.monotonic() - start

    # Revoke leaf-b: re-render, reload (gobgpd 3.10 re-reads its -f file on SIGHUP), soft reset.
    revoked = rr_state(revoked={"leaf-b"})
    text = render_gobgp(revoked)
    assert "SAM-LEAF-leaf-b" not in text
    with open(rr.config_path, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.kill(rr.pid, signal.SIGHUP)
    until(lambda: "SAM-LEAF-leaf-b" not in rr.gobgp("policy", "prefix", json=False), "rr reloaded its policy")
    assert_policy_installed(rr, {"leaf-pve", "leaf-a"})
    commands = soft_reset_commands(state, revoked, api_port=rr.api_port)
    assert commands == [["gobgp", "-p", str(rr.api_port), "neighbor", "all", "softresetin"]]
    for argv in commands:
        topo.run("rr", argv)
    until(lambda: rib(rr) == {"10.77.60.31/32": ["10.255.0.31"]}, "leaf-b's /32 left the rr RIB")
    until(lambda: from_rr(leaves["leaf-a"]) == {}, "leaf-a no longer learns leaf-b's /32")
    assert rr.is_running()
    total = time.monotonic() - start
    print("gobgp admission timings: sessions %.1fs, admitted %.1fs, revoked %.1fs" % (sessions_up, admitted, total))
    assert total < 90
