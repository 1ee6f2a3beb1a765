# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sam_tunnel, sam_route and sam_wireguard on Debian's kernel (qemu guest): ipip, gre, fou and ipip over WireGuard.

Each test configures both ends of namespaces ``a``/``b`` (conftest ``netns_pair``) with the modules run
in-process, puts the owned /32s on lo (10.77.60.1 / 10.77.60.2), routes each to the other through the tunnel,
pings between them, re-applies (changed=false), proves a foreign tunnel and route survive purge, and removes
everything with state=absent.
"""

import json
import subprocess

import pytest
from inprocess import collection_on_path
from inprocess import run_module as run_inprocess

LO = {"a": "10.77.60.1", "b": "10.77.60.2"}
TUN_ADDR = {"a": "10.255.0.1", "b": "10.255.0.2"}
OTHER = {"a": "b", "b": "a"}


collection_on_path()


def run_module(name, args, check=False):
    """The module's result; it must not have failed."""
    result, _raw = run_inprocess(name, args, check=check)
    assert not result.get("failed"), result.get("msg")
    return result


def tunnel(side, mode, local, remote, underlay, **extra):
    spec = {"ifname": "sam-" + OTHER[side], "mode": mode, "local": local, "remote": remote,
            "underlayInterface": underlay, "address": TUN_ADDR[side] + "/32",
            "peerAddress": TUN_ADDR[OTHER[side]] + "/32", "owner": "boma.mesh"}
    spec.update(extra)
    return {"kind": "TunnelInterface", "metadata": {"name": spec["ifname"]}, "spec": spec}


def route(side, dest):
    return {"kind": "IPv4Route", "metadata": {"name": dest},
            "spec": {"destination": dest + "/32", "device": "sam-" + OTHER[side], "source": LO[side],
                     "owner": "boma.mesh"}}


def desired(side, mode, local, remote, underlay, **extra):
    other = OTHER[side]
    return [tunnel(side, mode, local, remote, underlay, **extra), route(side, TUN_ADDR[other]),
            route(side, LO[other])]


def apply(side, resources, state="present"):
    """sam_tunnel then sam_route (purge) in namespace ``side``; returns (tunnel result, route result)."""
    tun = run_module("sam_tunnel", {"resources": resources, "state": state, "purge": True, "netns": side})
    rte = run_module("sam_route", {"resources": resources, "loopback_addresses": [LO[side] + "/32"],
                                   "state": state, "purge": True, "netns": side})
    return tun, rte


def ping():
    return subprocess.run(["ip", "netns", "exec", "a", "ping", "-c1", "-W2", "-I", LO["a"], LO["b"]],
                          capture_output=True, text=True, check=False)


def add_foreign(pair):
    """A foreign ipip tunnel and a static route through it in ``a``: purge must leave both alone."""
    ipr = pair.ns["a"]
    ipr.link("add", ifname="foreign0", kind="ipip", ipip_local="10.0.0.1", ipip_remote="10.0.0.99")
    (index,) = ipr.link_lookup(ifname="foreign0")
    ipr.link("set", index=index, state="up")
    ipr.route("add", dst="10.123.0.0", dst_len=24, oif=index, proto=4)


def assert_foreign_intact(pair):
    ipr = pair.ns["a"]
    assert ipr.link_lookup(ifname="foreign0"), "purge removed the foreign tunnel"
    dsts = {(r.get_attr("RTA_DST"), r["dst_len"]) for r in ipr.get_routes(family=2, table=254)}
    assert ("10.123.0.0", 24) in dsts, "purge removed the foreign route"


def udp_in(name):
    text = subprocess.run(["ip", "netns", "exec", name, "cat", "/proc/net/snmp"], capture_output=True, text=True,
                          check=True).stdout
    head, values = [line.split() for line in text.splitlines() if line.startswith("Udp:")][:2]
    return int(values[head.index("InDatagrams")])


def lifecycle(pair, per_side):
    """Configure both sides, ping, re-apply unchanged, purge keeps foreign, absent removes; returns results."""
    add_foreign(pair)
    for side in ("a", "b"):
        tun, rte = apply(side, per_side[side])
        assert tun["changed"] and rte["changed"]
    result = ping()
    assert result.returncode == 0, result.stdout + result.stderr
    for side in ("a", "b"):
        tun, rte = apply(side, per_side[side])
        assert (tun["changed"], rte["changed"]) == (False, False), (tun["actions"], rte["actions"])
    assert_foreign_intact(pair)
    return result


def remove(pair, per_side):
    for side in ("a", "b"):
        rte = run_module("sam_route", {"resources": per_side[side], "loopback_addresses": [LO[side] + "/32"],
                                       "state": "absent", "netns": side})
        tun = run_module("sam_tunnel", {"resources": per_side[side], "state": "absent", "netns": side})
        assert rte["changed"] and tun["changed"]
        assert not pair.ns[side].link_lookup(ifname="sam-" + OTHER[side])
    assert_foreign_intact(pair)
    assert ping().returncode != 0


