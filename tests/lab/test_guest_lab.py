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
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "lab"))
import guestlab  # noqa: E402 - tools/lab is not a package

from boma_mesh_utils.sam.core import fields  # noqa: E402

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


def console_tail(lab, lines=60):
    """The guest console's last lines that are not request logs, and the last requests: why a guest went away."""
    try:
        text = (lab.vm.dir / "console.log").read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no console log: {exc})"
    requests = [line for line in text if line.startswith("agent: ") and "vitals" not in line]
    other = [line for line in text if line not in requests]
    return "\n".join(["--- guest console (last lines, requests left out) ---", *other[-lines:],
                      "--- last requests ---", *requests[-15:]])


@pytest.fixture(scope="module")
def gate(request):
    existing = os.environ.get("BOMA_LAB_PREFIX")
    if existing:    # molecule/kernel's verify: the lab its converge step configured, left running
        lab = guestlab.GuestLab(existing)
        lab.topology("agents")   # the leaf agents as bringup starts them (converge runs only the playbook)
        yield Gate(lab)
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
        if request.session.testsfailed:
            print(console_tail(lab))
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


def _claims(gate, rr="rr-a"):
    """{name: item} of the RR's admin listing (samctl claim list on its unix socket, in the guest)."""
    hostdir = f"/run/{gate.prefix}/{rr}"
    out = gate.sh(rr, shlex.join([f"{hostdir}/bin/samctl", "claim", "list", "--rr-socket", f"{hostdir}/state/{rr}.sock",
                                  "--admin-token-file", f"{hostdir}/etc/admin-token", "-o", "json"]))
    return {i["name"]: i for i in json.loads(out).get("items", [])}


def _uptimes(gate, leaf):
    """{RR tunnel address: (state, peerUptimeMsec)} of the leaf's BGP sessions toward the RRs."""
    peers = gate.json(leaf, "show bgp ipv4 unicast summary json").get("peers", {})
    return {p: (v.get("state"), v.get("peerUptimeMsec", 0)) for p, v in peers.items()}


def _agent_state(gate, leaf):
    return json.loads(gate.sh(leaf, f"cat /run/{gate.prefix}/{leaf}/state/agent-{leaf}/agent.json"))


def _lease_seconds(gate):
    policies = {d["metadata"]["name"]: d["spec"] for d in yaml.safe_load(
        (gate.lab.lab["inventory"] / "group_vars" / "all" / "sam.yml").read_text())["sam_resources"]
        if d["kind"] == "SAMEnrollmentPolicy"}
    ttls = {fields.parse_duration(spec["ttl"]).total_seconds() for spec in policies.values()}
    assert len(ttls) == 1, ttls
    return ttls.pop()


# Three lease lengths: over 6 minutes. Debian bookworm's bgpd 8.4.4 on a leaf can loop on a polled fd it no longer
# watches ("Attempting to process an I/O event but for fd ... no thread to handle this!", fixed upstream by
# FRRouting/frr#17025) and log that line thousands of times a second; tools/lab/logcap.py cuts the lab's FRR logs
# at 16 MiB each, so the guest's /run no longer fills.
# On request only (BOMA_LAB_LONG=1): twice, in CI (stop 25) and once here in five runs, the TCG guest's kernel
# locked up during this test ("watchdog: BUG: soft lockup - CPU#0 stuck for 44s! [bgpd_io]" with the
# rcu_preempt kthread starved on the other vCPU) and every later request to the guest failed. The lockup is in
# the guest kernel under qemu TCG, not in the mesh; until it is understood, this 6-minute test does not run in
# the lanes CI calls. It passed in every run that did not lock up (720/720 pings, 6-7 renewals per leaf).
@pytest.mark.skipif(os.environ.get("BOMA_LAB_LONG") != "1",
                    reason="BOMA_LAB_LONG=1: >6 min, and the TCG guest kernel locked up during it (see above)")
