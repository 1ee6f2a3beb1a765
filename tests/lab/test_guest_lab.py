"""`make test-lab`: the runbook's Full Topology Gate on Debian's kernel, in the lab's qemu guest.

The lab is brought up exactly as `make lab` does (tools/lab/guestlab.py bringup: the namespaces, FRR and the
RR services in the guest, site.yml through the roles from the host over the lab_vm connection), then the pass
criteria that need real tunnels are asserted from the host through the guest's agent. The BGP-only criteria
(hostile set, RR failover with and without BFD, RR-to-RR peering) run on this machine's kernel in
tests/netns, where they are much faster. Needs root and the kernel lane's cache (make kernel-setup).
With BOMA_LAB_PREFIX set, the tests run against that running lab instead (molecule/kernel's verify step).
"""

import ipaddress
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "lab"))
import guestlab  # noqa: E402 - tools/lab is not a package

RRS = ["rr-a", "rr-b"]
LEAVES = ["leaf-pve", "leaf-a", "leaf-b"]
REVOKED = "leaf-pve"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (namespaces in the guest, qemu)")


def figure(text):
    print(f"\nFIGURE {text}", flush=True)


class Gate:
    def __init__(self, lab):
        self.lab = lab
        self.prefix = lab.prefix
        ids = guestlab.topology.identities(lab.lab)
        self.tunnel = {h: str(ids[h][0][0].ip) for h in RRS + LEAVES}
        self.owned = {h: [str(i.network) for i in ids[h][1]] for h in LEAVES}

    def sh(self, host, cmd, check=True):
        return self.lab.vm.run(cmd, netns=f"{self.prefix}-{host}", check=check)[1]

    def vtysh(self, host, command):
        return self.sh(host, shlex.join(["vtysh", "--vty_socket", f"/run/{self.prefix}/{host}/frr/run",
                                         "-c", command]))

    def json(self, host, command):
        return json.loads(self.vtysh(host, command) or "{}")

    def links(self, host):
        return {link["ifname"]: link for link in json.loads(self.sh(host, "ip -d -j link show"))}

    def fib(self, host):
        routes = json.loads(self.sh(host, "ip -j route show proto bgp"))
        return {f"{r['dst']}/32" if "/" not in r["dst"] else r["dst"] for r in routes}

    def ping(self, src, dst_addr, count=3):
        out = self.sh(src, f"ping -n -q -c {count} -i 0.2 -W 2 -I {self.owned[src][0].split('/')[0]} {dst_addr}",
                      check=False)
        sent, received = re.search(r"(\d+) packets transmitted, (\d+) received", out).groups()
        return int(received), int(sent)


@pytest.fixture(scope="module")
def gate():
    existing = os.environ.get("BOMA_LAB_PREFIX")
    if existing:    # molecule/kernel's verify: the lab its converge step configured, left running
        yield Gate(guestlab.GuestLab(existing))
        return
    lab = guestlab.GuestLab("boma-glab")
    lab.down()  # an interrupted run's guest
    start = time.monotonic()
    try:
        converged = lab.bringup(wait=300)
        figure(f"make lab (qemu guest, TCG) bring-up {time.monotonic() - start:.1f} s, converged {converged}")
        assert converged, "the guest lab did not converge (see the status table above)"
        yield Gate(lab)
    finally:
        lab.down()


def test_1_rrs_have_no_static_leaf_neighbours_and_accept_every_leaf_dynamically(gate):
    for rr in RRS:
        config = gate.vtysh(rr, "show running-config")
        static = [line for line in config.splitlines()
                  if re.match(r"\s*neighbor (\d+\.){3}\d+ remote-as", line)
                  and line.split()[1] in {gate.tunnel[leaf] for leaf in LEAVES}]
        assert not static, f"{rr}: static leaf neighbours {static}"
        peers = gate.json(rr, "show bgp ipv4 unicast summary json").get("peers", {})
        established = {p for p, v in peers.items() if v.get("state") == "Established" and v.get("dynamicPeer")}
        assert established == {gate.tunnel[leaf] for leaf in LEAVES}, f"{rr}: {peers}"


