# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RR failover and partial reachability on the whole lab: timer presets, BFD, RR-to-RR peering (issue 8).

One lab, brought up as `make lab` does with a private prefix and, in its lab-vars, ``sam_rr__bgp_bfd: true`` and
``sam_leaf__bgp_bfd`` on leaf-a and leaf-b only: leaf-pve runs without BFD, so its failover shows the hold
timer of the documents' ``timersPreset: fast`` (3/9 s) and leaf-a's shows BFD (bfdd's 300 ms x 3).

Traffic is a ping every 20 ms between two leaves' owned /32s, which goes leaf -> RR -> leaf (next-hop-self);
the RR the kernel's ECMP hash picks for it fails silently (its cables pulled in the underlay namespace: no RST,
no NOTIFICATION), and the outage is the longest silence between two echo replies. Then leaf-a is cut from
rr-b and leaf-b from rr-a: without RR peering leaf-a lacks leaf-b's /32; with ``sam_rr__rr_peering: true``
(applied by the role, the RR services restarted as systemd would) routes are complete and the ping works,
and the peer RR's unadmitted routes are refused. Figures are printed with ``LAB-FAILOVER:`` (run with -s).
"""

import re
import subprocess
import time

import pytest

from .labrun import LEAVES, RRS, Ping, lab_session, labdaemons, poll

BFD_LEAVES = ["leaf-a", "leaf-b"]
LAB_VARS = {"sam_rr__bgp_bfd": True, "sam_leaf__bgp_bfd": "{{ inventory_hostname in %s }}" % BFD_LEAVES}
HOLD_MS = 9000                  # timersPreset: fast (routerd 3/9)
CUT = {"leaf-a": "rr-b", "leaf-b": "rr-a"}   # partial reachability: the RR each leaf loses
HOSTILE = ["10.77.60.99/32", "0.0.0.0/0", "10.20.0.0/24"]   # unclaimed pool /32, default, underlay


def figure(text):
    print(f"LAB-FAILOVER: {text}", flush=True)


@pytest.fixture(scope="module")
def lab():
    start = time.monotonic()
    with lab_session("boma-fo", LAB_VARS, fail=pytest.fail) as run:
        figure(f"lab {run.prefix} up (topology.py bringup, BFD on the RRs, leaf-a, leaf-b) in "
               f"{time.monotonic() - start:.1f} s")
        yield run


def _bfd_peers(run, host):
    return {p.get("peer"): p.get("status") for p in run.json(host, "show bfd peers json")}


def _bfd_diagnosis(run, host, expect):
    """Why a host's BFD peers differ from what is expected: bgpd's view of each peer and the daemons' logs."""
    frr = run.vty(host)
    raw = subprocess.run([*frr._vtysh_argv(), "-c", "show bfd peers json"], capture_output=True, text=True,
                         timeout=30, check=False)  # fmt: skip
    alive = labdaemons._pid_alive(labdaemons._pidfile(frr, "bfdd"))
    lines = [f"{host}: BFD peers {_bfd_peers(run, host)}, expected {expect}; bfdd alive {alive}; vtysh "
             f"rc={raw.returncode} out={raw.stdout[:300]!r} err={raw.stderr[:300]!r}"]
    for peer in expect:
        row = run.json(host, f"show bgp neighbors {peer} json").get(peer, {})
        lines.append(f"  bgpd {peer}: state {row.get('bgpState')} bfdInfo {row.get('peerBfdInfo')}")
    lines.append("--- bfdd ---\n" + frr.log_tail("bfdd", 15))
    lines.append("--- bgpd ---\n" + frr.log_tail("bgpd", 25))
    return "\n".join(lines)


def _converged(run, bfd=True):
    """Every leaf Established with both RRs, BFD up where configured, the other leaves' /32s via both RRs."""
    for leaf in LEAVES:
        peers = run.summary(leaf)
        if any(peers.get(run.tunnel[rr], {}).get("state") != "Established" for rr in RRS):
            return False
        if bfd and leaf in BFD_LEAVES and set(_bfd_peers(run, leaf).values()) != {"up"}:
            return False
        fib = run.fib(leaf)
        for other in LEAVES:
            for prefix in run.owned[other] if other != leaf else ():
                if not {run.tunnel[rr] for rr in RRS} <= set(fib.get(prefix, ())):
                    return False
    return True


