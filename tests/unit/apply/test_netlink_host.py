# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sam_route, sam_tunnel and sam_wireguard on this machine's kernel, inside a throw-away network namespace.

The modules run in-process (patch_module_args + SystemExit), one namespace for the whole file.  This kernel
has veth, routes and addresses but no ipip/gre/fou/wireguard: the tunnel and WireGuard tests here are the
input-validation errors that must stop before any change (the kernel lane proves the rest).
"""

import importlib
import os
import stat
import time

import pytest
from inprocess import collection_on_path, run_module

pyroute2 = pytest.importorskip("pyroute2")

ROUTE_PROTO = 77

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


_COLLECTION_BASE = collection_on_path()


@pytest.fixture(scope="module")
def ns():
    """Namespace with lo up and v0 (10.0.0.1/24) <-> v1 (10.0.0.2/24), both ends inside; yields (name, ipr)."""
    name = "bomaut%d" % os.getpid()
    pyroute2.netns.create(name)
    ipr = pyroute2.IPRoute(netns=name, flags=0)
    try:
        ipr.link("add", ifname="v0", kind="veth", peer={"ifname": "v1"})
        for ifname, addr in (("v0", "10.0.0.1"), ("v1", "10.0.0.2"), ("lo", None)):
            (index,) = ipr.link_lookup(ifname=ifname)
            if addr:
                ipr.addr("add", index=index, address=addr, prefixlen=24)
            ipr.link("set", index=index, state="up")
        # The kernel adds the veths' IPv6 link-local addresses a moment after link-up; wait for them, so a
        # snapshot taken now is not changed later by the kernel (which would look like check mode changing it).
        deadline = time.monotonic() + 10
        while len([a for a in ipr.get_addr(family=10) if a["scope"] == 253]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        yield name, ipr
    finally:
        ipr.close()
        pyroute2.netns.remove(name)


def routes(ipr):
    """{dst/len: (device, prefsrc, proto)} of the IPv4 main table."""
    names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
    out = {}
    for msg in ipr.get_routes(family=2, table=254):
        dst = "%s/%d" % (msg.get_attr("RTA_DST") or "0.0.0.0", msg["dst_len"])
        out[dst] = (names.get(msg.get_attr("RTA_OIF")), msg.get_attr("RTA_PREFSRC"), msg["proto"])
    return out


def lo_addresses(ipr):
    (index,) = ipr.link_lookup(ifname="lo")
    return {"%s/%d" % (a.get_attr("IFA_LOCAL"), a["prefixlen"]): a.get_attr("IFA_LABEL")
            for a in ipr.get_addr(family=2, index=index)}


def snapshot(ipr):
    links = sorted((link.get_attr("IFLA_IFNAME"), link.get_attr("IFLA_IFALIAS")) for link in ipr.get_links())
    addrs = sorted("%s/%d@%d" % (a.get_attr("IFA_LOCAL"), a["prefixlen"], a["index"]) for a in ipr.get_addr())
    return links, addrs, sorted(routes(ipr).items())


def route_res(dest, device, source):
    return {"apiVersion": "materialized.boma.mesh/v1alpha1", "kind": "IPv4Route", "metadata": {"name": device},
            "spec": {"destination": dest, "device": device, "source": source, "owner": "boma.mesh"}}


ROUTER = {"kind": "BGPRouter", "metadata": {"name": "r"}, "spec": {"exportPrefixes": ["10.77.60.1/32"]}}
DESIRED = [ROUTER, route_res("10.99.0.2/32", "v0", "10.77.60.1"), route_res("10.99.0.3/32", "v0", "10.77.60.1")]


# ------------------------------------------------------------------ sam_route


def test_route_lifecycle(ns):
    name, ipr = ns
    args = {"resources": DESIRED, "loopback_addresses": ["10.77.60.1/32"], "netns": name}

    before = snapshot(ipr)
    result, _raw = run_module("sam_route", args, check=True)
    assert result["changed"] is True and not result.get("failed")
    assert [a["kind"] for a in result["actions"]] == ["address", "route", "route"]
    assert snapshot(ipr) == before, "check mode changed the host"

    result, _raw = run_module("sam_route", args, diff=True)
    assert result["changed"] is True, result
    assert result["routes"] == ["10.99.0.2/32", "10.99.0.3/32"]
    assert result["diff"]["before"] == {}
    expected = {"destination": "10.99.0.2/32", "device": "v0", "source": "10.77.60.1"}
    assert result["diff"]["after"]["route 10.99.0.2/32"] == expected
    have = routes(ipr)
    assert have["10.99.0.2/32"] == ("v0", "10.77.60.1", ROUTE_PROTO)
    assert have["10.99.0.3/32"] == ("v0", "10.77.60.1", ROUTE_PROTO)
    assert lo_addresses(ipr)["10.77.60.1/32"] == "lo:sam"

    result, _raw = run_module("sam_route", args)
    assert result["changed"] is False and result["actions"] == []
    result, _raw = run_module("sam_route", args, check=True)
    assert result["changed"] is False

    # a changed source is an in-place update, reported with before/after
    moved = dict(args, resources=[ROUTER, route_res("10.99.0.2/32", "v0", "10.0.0.1"), DESIRED[2]])
    result, _raw = run_module("sam_route", moved, diff=True)
    assert result["changed"] is True
    assert [(a["action"], a["name"]) for a in result["actions"]] == [("update", "10.99.0.2/32")]
    assert result["diff"]["before"]["route 10.99.0.2/32"]["source"] == "10.77.60.1"
    assert routes(ipr)["10.99.0.2/32"] == ("v0", "10.0.0.1", ROUTE_PROTO)
    run_module("sam_route", args)

    result, _raw = run_module("sam_route", dict(args, state="absent"))
    assert result.get("changed") is True, result
    have = routes(ipr)
    assert "10.99.0.2/32" not in have and "10.99.0.3/32" not in have
    assert "10.77.60.1/32" not in lo_addresses(ipr)
    result, _raw = run_module("sam_route", dict(args, state="absent"))
    assert result["changed"] is False


def test_route_purge_keeps_foreign(ns):
    name, ipr = ns
    (v0,) = ipr.link_lookup(ifname="v0")
    (lo,) = ipr.link_lookup(ifname="lo")
    ipr.route("add", dst="10.88.0.0", dst_len=24, oif=v0, proto=4)  # static, not ours
    ipr.addr("add", index=lo, address="10.66.0.1", prefixlen=32)  # no sam label
    try:
        args = {"resources": DESIRED, "loopback_addresses": ["10.77.60.1/32"], "netns": name}
        assert run_module("sam_route", args)[0]["changed"] is True
        result, _raw = run_module("sam_route", {"resources": [DESIRED[1]], "purge": True, "netns": name,
                                                "loopback_addresses": ["10.77.60.1/32"]})
        assert result["changed"] is True
        assert [(a["action"], a["name"]) for a in result["actions"]] == [("delete", "10.99.0.3/32")]
        have = routes(ipr)
        assert have["10.88.0.0/24"][2] == 4, "foreign route removed by purge"
        assert "10.99.0.2/32" in have and "10.99.0.3/32" not in have
        result, _raw = run_module("sam_route", {"resources": [], "purge": True, "netns": name})
        actions = [(a["action"], a["name"]) for a in result["actions"]]
        assert actions == [("delete", "10.99.0.2/32"), ("delete", "lo 10.77.60.1/32")]
        have = routes(ipr)
        assert have["10.88.0.0/24"][2] == 4, "foreign route removed by purge"
        assert "10.99.0.2/32" not in have
        assert "10.66.0.1/32" in lo_addresses(ipr), "foreign loopback address removed by purge"
        assert "10.77.60.1/32" not in lo_addresses(ipr)
        assert run_module("sam_route", {"resources": [], "purge": True, "netns": name})[0]["changed"] is False
    finally:
        ipr.route("del", dst="10.88.0.0", dst_len=24, oif=v0)
        ipr.addr("del", index=lo, address="10.66.0.1", prefixlen=32)


def test_route_errors_change_nothing(ns):
    name, ipr = ns
    before = snapshot(ipr)
    result, raw = run_module("sam_route", {"resources": [route_res("10.99.0.9/32", "nosuchdev", "10.0.0.1")],
                                           "loopback_addresses": ["10.77.60.9/32"], "netns": name})
    assert result["failed"] is True
    assert "route 10.99.0.9/32.device [device-missing]" in result["msg"]
    assert "Traceback" not in raw
    result, _raw = run_module("sam_route", {"resources": [route_res("10.99.0.9/33", "v0", "x")],
                                            "loopback_addresses": ["10.77.60.0/24"], "netns": name})
    assert result["failed"] is True
    assert "resources[0].spec.destination [ipv4-prefix]" in result["msg"]
    assert "resources[0].spec.source [ipv4-address]" in result["msg"]
    assert "loopback_addresses[0] [host-prefix]" in result["msg"]
    result, _raw = run_module("sam_route", {"destination": "10.99.0.9/32", "device": "v0",
                                            "netns": "boma-no-such-ns"})
    assert result["failed"] is True and "netns [netns-missing]" in result["msg"]
    assert not os.path.exists("/var/run/netns/boma-no-such-ns")
    assert snapshot(ipr) == before


# ------------------------------------------------------------------ sam_tunnel: validation before any change


def tunnel_res(ifname, mode, **extra):
    spec = {"ifname": ifname, "mode": mode, "local": "10.0.0.1", "remote": "10.0.0.2", "underlayInterface": "v0",
            "address": "10.255.0.1/32", "peerAddress": "10.255.0.2/32", "owner": "boma.mesh"}
    spec.update(extra)
    return {"kind": "TunnelInterface", "metadata": {"name": ifname}, "spec": spec}


@pytest.mark.parametrize(("resource", "expected"), [
    (tunnel_res("sam-fou", "fou"), "resources[0].spec.encapSport/encapDport [fou-ports]"),
    (tunnel_res("sam-fou", "fou", encapSport=5555), "resources[0].spec.encapSport/encapDport [fou-ports]"),
    (tunnel_res("sam-ipip", "ipip", encapSport=5555, encapDport=5555),
     "resources[0].spec.encapSport/encapDport [encap-ports-only-fou]"),
    (tunnel_res("sam-gre", "gre", encapDport=5555), "[encap-ports-only-fou]"),
    (tunnel_res("sam-ipip", "ipip", underlayInterface="nosuchdev"),
     "tunnel sam-ipip.underlayInterface [underlay-missing]"),
    (tunnel_res("sam-much-too-long", "ipip"), "resources[0].spec.ifname [ifname]"),
    (tunnel_res("sam-x", "vxlan"), "resources[0].spec.mode [tunnel-mode]"),
    (tunnel_res("sam-x", "fou", encapSport=0, encapDport=70000), "resources[0].spec.encapSport [port]"),
    (tunnel_res("sam-mtu", "ipip", mtu=20), "resources[0].spec.mtu [mtu]"),
])
def test_tunnel_validation(ns, resource, expected):
    name, ipr = ns
    before = snapshot(ipr)
    result, raw = run_module("sam_tunnel", {"resources": [resource], "netns": name})
    assert result["failed"] is True, result
    assert expected in result["msg"]
    assert "nothing changed" in result["msg"] and "Traceback" not in raw
    assert snapshot(ipr) == before


def test_tunnel_single_object_options(ns):
    name, ipr = ns
    before = snapshot(ipr)
    result, _raw = run_module("sam_tunnel", {"ifname": "sam-fou", "mode": "fou", "local": "10.0.0.1",
                                             "remote": "10.0.0.2", "encap_sport": 5555, "netns": name})
    assert result["failed"] is True
    assert "encap_sport/encap_dport [fou-ports]" in result["msg"]
    result, _raw = run_module("sam_tunnel", {"ifname": "sam-0123456789abc", "local": "10.0.0.1",
                                             "remote": "10.0.0.2", "netns": name})
    assert "ifname [ifname]" in result["msg"]
    two = [tunnel_res("sam-a", "ipip"), tunnel_res("sam-b", "fou", encapSport=1, encapDport=1)]
    result, _raw = run_module("sam_tunnel", {"resources": two, "netns": name})
    assert "[tunnel-endpoint-collision]" in result["msg"]
    # a foreign link of the wanted name is never taken over
    result, _raw = run_module("sam_tunnel", {"resources": [tunnel_res("v1", "ipip")], "netns": name})
    assert result["failed"] is True and "tunnel v1 [foreign-link]" in result["msg"]
    assert snapshot(ipr) == before


def test_tunnel_materialized_resources_validate():
    """The example inventory's fou tunnels pass validation (only the kernel is left to refuse them)."""
    netlink = importlib.import_module("ansible_collections.boma.mesh.plugins.module_utils.sam.apply.netlink")
    errors, tunnels = [], []
    for path, spec in netlink.resources_of_kind([
        tunnel_res("sam-rr-a", "fou", encapSport=5555, encapDport=5555, remote="10.10.0.2"),
        tunnel_res("sam-rr-b", "fou", encapSport=5555, encapDport=5555, remote="10.10.0.3"),
        route_res("10.99.0.2/32", "sam-rr-a", "10.255.0.32"),
    ], "TunnelInterface"):
        tunnels.append(netlink.tunnel_from_spec(spec, path, errors))
    netlink.check_tunnel_set(tunnels, ["a", "b"], errors)
    assert errors == []
    assert [t["encap_dport"] for t in tunnels] == [5555, 5555]