@pytest.mark.parametrize("mode", ["ipip", "gre"])
def test_plain_tunnel(netns_pair, mode):
    per_side = {s: desired(s, mode, netns_pair.addr[s], netns_pair.addr[OTHER[s]], netns_pair.ifname[s])
                for s in ("a", "b")}
    lifecycle(netns_pair, per_side)
    (link,) = netns_pair.ns["a"].link("get", ifname="sam-b")
    assert link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == mode
    assert link.get_attr("IFLA_IFALIAS") == "boma.mesh"
    per_side["a"][0]["spec"]["mtu"] = 1400
    tun, _rte = apply("a", per_side["a"])
    assert tun["changed"] and [a["action"] for a in tun["actions"]] == ["update"]
    (link,) = netns_pair.ns["a"].link("get", ifname="sam-b")
    assert link.get_attr("IFLA_MTU") == 1400
    assert apply("a", per_side["a"])[0]["changed"] is False
    remove(netns_pair, per_side)


def test_fou_tunnel_travels_as_udp(netns_pair):
    per_side = {s: desired(s, "fou", netns_pair.addr[s], netns_pair.addr[OTHER[s]], netns_pair.ifname[s],
                           encapSport=5555, encapDport=5555) for s in ("a", "b")}
    add_foreign(netns_pair)
    for side in ("a", "b"):
        tun, rte = apply(side, per_side[side])
        assert ("create", "fou-port", "5555") in {(a["action"], a["kind"], a["name"]) for a in tun["actions"]}
    before = udp_in("b")
    result = ping()
    assert result.returncode == 0, result.stdout + result.stderr
    assert udp_in("b") > before, "the ping did not arrive as UDP in b"
    (link,) = netns_pair.ns["a"].link("get", ifname="sam-b")
    data = link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    assert (data.get_attr("IFLA_IPIP_ENCAP_TYPE"), data.get_attr("IFLA_IPIP_ENCAP_SPORT"),
            data.get_attr("IFLA_IPIP_ENCAP_DPORT")) == (1, 5555, 5555)
    for side in ("a", "b"):
        tun, rte = apply(side, per_side[side])
        assert (tun["changed"], rte["changed"]) == (False, False), (tun["actions"], rte["actions"])
    assert_foreign_intact(netns_pair)
    # check mode of a port change plans a recreate and changes nothing
    moved = desired("a", "fou", "10.0.0.1", "10.0.0.2", "va", encapSport=5556, encapDport=5555)
    plan = run_module("sam_tunnel", {"resources": moved, "netns": "a"}, check=True)
    assert [(a["action"], a["kind"]) for a in plan["actions"]] == [("recreate", "tunnel")]
    assert ping().returncode == 0
    remove(netns_pair, per_side)


def test_ipip_over_wireguard(netns_pair, tmp_path):
    wg_addr = {"a": "172.16.0.1", "b": "172.16.0.2"}
    public = {}
    for side in ("a", "b"):
        res = run_module("sam_wireguard", {"interface": "wg-sam", "private_key_path": str(tmp_path / side),
                                           "listen_port": 51820, "address": wg_addr[side] + "/24", "netns": side})
        assert res["changed"] and res["public_key"]
        public[side] = res["public_key"]
        assert (tmp_path / side).stat().st_mode & 0o777 == 0o600
    args = {}
    for side in ("a", "b"):
        other = OTHER[side]
        peer = {"kind": "WireGuardPeer", "metadata": {"name": other},
                "spec": {"interface": "wg-sam", "publicKey": public[other],
                         "endpoint": "%s:51820" % netns_pair.addr[other], "allowedIPs": [wg_addr[other] + "/32"],
                         "persistentKeepalive": 0}}
        args[side] = {"private_key_path": str(tmp_path / side), "listen_port": 51820,
                      "address": wg_addr[side] + "/24", "resources": [peer], "purge": True, "netns": side}
        res = run_module("sam_wireguard", args[side])
        assert res["changed"] and res["public_key"] == public[side] and res["interface"] == "wg-sam"
        assert (tmp_path / side).read_text().strip() not in json.dumps(res)
    for side in ("a", "b"):
        assert run_module("sam_wireguard", args[side])["changed"] is False
    per_side = {s: desired(s, "ipip", wg_addr[s], wg_addr[OTHER[s]], "wg-sam") for s in ("a", "b")}
    lifecycle(netns_pair, per_side)
    remove(netns_pair, per_side)
    for side in ("a", "b"):
        assert run_module("sam_wireguard", dict(args[side], state="absent"))["changed"] is True
        assert not netns_pair.ns[side].link_lookup(ifname="wg-sam")