def test_1_fast_preset_and_bfd_reach_frr(lab):
    for leaf in LEAVES:
        for rr in RRS:
            row = lab.json(leaf, f"show bgp neighbors {lab.tunnel[rr]} json")[lab.tunnel[rr]]
            assert row["bgpTimerConfiguredHoldTimeMsecs"] == HOLD_MS, (leaf, rr, row)
            assert row["bgpTimerHoldTimeMsecs"] == HOLD_MS and row["bgpTimerKeepAliveIntervalMsecs"] == 3000, row
        expect = {lab.tunnel[rr]: "up" for rr in RRS} if leaf in BFD_LEAVES else {}
        # A loaded 2-vCPU machine can starve bfdd past 3 x 300 ms: a flap re-establishes within seconds.
        ok, _seconds = poll(lambda leaf=leaf, expect=expect: _bfd_peers(lab, leaf) == expect, 45, 0.5)
        assert ok, _bfd_diagnosis(lab, leaf, expect)
    for rr in RRS:
        config = lab.vtysh(rr, "show running-config")
        for leaf in ("leaf-pve", "leaf-a", "leaf-b"):   # each admitted leaf's own peer-group: preset and BFD
            group = "cloudedge-leaves@" + leaf
            assert f" neighbor {group} timers 3 9" in config and f" neighbor {group} bfd" in config, config
        assert "--bgp-bfd" in _launcher(lab, rr).read_text()   # the service renders with BFD too
    ok, seconds = poll(lambda: _converged(lab), 60, 0.5)
    assert ok, "lab not converged with BFD"
    figure(f"hold/keepalive {HOLD_MS // 1000}/3 s on every leaf-RR session (timersPreset: fast); BFD up "
           f"leaf-a, leaf-b <-> both RRs; leaf-pve without BFD")


def _launcher(run, rr):
    return labdaemons._service_paths(run.lab, rr)[0]


def _endpoint(run, rr):
    """The RR's SAMRRSet endpoint: its address on the lab's first (private) segment."""
    return str(run.lab["hosts"][rr][0][1].ip)


def _failover(run, src, dst):
    """Silent failure of the RR on src -> dst's path; (failed RR, outage s, recovery s). Restores it after."""
    rr = run.rr_on_path(src, dst)
    assert rr in RRS, f"{src} -> {dst}: no RR on the path"
    survivor = next(r for r in RRS if r != rr)
    ping = Ping(run, src, dst)
    try:
        ok, _s = poll(lambda: len(ping.replies()) >= 25, 15, 0.1)
        assert ok, f"no echo replies {src} -> {dst} before the failure:\n{ping.stop()[-500:]}"
        t0 = time.time()
        run.set_underlay(rr, up=False)
        try:
            back, _s = poll(lambda: ping.recovered_at(t0, 1.0), 40, 0.1)
            stayed = {leaf: run.summary(leaf).get(run.tunnel[survivor], {}) for leaf in LEAVES}
        finally:
            run.set_underlay(rr, up=True)
        ping.stop()
        assert back, f"{src} -> {dst}: no recovery within 40 s of {rr} failing:\n{ping.stop()[-800:]}"
        outage = ping.outage(t0)
    finally:
        ping.close()
    failed_for = time.time() - t0
    for leaf, row in stayed.items():
        # Established with the survivor all along: its session is older than the failure.
        assert row.get("state") == "Established" and row.get("peerUptimeMsec", 0) > failed_for * 1000 - 5000, (
            leaf, survivor, row)
    ok, seconds = poll(lambda: _converged(run), 90, 0.5)
    assert ok, f"{rr} back, but the lab did not converge again in 90 s\n" + "\n".join(
        _bfd_diagnosis(run, leaf, dict.fromkeys(run.tunnel[r] for r in RRS)) for leaf in BFD_LEAVES)
    return rr, outage, back - t0, seconds


def test_2_silent_rr_failure_without_bfd_costs_the_hold_timer(lab):
    rr, outage, _recovered, again = _failover(lab, "leaf-pve", "leaf-b")
    # Hold 9 s, keepalive 3 s: the last keepalive came 0-3 s before the failure, so 6-9 s (plus scheduling).
    assert 5.0 < outage < 13.0, outage
    figure(f"silent failure of {rr} (cables pulled), leaf-pve -> leaf-b every 20 ms, no BFD: outage "
           f"{outage:.2f} s (hold timer {HOLD_MS / 1000:.0f} s); leaves stayed Established with the other RR; "
           f"{rr} back and converged {again:.1f} s after its cables")


def test_3_silent_rr_failure_with_bfd_costs_about_a_second(lab):
    rr, outage, _recovered, again = _failover(lab, "leaf-a", "leaf-b")
    assert outage < 3.0, outage
    figure(f"silent failure of {rr}, leaf-a -> leaf-b every 20 ms, BFD (300 ms x 3) on both leaves: outage "
           f"{outage:.2f} s; leaves stayed Established with the other RR; converged again {again:.1f} s later")


def _has(run, host, prefix):
    return prefix in run.rib(host)


def _ping_ok(run, src, dst, count=10):
    res = run.run(src, "ping", "-n", "-c", str(count), "-i", "0.1", "-W", "1", "-I", run.owned[src][0][:-3],
                  run.owned[dst][0][:-3], check=False)
    received = re.search(r"(\d+) received", res.stdout)
    return int(received.group(1)) if received else 0