def test_4a_the_agents_renew_the_leases_without_ansible_and_no_session_resets(gate):
    """Issue 18: three lease lengths with no Ansible run; the leaf agents renew, the leaves keep pinging."""
    ttl = _lease_seconds(gate)
    assert ttl <= 300, f"the lab's policy ttl is {ttl} s: too long for this test (inventories/lab sam.yml)"
    before = _claims(gate)
    up0 = {leaf: _uptimes(gate, leaf) for leaf in LEAVES}
    for leaf, peers in up0.items():
        assert {gate.tunnel[rr] for rr in RRS} <= set(peers), (leaf, peers)
        assert all(state == "Established" for state, _u in peers.values()), (leaf, peers)
    start = time.monotonic()
    sent = received = rounds = 0
    lost, last_up = [], up0
    while time.monotonic() - start < 3 * ttl + 5:
        rounds += 1
        for src in LEAVES:
            for dst in LEAVES:
                if src != dst:
                    r, n = gate.ping(src, gate.owned[dst][0].split("/")[0], count=2)
                    sent, received = sent + n, received + r
                    if r != n:
                        lost.append((round(time.monotonic() - start), src, dst, f"{r}/{n}"))
        if rounds % 4 == 0:
            last_up = {leaf: _uptimes(gate, leaf) for leaf in LEAVES}
            for leaf, peers in last_up.items():
                for peer, (state, uptime) in peers.items():
                    assert state == "Established" and uptime >= up0[leaf][peer][1], \
                        f"{leaf} -> {peer} at {time.monotonic() - start:.0f} s: {state}, up {uptime} ms " \
                        f"(was {up0[leaf][peer][1]} ms): a session reset"
        time.sleep(3)
    elapsed = time.monotonic() - start
    after = _claims(gate)
    last_up = {leaf: _uptimes(gate, leaf) for leaf in LEAVES}
    renewals = {leaf: after[leaf]["generation"] - before[leaf]["generation"] for leaf in LEAVES}
    min_up = min(u for peers in last_up.values() for _s, u in peers.values()) / 1000
    figure(f"lease renewal: ttl {ttl:.0f} s, {elapsed:.0f} s without Ansible ({elapsed / ttl:.1f} leases); "
           f"renewals (generation delta on rr-a) {renewals}; pings {received}/{sent} in {rounds} rounds; "
           f"min leaf->RR BGP uptime {min_up:.0f} s at the end")
    assert not lost, f"pings lost while the agents renewed: {lost}"
    for leaf in LEAVES:
        assert after[leaf].get("active") and not after[leaf].get("revoked"), after[leaf]
        assert renewals[leaf] >= 3, f"{leaf}: generation {before[leaf]['generation']} -> {after[leaf]['generation']}"
        for peer, (state, uptime) in last_up[leaf].items():
            assert state == "Established" and uptime >= up0[leaf][peer][1] + (elapsed - 10) * 1000, \
                f"{leaf} -> {peer}: {state}, up {uptime} ms after {elapsed:.0f} s (was {up0[leaf][peer][1]} ms)"