# ------------------------------------------------------------------ sam_wireguard


GOOD_KEY = "Mk4Q9rZ1kQeR2w1c3mJbq0pQ7bZk3m9L2j4xv5Y8tHc="


@pytest.mark.parametrize("key", ["not-base64!", "QUJD", GOOD_KEY[:-2] + "==", "", None])
def test_wireguard_bad_public_key(ns, tmp_path, key):
    name, ipr = ns
    before = snapshot(ipr)
    key_path = tmp_path / "wg.key"
    peer = {"kind": "WireGuardPeer", "metadata": {"name": "rr-a"},
            "spec": {"interface": "wg-sam", "publicKey": key, "endpoint": "10.0.0.2:51820",
                     "allowedIPs": ["172.16.0.0/24"], "persistentKeepalive": 25}}
    result, raw = run_module("sam_wireguard", {"private_key_path": str(key_path), "resources": [peer],
                                               "netns": name})
    assert result["failed"] is True
    assert "resources[0].spec.publicKey [wireguard-key]" in result["msg"]
    assert "Traceback" not in raw
    assert not key_path.exists(), "the key file was written although the input was invalid"
    assert snapshot(ipr) == before


def test_wireguard_private_key_file(ns, tmp_path):
    name, _ipr = ns
    key_path = tmp_path / "wg.key"
    args = {"interface": "wg-sam", "private_key_path": str(key_path), "listen_port": 51820,
            "address": "172.16.0.1/24", "netns": name,
            "peers": [{"publicKey": GOOD_KEY, "endpoint": "10.0.0.2:51820", "allowedIPs": ["172.16.0.0/24"]}]}
    result, raw = run_module("sam_wireguard", args, check=True, diff=True)
    assert not result.get("failed"), result
    assert result["changed"] is True and result["public_key"] is None
    assert not key_path.exists(), "check mode wrote the key file"

    # without the wireguard module the kernel refuses the link; the key file is made before that either way
    result, raw = run_module("sam_wireguard", args, diff=True)
    assert key_path.exists()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    private = key_path.read_text(encoding="ascii").strip()
    assert len(private) == 44
    assert private not in raw, "private key material in the module output"
    if not result.get("failed"):
        netlink = importlib.import_module("ansible_collections.boma.mesh.plugins.module_utils.sam.apply.netlink")
        assert result["public_key"] == netlink.public_key_of(private)
        run_module("sam_wireguard", dict(args, state="absent"))

    # an existing key is kept, and a too-open mode is tightened
    key_path.chmod(0o644)
    result, raw = run_module("sam_wireguard", args, check=True)
    assert private not in raw
    assert result["actions"][0]["kind"] == "private-key" and result["actions"][0]["action"] == "update"
    assert result["public_key"] and result["public_key"] != private
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o644, "check mode changed the mode"
    run_module("sam_wireguard", args)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_text(encoding="ascii").strip() == private
