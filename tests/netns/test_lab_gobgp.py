# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab with gobgpd RRs and FRR leaves, then with one RR of each: `site.yml --tags mesh` through the roles
(sam_rr__bgp_daemon: gobgp), and the runbook's pass criteria on both.

Each variant is one lab brought up as `make lab-host` does with `topology.py --rr-bgp` (up, the RRs' install
run, their services, the mesh run, the leaf agents, status --wait 60), then taken down. The tests build on each
other: 1 the converged mesh, 2 a second mesh run changes nothing, 3 a leaf announces a hostile set, 4 its claim
is revoked through one RR's API. Figures are printed with the prefix ``LAB-GOBGP:``.
"""

import re
import time

import pytest

from boma_mesh_utils.sam.core.bgp_status import ESTABLISHED
from boma_mesh_utils.sam.core.bgp_status_gobgp import STATES
from boma_mesh_utils.sam.io import admin_client

from .labrun import LEAVES, RRS, lab_session, poll, topology

HOSTILE_LEAF = REVOKED = "leaf-b"
HOSTILE = ["10.77.60.31/32", "10.77.60.99/32", "0.0.0.0/0", "10.20.0.0/24"]
VARIANTS = {"gobgp": {"rr-a": "gobgp", "rr-b": "gobgp"}, "mixed": {"rr-a": "gobgp", "rr-b": "frr"}}


def figure(variant, text):
    print(f"LAB-GOBGP [{variant}]: {text}", flush=True)


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def lab(request):
    start = time.monotonic()
    with lab_session("lab-gobgp", fail=pytest.fail, rr_bgp=VARIANTS[request.param]) as run:
        run.variant = request.param
        figure(run.variant, f"lab {run.prefix} up ({VARIANTS[request.param]}, FRR leaves) in "
                            f"{time.monotonic() - start:.1f} s")
        yield run


def _gobgp(run, rr):
    return run.lab["rr_bgp"].get(rr) == "gobgp"


def rr_rib(run, rr):
    """{prefix: [neighbor addresses]} of the RR's BGP table."""
    if _gobgp(run, rr):
        table = topology.gobgp(run.lab, rr, "global", "rib", "-a", "ipv4") or {}
        return {p: [path.get("neighbor-ip") for path in paths] for p, paths in table.items()}
    return {p: [path.get("peerId") for path in paths] for p, paths in run.rib(rr).items()}


def rr_sessions(run, rr):
    """{neighbor address: Established?} of the RR's sessions."""
    if _gobgp(run, rr):
        return {(n.get("state") or {}).get("neighbor_address"):
                STATES.get((n.get("state") or {}).get("session_state")) == ESTABLISHED
                for n in topology.gobgp(run.lab, rr, "neighbor") or ()}
    return {address: row.get("state") == "Established" for address, row in run.summary(rr).items()}


def test_1_each_rr_admits_exactly_the_owned_32s_and_every_leaf_has_the_others(lab):
    owner = {prefix: lab.tunnel[leaf] for leaf in LEAVES for prefix in lab.owned[leaf]}
    for rr in RRS:
        sessions = rr_sessions(lab, rr)
        assert all(sessions.get(lab.tunnel[leaf]) for leaf in LEAVES), f"{rr}: {sessions}"
        rib = rr_rib(lab, rr)
        assert sorted(rib) == sorted(owner), f"{rr}: RIB {sorted(rib)}, expected {sorted(owner)}"
        wrong = [f"{p} from {n}" for p, neighbors in rib.items() for n in neighbors if n != owner[p]]
        assert not wrong, f"{rr}: paths from a non-owner: {wrong}"
    for leaf in LEAVES:
        others = [p for other in LEAVES if other != leaf for p in lab.owned[other]]
        assert set(others) <= set(lab.fib(leaf)), f"{leaf}: FIB {lab.fib(leaf)}, expected {others}"
    figure(lab.variant, f"every leaf Established with {RRS}; each RR holds exactly {sorted(owner)}, each from its "
                        "owner; every leaf has the others' /32s in its FIB")


