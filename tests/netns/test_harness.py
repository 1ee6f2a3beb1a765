"""Self-tests of the netns harness against real FRR and GoBGP daemons (root only; see conftest)."""

import json
import os
import pwd
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from . import harness
from .harness import DEFAULT_PREFIX as PREFIX
from .harness import Topology, cleanup_stale, wait_for

LO = {"r1": "10.255.0.1", "r2": "10.255.0.2", "r3": "10.255.0.3", "r4": "10.255.0.4"}


def bgp_conf(asn, router_id, neighbors, networks=(), extra=""):
    """Minimal FRR BGP config; ``neighbors`` is a list of (address, remote_as, update_source or None)."""
    lines = ["router bgp %d" % asn, " bgp router-id %s" % router_id, " no bgp ebgp-requires-policy"]
    for addr, remote_as, source in neighbors:
        lines += [" neighbor %s remote-as %d" % (addr, remote_as), " neighbor %s timers 3 9" % addr]
        lines.append(" neighbor %s timers connect 2" % addr)
        if source:
            lines.append(" neighbor %s update-source %s" % (addr, source))
    lines.append(" address-family ipv4 unicast")
    lines += ["  network %s" % net for net in networks]
    lines += [" exit-address-family", "exit", extra]
    return "\n".join(lines) + "\n"


def peer_state(frr, addr):
    return frr.json("show bgp summary json")["ipv4Unicast"]["peers"][addr]["state"]


def established(frr, addr):
    return peer_state(frr, addr) == "Established"


def ibgp_pair(topo, networks_r1=("10.1.1.0/24",)):
    """r1 -- r2 over a veth, iBGP between loopback /32s reached by static routes."""
    for name in ("r1", "r2"):
        topo.add_host(name)
        topo.address(name, LO[name] + "/32")
    topo.link("r1", "r2", "172.31.0.0/30")
    topo.route("r1", LO["r2"] + "/32", "172.31.0.2")
    topo.route("r2", LO["r1"] + "/32", "172.31.0.1")
    topo.address("r1", "10.1.1.1/24")
    topo.address("r1", "10.1.2.1/24")
    r1 = topo.start_frr("r1", bgp_conf(65000, LO["r1"], [(LO["r2"], 65000, LO["r1"])], networks_r1))
    r2 = topo.start_frr("r2", bgp_conf(65000, LO["r2"], [(LO["r1"], 65000, LO["r2"])]))
    return r1, r2


def assert_clean(namespaces, pids):
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not [ns for ns in namespaces if ns in listed.split()], listed
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists():  # pid reuse or an unreaped zombie is fine, a live daemon is not
            text = stat.read_text()
            comm, state = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2]
            assert comm not in ("zebra", "bgpd", "gobgpd") or state in "ZX", (pid, comm, state)
        assert not list(Path("/var/tmp/frr").glob(f"*.{pid}")), pid


