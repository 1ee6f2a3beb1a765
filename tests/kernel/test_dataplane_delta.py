# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""apply/dataplane.py's short path on Debian's kernel (qemu guest): a new leaf is one tunnel and its routes.

Namespace ``a`` holds an RR's data plane for 20 leaves (ipip tunnels to addresses nobody answers), applied
whole once.  Then leaf ``b`` (namespace ``b``, configured by the modules) is admitted: the delta creates its
tunnel and routes with no dump of links, addresses or routes, and a ping crosses the new tunnel.  A revoked
leaf's tunnel goes and no other tunnel is recreated; a link with a wanted name that boma.mesh does not own
stops the delta and the whole path alike, untouched.
"""

import pytest
from inprocess import collection_on_path
from inprocess import run_module as run_inprocess
from pyroute2 import IPRoute, netns

from support.netlink_count import count_requests, dumps

collection_on_path()
from ansible_collections.boma.mesh.plugins.module_utils.sam.apply import dataplane, netlink  # noqa: E402

LEAVES = 20


def tunnel(name, remote, address="10.255.0.1/32"):
    spec = {"ifname": name, "mode": "ipip", "local": "10.0.0.1", "remote": remote, "underlayInterface": "va",
            "address": address, "owner": "boma.mesh"}
    return {"kind": "TunnelInterface", "metadata": {"name": name}, "spec": spec}


def route(dest, device, source="10.77.60.1"):
    return {"kind": "IPv4Route", "metadata": {"name": dest},
            "spec": {"destination": dest, "device": device, "source": source, "owner": "boma.mesh"}}


def rr_state(leaves, with_b=False, drop=()):
    resources = [{"kind": "BGPRouter", "metadata": {"name": "bgp"}, "spec": {"exportPrefixes": ["10.77.60.1/32"]}}]
    for i in range(leaves):
        if i not in drop:
            name = "sam-l%02d" % i
            resources += [tunnel(name, "10.9.0.%d" % (i + 1)), route("10.64.0.%d/32" % (i + 1), name)]
    if with_b:
        resources += [tunnel("sam-b", "10.0.0.2"), route("10.255.0.2/32", "sam-b"), route("10.77.60.2/32", "sam-b")]
    return {"node": "rr-a", "resources": resources}


def configure_b():
    """Leaf b's end with the modules (namespace b): its tunnel to a, a's addresses through it, its /32 on lo."""
    spec = {"ifname": "sam-a", "mode": "ipip", "local": "10.0.0.2", "remote": "10.0.0.1", "underlayInterface": "vb",
            "address": "10.255.0.2/32", "owner": "boma.mesh"}
    resources = [{"kind": "TunnelInterface", "metadata": {"name": "sam-a"}, "spec": spec},
                 route("10.255.0.1/32", "sam-a", "10.77.60.2"), route("10.77.60.1/32", "sam-a", "10.77.60.2")]
    for module, args in (("sam_tunnel", {}), ("sam_route", {"loopback_addresses": ["10.77.60.2/32"]})):
        result, _raw = run_inprocess(module, dict(args, resources=resources, netns="b", purge=True))
        assert not result.get("failed"), result.get("msg")


def indexes():
    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME"): link["index"] for link in ipr.get_links()}


@pytest.fixture
def inside_a(netns_pair, monkeypatch):
    seen = {}
    count_requests(monkeypatch, dataplane, seen)
    netns.pushns("a")
    try:
        yield netns_pair, seen
    finally:
        netns.popns()


def test_a_new_leaf_is_one_tunnel_and_its_routes_and_traffic_crosses_it(inside_a):
    pair, seen = inside_a
    memory = dataplane.DataplaneMemory()
    assert dataplane.apply_dataplane(rr_state(LEAVES), memory=memory) == ["tunnels +20 -0", "routes +20 -0"]
    assert seen["get_links"] >= 1 and seen["get_routes"] == 1            # the whole path, once
    before = indexes()

    configure_b()
    seen.clear()
    assert dataplane.apply_dataplane(rr_state(LEAVES, with_b=True), memory=memory) == [
        "tunnels +1 -0", "routes +2 -0"]
    assert not dumps(seen), seen
    assert seen.get("link add") == 1 and seen.get("route replace") == 2, seen
    assert any(pair.ping("a", "10.77.60.2").returncode == 0 for _try in range(3)), "no ping across the new tunnel"

    seen.clear()
    out = dataplane.apply_dataplane(rr_state(LEAVES, with_b=True, drop={5}), memory=memory)
    assert out == ["tunnels +0 -1", "routes +0 -1"] and not dumps(seen), seen
    after = indexes()
    assert "sam-l05" not in after
    assert {n: i for n, i in after.items() if n.startswith("sam-l")} == {
        n: i for n, i in before.items() if n.startswith("sam-l") and n != "sam-l05"}   # none recreated
    assert (memory.full_runs, memory.delta_runs, memory.fallbacks) == (1, 2, 0)


def test_a_foreign_link_with_a_wanted_name_stops_both_paths_untouched(inside_a):
    _pair, _seen = inside_a
    events = []
    memory = dataplane.DataplaneMemory(on_fallback=events.append)
    dataplane.apply_dataplane(rr_state(2), memory=memory)
    with IPRoute() as ipr:
        ipr.link("add", ifname="sam-b", kind="veth", peer={"ifname": "sam-bp"})
    with pytest.raises(netlink.NetlinkConfigError, match="foreign-link"):
        dataplane.apply_dataplane(rr_state(2, with_b=True), memory=memory)
    assert len(events) == 1 and "foreign-link" in events[0]
    with IPRoute() as ipr:
        (link,) = ipr.link("get", ifname="sam-b")
        assert link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == "veth"