def test_2_a_second_mesh_run_changes_nothing(lab):
    start = time.monotonic()
    out = lab.playbook("--tags", "mesh")
    recap = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", out, re.M)}
    assert set(recap) >= set(RRS + LEAVES) and not any(recap.values()), recap
    figure(lab.variant, f"second site.yml --tags mesh: changed=0 on {len(recap)} hosts "
                        f"({time.monotonic() - start:.1f} s)")


def test_3_a_hostile_leafs_set_is_received_and_refused_on_both_rrs(lab):
    leaf, address = HOSTILE_LEAF, lab.tunnel[HOSTILE_LEAF]
    lab.announce_hostile(leaf, HOSTILE)
    for rr in RRS:
        if _gobgp(lab, rr):
            def received(rr=rr):
                return set(HOSTILE) <= set(topology.gobgp(lab.lab, rr, "neighbor", address, "adj-in", "-a", "ipv4")
                                           or {})
        else:
            def received(rr=rr):
                got = lab.json(rr, f"show bgp ipv4 unicast neighbors {address} received-routes json")
                return set(HOSTILE) <= set(got.get("receivedRoutes", {}))
        ok, seconds = poll(received, timeout=30, interval=0.2)
        assert ok, f"{rr}: hostile set not received from {leaf} in 30 s"
        rib = rr_rib(lab, rr)
        leaked = [p for p in HOSTILE if address in rib.get(p, ())]
        assert not leaked, f"{rr}: hostile prefixes accepted from {leaf}: {leaked}"
        assert sorted(rib) == sorted(p for other in LEAVES for p in lab.owned[other]), f"{rr}: RIB {sorted(rib)}"
        figure(lab.variant, f"{rr} ({lab.lab['rr_bgp'].get(rr, 'frr')}): {len(HOSTILE)} hostile routes received "
                            f"from {leaf} after {seconds:.1f} s, none admitted")
    for other in LEAVES:
        if other != leaf:
            leaked = (set(HOSTILE) - {"10.77.60.31/32"}) & set(lab.fib(other))   # .31 is leaf-a's own
            assert not leaked, f"{other}: hostile prefixes in FIB {leaked}"


def test_4_a_claim_revoked_on_one_rr_drops_the_session_and_the_32_everywhere(lab):
    address, owned = lab.tunnel[REVOKED], lab.owned[REVOKED]
    others = [leaf for leaf in LEAVES if leaf != REVOKED]
    lab.stop_agent(REVOKED)         # the RRs' side only (the agent's own teardown is tests/lab's)
    start = time.monotonic()
    answer = admin_client.revoke(lab.rr_endpoint("rr-a"), lab.admin_token("rr-a"), REVOKED, reason="lab gobgp")
    assert answer.get("revoked") is True, answer
    seen = {}

    def gone():
        for rr in RRS:
            if rr not in seen and not rr_sessions(lab, rr).get(address) and not set(owned) & set(rr_rib(lab, rr)):
                seen[rr] = time.monotonic() - start
        for leaf in others:
            if leaf not in seen and not set(owned) & set(lab.fib(leaf)):
                seen[leaf] = time.monotonic() - start
        return len(seen) == len(RRS) + len(others)

    ok, seconds = poll(gone, timeout=60, interval=0.1)
    assert ok, f"after {seconds:.1f} s only {seen} (revoked {REVOKED} on rr-a)"
    for rr in RRS:       # and it stays out: the leaf's FRR keeps dialling, no range admits it any more
        assert not rr_sessions(lab, rr).get(address), f"{rr}: {REVOKED} back: {rr_sessions(lab, rr)}"
    figure(lab.variant, f"revoke {REVOKED} via rr-a's API: session and /32 gone on "
                        + ", ".join(f"{k} {v:.2f} s" for k, v in seen.items()) + " (no Ansible run)")