def test_two_hosts_ping(topo):
    assert topo.add_host("host-a") == f"{topo.prefix}-{topo.runid}-host-a"
    topo.add_host("b")
    assert topo.link("host-a", "b", "172.31.0.0/30") == ("eth0", "eth0")
    topo.address("b", "10.255.0.2/32")
    topo.route("host-a", "10.255.0.2/32", "172.31.0.2")
    assert topo.run("host-a", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    topo.run("host-a", ["ping", "-c", "1", "-W", "2", "172.31.0.2"])
    topo.run("host-a", ["ping", "-c", "1", "-W", "2", "10.255.0.2"])
    res = topo.run("b", ["ping", "-c", "1", "-W", "1", "10.9.9.9"], check=False)
    assert res.returncode != 0


def test_frr_ibgp_loopbacks_established_and_route_learned(topo):
    r1, r2 = ibgp_pair(topo)
    assert os.stat(r1.vty_dir).st_uid == pwd.getpwnam("frr").pw_uid
    assert {"bgpd.vty", "zebra.vty"} <= set(os.listdir(r1.vty_dir))
    wait_for(lambda: established(r2, LO["r1"]), message="r2 -> r1 iBGP session")
    wait_for(lambda: established(r1, LO["r2"]), message="r1 -> r2 iBGP session")
    route = wait_for(lambda: r2.json("show ip route 10.1.1.0/24 json").get("10.1.1.0/24"), message="route on r2")
    assert route[0]["protocol"] == "bgp"
    assert "10.1.1.0/24" in r2.json("show bgp ipv4 unicast json")["routes"]
    assert "proto bgp" in topo.run("r2", ["ip", "route", "show", "10.1.1.0/24"]).stdout
    topo.run("r2", ["ping", "-c", "1", "-W", "2", "10.1.1.1"])
    assert r1.is_running("bgpd") and r1.is_running("zebra")


def test_frr_reload_applies_change_without_restart(topo):
    r1, r2 = ibgp_pair(topo)
    wait_for(lambda: established(r2, LO["r1"]), message="r2 -> r1 iBGP session")
    pid_before = r1.pid("bgpd")
    new = bgp_conf(65000, LO["r1"], [(LO["r2"], 65000, LO["r1"])], ("10.1.1.0/24", "10.1.2.0/24"))
    new = new.replace(
        " no bgp ebgp-requires-policy\n", " no bgp ebgp-requires-policy\n neighbor %s description r2\n" % LO["r2"]
    )
    res = r1.reload(new)
    assert res.returncode == 0, res.stdout + res.stderr
    assert r1.pid("bgpd") == pid_before and r1.is_running("bgpd")
    running = r1.vtysh("show running-config")
    assert "network 10.1.2.0/24" in running and "neighbor %s description r2" % LO["r2"] in running
    assert "network 10.1.2.0/24" in Path(r1.config_dir, "frr.conf").read_text()  # frr-reload wrote it
    wait_for(lambda: "10.1.2.0/24" in r2.json("show bgp ipv4 unicast json")["routes"], message="reloaded network")
    assert established(r2, LO["r1"])
    r1.stop("bgpd")
    assert not r1.is_running("bgpd") and r1.is_running("zebra")
    assert not list(Path("/var/tmp/frr").glob(f"*.{pid_before}"))


def test_frr_bad_config_fails_loudly(topo):
    topo.add_host("r1")
    with pytest.raises(ValueError, match="neighbr"):
        topo.start_frr("r1", "router bgp 65000\n neighbr 10.0.0.2 remote-as 65000\n")


def test_gobgpd_answers(topo):
    topo.add_host("g1")
    gobgp = topo.start_gobgpd("g1", '[global.config]\n  as = 65010\n  router-id = "10.255.0.10"\n', api_port=50052)
    info = gobgp.gobgp("global")
    assert info["asn"] == 65010 and info["router_id"] == "10.255.0.10"
    assert "65010" in gobgp.gobgp("global", json=False)
    assert gobgp.gobgp("neighbor") == []
    with pytest.raises(subprocess.CalledProcessError, match="not found neighbor"):
        gobgp.gobgp("neighbor", "192.0.2.1")
    assert gobgp.is_running()
    gobgp.stop()
    assert not gobgp.is_running()


def test_close_cleans_up_even_when_body_raises(tmp_path):
    class Boom(Exception):
        pass

    seen = {}
    with pytest.raises(Boom):
        with Topology(tmp_path, prefix=PREFIX) as topo:
            seen["netns"] = [topo.add_host("a"), topo.add_host("b")]
            topo.link("a", "b", "172.31.0.0/30")
            topo.start_frr("a", bgp_conf(65001, "10.255.0.1", [("172.31.0.2", 65002, None)]))
            topo.start_gobgpd("b", '[global.config]\n  as = 65002\n  router-id = "10.255.0.2"\n')
            seen["pids"] = list(topo.pids)
            seen["rundir"] = topo.rundir
            assert len(seen["pids"]) == 3
            raise Boom("simulated test failure")
    assert_clean(seen["netns"], seen["pids"])
    assert not seen["rundir"].exists()
    assert (tmp_path / "a" / "frr" / "bgpd.log").exists()  # logs kept for post-mortem
    topo.close()  # idempotent


def test_cleanup_stale_removes_crashed_run_but_not_live_ones(tmp_path):
    # A prefix of its own: concurrent runs of this test must not clean up each other's fake crash.
    prefix = "bmstale" + secrets.token_hex(2)
    live = Topology(tmp_path / "live", prefix=prefix)
    crashed = Topology(tmp_path / "crashed", prefix=prefix)
    try:
        live_ns = live.add_host("x")
        names = [crashed.add_host("a"), crashed.add_host("b")]
        crashed.link("a", "b", "172.31.0.0/30")
        frr = crashed.start_frr("a", bgp_conf(65001, "10.255.0.1", [("172.31.0.2", 65002, None)]))
        pids = list(crashed.pids)
        # Simulate a crash: forget the topology and hand its state to a dead owner.
        harness._LIVE.discard(crashed)
        crashed._closed = True
        dead = subprocess.Popen(["true"])
        dead.wait()
        state = json.loads((crashed.rundir / "state.json").read_text())
        state["owner_pid"] = dead.pid
        (crashed.rundir / "state.json").write_text(json.dumps(state))
        removed = cleanup_stale(prefix)
        assert sorted(removed) == sorted(names)
        for proc in frr.procs.values():
            proc.wait(timeout=10)  # reap (they are our children in this simulation)
        assert_clean(names, pids)
        assert not crashed.rundir.exists()
        assert live_ns in subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, text=True).stdout
    finally:
        live.close()
        for host in crashed.hosts.values():
            harness._remove_netns(host.netns)


def test_timing_four_routers_established(topo):
    """Bring up r1-r2-r3-r4 (eBGP on the links); prints the time to all sessions Established."""
    start = time.monotonic()
    names = ["r1", "r2", "r3", "r4"]
    for name in names:
        topo.add_host(name)
        topo.address(name, LO[name] + "/32")
    subnets = {}
    for idx in range(3):
        subnet = "172.31.%d.0/30" % idx
        topo.link(names[idx], names[idx + 1], subnet)
        subnets[idx] = subnet.replace(".0/30", ".%d")
    t_net = time.monotonic()
    frrs = {}
    for idx, name in enumerate(names):
        neighbors = []
        if idx > 0:
            neighbors.append((subnets[idx - 1] % 1, 65001 + idx - 1, None))
        if idx < 3:
            neighbors.append((subnets[idx] % 2, 65001 + idx + 1, None))
        frrs[name] = topo.start_frr(name, bgp_conf(65001 + idx, LO[name], neighbors, [LO[name] + "/32"]))
    t_frr = time.monotonic()
    for idx in range(3):
        left, right = frrs[names[idx]], frrs[names[idx + 1]]
        wait_for(lambda left=left, idx=idx: established(left, subnets[idx] % 2), message=f"session {idx}")
        wait_for(lambda right=right, idx=idx: established(right, subnets[idx] % 1), message=f"session {idx}")
    t_est = time.monotonic()
    wait_for(lambda: LO["r4"] + "/32" in frrs["r1"].json("show bgp ipv4 unicast json")["routes"], message="r4 lo on r1")
    t_routes = time.monotonic()
    print(
        "\n[netns timing] 4 namespaces + 3 links: %.2fs, FRR started: %.2fs, all Established: %.2fs, "
        "r4 loopback on r1: %.2fs" % (t_net - start, t_frr - start, t_est - start, t_routes - start)
    )