def test_4_partial_reachability_without_rr_peering_leaves_routes_incomplete(lab):
    start = time.monotonic()
    for leaf, rr in CUT.items():
        lab.run(leaf, "ip", "route", "del", lab.tunnel[rr] + "/32")
        lab.run(rr, "ip", "route", "del", lab.tunnel[leaf] + "/32")
    b_of_a, a_of_b = lab.owned["leaf-b"][0], lab.owned["leaf-a"][0]

    def incomplete():
        down = all(lab.summary(leaf).get(lab.tunnel[rr], {}).get("state") != "Established" for leaf, rr in CUT.items())
        return down and not _has(lab, "leaf-a", b_of_a) and not _has(lab, "leaf-b", a_of_b)

    ok, seconds = poll(incomplete, 30, 0.2)
    assert ok, {leaf: sorted(lab.rib(leaf)) for leaf in CUT}
    assert _ping_ok(lab, "leaf-a", "leaf-b", count=5) == 0
    # leaf-pve reaches both RRs and still has everything.
    assert {b_of_a, a_of_b} <= set(lab.rib("leaf-pve"))
    figure(f"partial reachability (leaf-a only rr-a, leaf-b only rr-b), no RR peering: after {seconds:.1f} s "
           f"leaf-a RIB {sorted(lab.rib('leaf-a'))} (no {b_of_a}), leaf-b RIB {sorted(lab.rib('leaf-b'))}; "
           f"ping leaf-a -> leaf-b 0/5 (cut applied {time.monotonic() - start:.1f} s before)")


def test_5_rr_peering_through_the_role_completes_the_routes(lab):
    start = time.monotonic()
    lab.playbook("--tags", "service,bgp", "--limit", "sam_rrs", extra_vars={"sam_rr__rr_peering": True})
    played = time.monotonic() - start
    for rr in RRS:
        assert "--rr-peering" in _launcher(lab, rr).read_text()
        log = lab.restart_service(rr)
        # The restarted service renders with the same options as the role: nothing to change.
        assert re.search(r"reconcile: bgp (unchanged|persisted)", log), log[-1500:]
    endpoint = {rr: _endpoint(lab, rr) for rr in RRS}
    b_of_a, a_of_b = lab.owned["leaf-b"][0], lab.owned["leaf-a"][0]

    # Each hop's kernel, not only the leaves' RIBs: a ping sent before zebra installs the route on rr-a or
    # rr-b is lost (seen once in 10 runs: 9/10).
    hops = (("leaf-a", b_of_a), ("rr-a", b_of_a), ("rr-b", a_of_b), ("leaf-b", a_of_b))

    def complete():
        up = lab.summary("rr-a").get(endpoint["rr-b"], {}).get("state") == "Established"
        return up and all(prefix in lab.fib(host) for host, prefix in hops)

    ok, seconds = poll(complete, 60, 0.2)
    assert ok, (lab.summary("rr-a"), {host: sorted(lab.fib(host)) for host, _prefix in hops})
    received = _ping_ok(lab, "leaf-a", "leaf-b")
    assert received == 10, received
    paths = lab.rib("rr-a")[b_of_a]
    assert [(p.get("peerId"), p.get("locPrf")) for p in paths] == [(endpoint["rr-b"], 50)], paths
    # A leaf that reaches both RRs prefers the one holding the route straight from its owner (local-pref 100).
    best = [p for p in lab.rib("leaf-pve")[b_of_a] if p.get("bestpath") in (True, {"overall": True})]
    assert [p.get("peerId") for p in best] == [lab.tunnel["rr-b"]], lab.rib("leaf-pve")[b_of_a]
    figure(f"sam_rr__rr_peering: true (role run {played:.1f} s, services restarted: 'bgp unchanged'): rr-a <-> "
           f"rr-b Established over {endpoint['rr-a']}/{endpoint['rr-b']}, {b_of_a} and {a_of_b} in the FIB of every "
           f"hop {seconds:.1f} s later; ping leaf-a -> leaf-b {received}/10 (leaf -> rr-a -> rr-b -> leaf)")


def test_6_the_peer_rr_cannot_inject_unadmitted_routes(lab):
    peer = _endpoint(lab, "rr-b")
    asn = re.search(r"^router bgp (\d+)", lab.vtysh("rr-b", "show running-config"), re.MULTILINE).group(1)
    lab.vtysh("rr-b", "configure terminal", f"router bgp {asn}", "address-family ipv4 unicast",
              *[f"network {p}" for p in HOSTILE])

    def received():
        got = lab.json("rr-a", f"show bgp ipv4 unicast neighbors {peer} received-routes json")
        return set(HOSTILE) <= set(got.get("receivedRoutes", {}))

    ok, seconds = poll(received, 30, 0.2)
    assert ok, "rr-a never received the hostile set from rr-b"
    rib = lab.rib("rr-a")
    assert not set(HOSTILE) & set(rib), sorted(rib)
    assert lab.owned["leaf-b"][0] in rib
    # leaf-a reaches only rr-a. (rr-b's own clients do get what rr-b itself originates: a leaf takes its RRs'
    # word, the admission is on the RRs.)
    assert not set(HOSTILE) & set(lab.rib("leaf-a")), sorted(lab.rib("leaf-a"))
    figure(f"rr-b announced {HOSTILE} to rr-a: received (soft-reconfiguration) after {seconds:.1f} s, none "
           f"accepted (SAM-RR-IN: admitted claims' /32s only), so leaf-a (only rr-a) never saw them")
