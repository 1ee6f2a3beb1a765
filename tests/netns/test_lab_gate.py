# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The routerd dynamic RR/leaf runbook's pass criteria that this kernel can show, on the whole lab.

One lab per module, brought up exactly as `make lab` does (tools/lab/topology.py bringup: up, the RRs'
service install run, their launchers, the mesh run, status --wait 60) with a private prefix, and taken
down at the end (nothing left: namespaces, /run/<prefix>, daemons reaped). Tunnels are off (no
ipip/fou/wireguard here), so BGP runs between the documents' tunnel addresses over the underlay.

The tests run in order and build on each other: 1-2 the converged mesh, 3 leaf-b announces a hostile
set, 4 leaf-b's claim is revoked through rr-b's API, 4b a new claim for leaf-b is accepted and its /32
reaches the other leaves without Ansible, 5 rr-a's bgpd is killed. Figures are printed with
the prefix ``LAB-GATE:`` (run with -s, as make test-netns does).
"""

import datetime
import os
import re
import signal
import time

import pytest

from boma_mesh_utils.sam.core import bgp_status
from boma_mesh_utils.sam.io import admin_client, enroll_client

from .labrun import LEAVES, RRS, lab_session, labdaemons, labnet, poll

GROUP = "cloudedge-leaves"      # the RRs' dynamic-peer group (BGPDynamicPeer of the SAMRRSet's policy)
POOL = "10.77.60.0/24"
HOSTILE_LEAF = "leaf-b"
# Another leaf's /32 (leaf-a), an unclaimed /32 of the pool, a default route, an underlay prefix.
HOSTILE = ["10.77.60.31/32", "10.77.60.99/32", "0.0.0.0/0", "10.20.0.0/24"]
REVOKED = "leaf-b"              # claim name == leafID in the lab's host_vars
KILLED_RR, SURVIVOR_RR = "rr-a", "rr-b"


def figure(text):
    print(f"LAB-GATE: {text}", flush=True)


@pytest.fixture(scope="module")
def gate():
    start = time.monotonic()
    with lab_session("lab-gate", fail=pytest.fail) as run:
        figure(f"lab {run.prefix} up (topology.py bringup, as make lab) in {time.monotonic() - start:.1f} s")
        yield run


def test_1_rrs_peer_with_the_leaves_only_dynamically(gate):
    for rr in RRS:
        config = gate.vtysh(rr, "show running-config")
        static = [line.strip() for line in config.splitlines()
                  if re.match(r"\s*neighbor \d+\.\d+\.\d+\.\d+ ", line)
                  and line.split()[1] in {gate.tunnel[leaf] for leaf in LEAVES}]
        assert not static, f"{rr}: static neighbor lines for leaves: {static}"
        ranges = re.findall(r"bgp listen range (\S+) peer-group (\S+)", config)
        # one peer-group per admitted leaf, <group>@<leafID>, whose only listen range is the leaf's tunnel /32
        assert sorted(ranges) == sorted((gate.tunnel[leaf] + "/32", f"{GROUP}@{leaf}") for leaf in LEAVES), ranges
        for leaf in LEAVES:
            assert re.search(rf"^\s*neighbor {GROUP}@{leaf} peer-group\s*$", config, re.MULTILINE), config
        peers = gate.leaf_peers(rr)
        assert sorted(peers) == sorted(LEAVES), f"{rr}: {gate.summary(rr)}"
        for leaf, row in peers.items():
            assert row.get("state") == "Established" and row.get("dynamicPeer") is True, (rr, leaf, row)
        figure(f"{rr}: 0 static leaf neighbors; listen ranges {[r for r, _g in ranges]}; "
               f"dynamic Established {sorted(peers)}")


def test_2_each_rr_holds_exactly_the_owned_32s_and_every_leaf_has_the_others(gate):
    owner = {prefix: gate.tunnel[leaf] for leaf in LEAVES for prefix in gate.owned[leaf]}
    for rr in RRS:
        rib = gate.rib(rr)
        assert sorted(rib) == sorted(owner), f"{rr}: RIB {sorted(rib)}, expected {sorted(owner)}"
        wrong = [f"{p} from {path.get('peerId')}" for p, paths in rib.items() for path in paths
                 if path.get("peerId") != owner[p]]
        assert not wrong, f"{rr}: paths from a non-owner: {wrong}"
    for leaf in LEAVES:
        fib = gate.fib(leaf)
        others = [p for other in LEAVES if other != leaf for p in gate.owned[other]]
        assert set(others) <= set(fib), f"{leaf}: FIB {fib}, expected {others}"
    figure(f"RRs hold exactly {sorted(owner)}, each from its owner; every leaf has the other leaves' /32s")


def _peer_status(gate, rr, admitted):
    addresses = [gate.tunnel[leaf] for leaf in admitted]
    outputs = {
        "summary": gate.json(rr, "show bgp ipv4 unicast summary json"),
        "neighbors": gate.json(rr, "show bgp neighbors json"),
        "peer_group": gate.json(rr, "show bgp peer-group json"),
        "received": {a: gate.json(rr, f"show bgp ipv4 unicast neighbors {a} received-routes json") for a in addresses},
        "filtered": {a: gate.json(rr, f"show bgp ipv4 unicast neighbors {a} filtered-routes json") for a in addresses},
    }
    spec = {"peerGroup": GROUP, "listenRanges": [gate.tunnel[leaf] + "/32" for leaf in admitted],
            "allowedPrefixes": [POOL], "allowedPrefixLengthMin": 32, "allowedPrefixLengthMax": 32,
            "admitted": [{"leafID": leaf, "neighbor": gate.tunnel[leaf], "prefixes": gate.owned[leaf]}
                         for leaf in admitted]}
    return bgp_status.dynamic_peer_status(outputs, spec)


def test_3_hostile_announcements_are_received_but_rejected_on_both_rrs(gate):
    leaf = HOSTILE_LEAF
    gate.announce_hostile(leaf, HOSTILE)
    address = gate.tunnel[leaf]
    for rr in RRS:
        def received(rr=rr):
            got = gate.json(rr, f"show bgp ipv4 unicast neighbors {address} received-routes json")
            return set(HOSTILE) <= set(got.get("receivedRoutes", {}))

        ok, seconds = poll(received, timeout=30, interval=0.2)
        assert ok, f"{rr}: hostile set not received from {leaf} in 30 s"
        status = _peer_status(gate, rr, LEAVES)
        peer = next(p for p in status["discovered_peers"] if p["address"] == address)
        rib = gate.rib(rr)
        leaked = [p for p in HOSTILE if any(path.get("peerId") == address for path in rib.get(p, []))]
        assert not leaked, f"{rr}: hostile prefixes accepted from {leaf}: {leaked}"
        assert set(HOSTILE) <= set(peer["rejected_routes"]), peer
        assert peer["received"] == len(gate.owned[leaf]) + len(HOSTILE), peer
        assert peer["accepted"] == len(gate.owned[leaf]), peer
        assert peer["rejected"] == len(HOSTILE), peer
        assert all(peer["rejected_reasons"].get(p) not in (None, bgp_status.ADMISSIBLE) for p in HOSTILE), peer
        assert sorted(rib) == sorted(p for lf in LEAVES for p in gate.owned[lf]), f"{rr}: RIB {sorted(rib)}"
        figure(f"{rr}: from {leaf} received={peer['received']} accepted={peer['accepted']} "
               f"rejected={peer['rejected']} (hostile set seen after {seconds:.1f} s); reasons "
               f"{ {p: peer['rejected_reasons'].get(p) for p in HOSTILE} }")
    for other in LEAVES:
        if other != leaf:
            fib = gate.fib(other)
            leaked = (set(HOSTILE) - {"10.77.60.31/32"}) & set(fib)   # .31 is leaf-a's own, via an RR
            assert not leaked, f"{other}: hostile prefixes in FIB {leaked}"


def test_4_a_claim_revoked_on_rr_b_disappears_from_both_rrs_without_ansible(gate):
    address, owned = gate.tunnel[REVOKED], gate.owned[REVOKED]
    others = [leaf for leaf in LEAVES if leaf != REVOKED]
    # The RRs' side only: without its agent the leaf keeps dialling the RRs (test_4b enrolls it again); the
    # agent's own teardown on a revocation is tests/lab's (the guest lab, test_guest_lab.py).
    gate.stop_agent(REVOKED)
    start = time.monotonic()
    answer = admin_client.revoke(gate.rr_endpoint("rr-b"), gate.admin_token("rr-b"), REVOKED, reason="lab gate")
    assert answer.get("revoked") is True, answer
    seen = {}

    def gone():
        for rr in RRS:
            if rr not in seen:
                config = gate.vtysh(rr, "show running-config")
                if f"bgp listen range {address}/32" not in config and address not in gate.summary(rr):
                    seen[rr] = time.monotonic() - start
        for leaf in others:
            if f"{leaf}-route" not in seen and not set(owned) & set(gate.fib(leaf)) \
                    and not set(owned) & set(gate.rib(leaf)):
                seen[f"{leaf}-route"] = time.monotonic() - start
        return len(seen) == len(RRS) + len(others)

    ok, seconds = poll(gone, timeout=60, interval=0.1)
    assert ok, f"after {seconds:.1f} s only {seen} (revoked {REVOKED} on rr-b)"
    for rr in RRS:
        rib = gate.rib(rr)
        assert not set(owned) & set(rib), f"{rr}: {owned} still in RIB"
        assert sorted(gate.leaf_peers(rr)) == sorted(others), gate.summary(rr)
    figure(f"revoke {REVOKED} via rr-b API: session+listen range gone on "
           + ", ".join(f"{rr} {seen[rr]:.2f} s" for rr in RRS) + "; its /32 gone from "
           + ", ".join(f"{leaf} {seen[leaf + '-route']:.2f} s" for leaf in others)
           + f"; all within {seconds:.2f} s (no Ansible run)")


def test_4b_a_new_claim_for_the_leaf_is_admitted_and_its_32_reaches_the_others_without_ansible(gate):
    """The 'claim accepted -> /32 visible on the other leaf' figure: the revoked leaf enrolls again.

    Its FRR still dials both RRs (connect timer 2 s), so nothing but the RRs' reconcile stands between the
    accepted claim and the route: no Ansible run.
    """
    leaf, owned = REVOKED, gate.owned[REVOKED]
    others = [other for other in LEAVES if other != leaf]
    name, spec, token = gate.resigned_claim(leaf)   # a new nonce: the revoked one is burned
    start = time.monotonic()
    result = enroll_client.join([gate.rr_endpoint("rr-a")], name, spec, gate.vault()["api_token"], token.encode(), {},
                                datetime.datetime.now(datetime.timezone.utc), 0.0, force=True)
    accepted = time.monotonic() - start
    assert result.ok and result.changed, result
    seen = {}

    def visible():
        now = time.monotonic() - start
        for rr in RRS:
            if rr not in seen and set(owned) <= set(gate.rib(rr)):     # received, admitted and selected
                seen[rr] = now
        for other in others:
            if other not in seen and set(owned) <= set(gate.fib(other)):
                seen[other] = now
        return len(seen) == len(RRS) + len(others)

    ok, seconds = poll(visible, timeout=60, interval=0.1)
    assert ok, f"after {seconds:.1f} s only {seen} (claim for {leaf} accepted by rr-a)"
    for rr in RRS:
        rib = gate.rib(rr)
        assert sorted(rib) == sorted(p for lf in LEAVES for p in gate.owned[lf]), \
            f"{rr} at {time.monotonic() - start:.2f} s (seen {seen}): RIB {sorted(rib)}; {gate.summary(rr)}"
    figure(f"new claim for {leaf} accepted by rr-a in {accepted:.2f} s; its /32 in the BGP table of "
           + ", ".join(f"{rr} {seen[rr]:.2f} s" for rr in RRS) + f"; {owned} in the FIB of "
           + ", ".join(f"{other} {seen[other]:.2f} s" for other in others) + " after the submission (no Ansible run)")


def test_5_leaves_keep_their_routes_through_rr_b_when_rr_a_bgpd_stops(gate):
    leaves = [leaf for leaf in LEAVES if leaf != REVOKED]
    expect = {leaf: [p for other in leaves if other != leaf for p in gate.owned[other]] for leaf in leaves}
    killed, survivor = gate.tunnel[KILLED_RR], gate.tunnel[SURVIVOR_RR]
    via_killed = {killed, str(labnet._public(gate.lab, KILLED_RR)[1])}
    for leaf in leaves:
        fib = gate.fib(leaf)
        assert all(p in fib for p in expect[leaf]), (leaf, fib)
    hold = {leaf: gate.json(leaf, f"show bgp neighbors {killed} json").get(killed, {}).get("bgpTimerHoldTimeMsecs")
            for leaf in leaves}
    pid = labdaemons._pidfile(gate.vty(KILLED_RR), "bgpd")
    assert pid > 0
    # SIGKILL: a crash, no NOTIFICATION; the leaves see the kernel close the TCP sessions (a silent host
    # failure would instead wait for the hold timer: BFD is not configured).
    os.kill(pid, signal.SIGKILL)
    start = time.monotonic()
    gaps = {leaf: 0.0 for leaf in leaves}
    via_survivor = {}
    last = start
    while len(via_survivor) < len(leaves) and time.monotonic() - start < 60:
        now = time.monotonic()
        for leaf in leaves:
            if leaf in via_survivor:
                continue
            fib = gate.fib(leaf)
            present = all(p in fib for p in expect[leaf])
            if not present:
                gaps[leaf] += now - last
            elif all(survivor in fib[p] and not via_killed & set(fib[p]) for p in expect[leaf]):
                via_survivor[leaf] = time.monotonic() - start
        last = now
        time.sleep(0.05)
    assert sorted(via_survivor) == sorted(leaves), f"after 60 s only {via_survivor} moved to {SURVIVOR_RR}"
    for leaf in leaves:
        rib = gate.rib(leaf)
        assert all(p in rib for p in expect[leaf]), (leaf, sorted(rib))
    figure(f"{KILLED_RR} bgpd killed (SIGKILL; figure without BFD; hold timer "
           + ", ".join(f"{leaf} {hold[leaf]} ms" for leaf in leaves) + "): other leaves' /32s installed via "
           + f"{SURVIVOR_RR} after " + ", ".join(f"{leaf} {via_survivor[leaf]:.2f} s" for leaf in leaves)
           + "; route-presence outage " + ", ".join(f"{leaf} {gaps[leaf]:.2f} s" for leaf in leaves))