def test_4b_a_new_rr_key_reaches_the_wireguard_leaf_without_ansible(gate):
    """rr-a's WireGuard key replaced on disk: rr-a serves it and re-keys its interface, leaf-a's agent follows."""
    rr, leaf, iface = "rr-a", "leaf-a", "wg-cloudedge"
    hostdir = f"/run/{gate.prefix}/{rr}"
    key_file = f"{hostdir}/etc/wg.key"
    old = gate.sh(rr, f"wg show {iface} public-key").strip()
    assert old in gate.sh(leaf, f"wg show {iface} peers").split(), "leaf-a has no peer with rr-a's current key"
    made = json.loads(gate.sh(rr, shlex.join([f"{hostdir}/bin/samctl", "wireguard-key", "--file",
                                              key_file + ".new"])))
    new = made["publicKey"]
    assert made["created"] and new != old
    start = time.monotonic()
    gate.sh(rr, f"mv -f {shlex.quote(key_file + '.new')} {shlex.quote(key_file)} && stat -c %a {shlex.quote(key_file)}")
    assert gate.sh(rr, f"stat -c %a {shlex.quote(key_file)}").strip() == "600"
    fetch = (
        "import json, sys; sys.path.insert(0, %r)\n"
        "from boma_mesh_utils.sam.io import enroll_client\n"
        "d = '/run/%s/leaf-a'; s = json.load(open(d + '/state/agent-leaf-a/agent.json'))\n"
        "ex = enroll_client.fetch_topology(['http://10.10.0.2:8443'], s['claimName'], s['signedClaim'],\n"
        "    open(d + '/etc/api-token').read().strip(), open(d + '/etc/join-token').read().strip().encode())\n"
        "print(json.dumps({m['nodeRef']: (m.get('wireGuard') or {}).get('publicKey')\n"
        "    for m in ex.doc['rrSet']['spec']['members']} if ex.ok else {'error': ex.error}))\n"
    ) % (str(ROOT / "tests"), gate.prefix)
    seen = {}

    def done():
        now = time.monotonic() - start
        if "served" not in seen:
            served = json.loads(gate.sh(leaf, shlex.join([str(ROOT / ".venv" / "bin" / "python"), "-c", fetch])))
            if served.get(rr) == new:
                seen["served"] = now
        if "rr-a interface" not in seen and gate.sh(rr, f"wg show {iface} public-key").strip() == new:
            seen["rr-a interface"] = now
        if "leaf-a peer" not in seen:
            peers = gate.sh(leaf, f"wg show {iface} peers").split()
            if new in peers and old not in peers:
                seen["leaf-a peer"] = now
        if "handshake" not in seen and len(seen) == 3:
            shakes = dict(line.split() for line in gate.sh(leaf, f"wg show {iface} latest-handshakes").splitlines())
            if int(shakes.get(new, "0")) > 0:
                seen["handshake"] = now
        if "ping" not in seen and "handshake" in seen:
            pings = [gate.ping(leaf, gate.owned[o][0].split("/")[0]) for o in LEAVES if o != leaf]
            pings += [gate.ping(o, gate.owned[leaf][0].split("/")[0]) for o in LEAVES if o != leaf]
            if all(r == n for r, n in pings):
                seen["ping"] = now
        return len(seen) == 5

    deadline = time.monotonic() + 120
    while not done() and time.monotonic() < deadline:
        time.sleep(1)
    assert done(), f"after {time.monotonic() - start:.0f} s only {seen} (rr-a key {old[:8]}... -> {new[:8]}...)"
    rtt = re.search(r"(\d+) received", gate.sh(leaf, f"ping -n -q -c 3 -i 0.2 -W 2 {gate.tunnel[rr]}", check=False))
    figure("rr-a WireGuard key rotated on disk (no Ansible): " + ", ".join(f"{k} {v:.1f} s" for k, v in seen.items())
           + f"; leaf-a -> rr-a tunnel address {rtt.group(1) if rtt else '?'}/3 (TCG guest)")


# Found here first: the teardown state (a leaf that owns nothing) rendered a route-map matching an undefined
# prefix-list and an empty address-family block, so FRR refused it and leaf-b kept its tunnels and neighbours.
def test_4c_a_revoked_leaf_tears_down_its_own_tunnels_and_bgp(gate):
    """Revoking leaf-b through rr-a's admin API: leaf-b's agent removes its sam-rr-* tunnels and RR neighbours."""
    leaf, rr = "leaf-b", "rr-a"
    hostdir = f"/run/{gate.prefix}/{rr}"
    rr_addresses = {gate.tunnel[r] for r in RRS}
    assert {"sam-rr-a", "sam-rr-b"} <= set(gate.links(leaf))
    start = time.monotonic()
    gate.sh(rr, shlex.join([f"{hostdir}/bin/samctl", "claim", "revoke", leaf, "--rr-socket",
                            f"{hostdir}/state/{rr}.sock", "--admin-token-file", f"{hostdir}/etc/admin-token"]))
    seen = {}

    def gone():
        now = time.monotonic() - start
        if "tunnels" not in seen and not [n for n in gate.links(leaf) if n.startswith("sam-rr-")]:
            seen["tunnels"] = now
        if "bgp" not in seen:
            config = gate.vtysh(leaf, "show running-config")
            if not [a for a in rr_addresses if f"neighbor {a} " in config]:
                seen["bgp"] = now
        # the agent writes its state when the pass ends, after the teardown's frr-reload
        if "state" not in seen and _agent_state(gate, leaf).get("revoked"):
            seen["state"] = now
        return len(seen) == 3

    deadline = time.monotonic() + 120
    while not gone() and time.monotonic() < deadline:
        time.sleep(1)
    assert gone(), f"after {time.monotonic() - start:.0f} s only {seen} on {leaf} (revoked through {rr}'s API)"
    state = _agent_state(gate, leaf)
    assert state.get("revoked") and not state.get("teardownPending") and state.get("applyError") is None, state
    figure(f"revoke {leaf} through {rr}'s API: {leaf}'s agent tore down its own "
           + ", ".join(f"{k} {v:.1f} s" for k, v in seen.items()) + " (refresh interval 5 s, TCG guest)")


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