def test_2_each_leaf_runs_its_transport_to_both_rrs(gate):
    tunnels = {}
    for leaf in LEAVES:
        links = gate.links(leaf)
        mine = {name: link for name, link in links.items() if name.startswith("sam-rr-")}
        assert sorted(mine) == ["sam-rr-a", "sam-rr-b"], f"{leaf}: {sorted(links)}"
        info = {name: link.get("linkinfo", {}) for name, link in mine.items()}
        tunnels[leaf] = {name: i.get("info_kind") for name, i in info.items()}
        data = [i.get("info_data", {}) for i in info.values()]
        if leaf == "leaf-b":   # fou 5555/5555, no WireGuard
            assert all(d.get("encap", {}).get("type") == "fou" and d["encap"].get("sport") == 5555
                       and d["encap"].get("dport") == 5555 for d in data), data
            assert not [n for n, lk in links.items() if lk.get("linkinfo", {}).get("info_kind") == "wireguard"]
        elif leaf == "leaf-a":  # ipip over WireGuard: the tunnels start at the WireGuard address
            assert links["wg-cloudedge"]["linkinfo"]["info_kind"] == "wireguard"
            assert all(d.get("local") == "10.20.0.31" for d in data), data
            handshakes = gate.sh(leaf, "wg show wg-cloudedge latest-handshakes")
            assert len([line for line in handshakes.splitlines() if line.split()[-1] != "0"]) == 2, handshakes
        else:                   # plain ipip on the private underlay
            assert all(d.get("encap", {}).get("type") in (None, "none") for d in data), data
        assert set(tunnels[leaf].values()) == {"ipip"}, tunnels[leaf]
    for rr in RRS:
        names = {n for n in gate.links(rr) if n.startswith("sam-leaf-")}
        assert names == {f"sam-{leaf}" for leaf in LEAVES}, f"{rr}: {names}"
    figure(f"tunnels: {tunnels}")


def test_3_rrs_hold_exactly_the_owned_32s_and_leaves_have_each_other(gate):
    owned = {p for leaf in LEAVES for p in gate.owned[leaf]}
    for rr in RRS:
        rib = gate.json(rr, "show bgp ipv4 unicast json").get("routes", {})
        assert set(rib) == owned, f"{rr}: RIB {sorted(rib)}"
    for leaf in LEAVES:
        others = {p for other in LEAVES if other != leaf for p in gate.owned[other]}
        assert others <= gate.fib(leaf), f"{leaf}: FIB {gate.fib(leaf)}"


def test_4_leaves_ping_each_other_over_the_mesh(gate):
    results = {}
    for src in LEAVES:
        for dst in LEAVES:
            if src != dst:
                address = str(ipaddress.ip_interface(gate.owned[dst][0]).ip)
                results[(src, dst)] = gate.ping(src, address)
    lost = {k: v for k, v in results.items() if v[0] != v[1]}
    assert not lost, f"pings lost between owned /32s: {lost}"
    figure("leaf-to-leaf pings over the tunnels via the RRs: "
           + ", ".join(f"{s}->{d} {r}/{n}" for (s, d), (r, n) in sorted(results.items())))


def test_5_a_claim_revoked_through_the_api_leaves_both_rrs_without_ansible(gate):
    rr = "rr-b"
    hostdir = f"/run/{gate.prefix}/{rr}"
    start = time.monotonic()
    gate.sh(rr, shlex.join([f"{hostdir}/bin/samctl", "claim", "revoke", REVOKED, "--rr-socket",
                            f"{hostdir}/state/{rr}.sock", "--admin-token-file", f"{hostdir}/etc/admin-token"]))
    seen = {}

    def gone():
        for host in RRS:
            if host not in seen and f"sam-{REVOKED}" not in gate.links(host) \
                    and gate.tunnel[REVOKED] not in gate.sh(host, "ip -4 route show"):
                seen[host] = time.monotonic() - start
        for leaf in LEAVES:
            if leaf != REVOKED and leaf not in seen and not set(gate.owned[REVOKED]) & gate.fib(leaf):
                seen[leaf] = time.monotonic() - start
        return len(seen) == len(RRS) + len(LEAVES) - 1

    deadline = time.monotonic() + 240
    while not gone() and time.monotonic() < deadline:
        time.sleep(1)
    assert gone(), f"after {time.monotonic() - start:.0f} s only {seen} (revoked {REVOKED} through {rr}'s API)"
    figure(f"revoke {REVOKED} through {rr}'s API: tunnel and routes gone without Ansible on "
           + ", ".join(f"{h} {s:.1f} s" for h, s in sorted(seen.items())) + " (TCG guest)")
