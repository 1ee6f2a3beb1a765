# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""apply/dataplane.py with a DataplaneMemory (issue 19): a change touches only what changed, on this machine's
kernel inside a throw-away namespace (routes and loopback addresses; tunnels are the kernel lane's).

Every netlink request of the path is counted: after the first (whole) apply, one more route is one route
request and no dump; nothing changed is no netlink socket at all; a delta the kernel refuses falls back to
the whole path, which converges.
"""

import os

import pytest

pyroute2 = pytest.importorskip("pyroute2")

from boma_mesh_utils.sam.apply import dataplane, netlink  # noqa: E402
from support.netlink_count import count_requests, dumps  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
ROUTE_PROTO = 77


@pytest.fixture()
def host(monkeypatch):
    """Inside a namespace with v0 (10.0.0.1/24) up; yields the request counter ({} per apply)."""
    name = "bomadp%d" % os.getpid()
    pyroute2.netns.create(name)
    seen = {}
    count_requests(monkeypatch, dataplane, seen)
    pyroute2.netns.pushns(name)
    try:
        with pyroute2.IPRoute() as ipr:
            ipr.link("add", ifname="v0", kind="veth", peer={"ifname": "v1"})
            for ifname in ("v0", "v1", "lo"):
                (index,) = ipr.link_lookup(ifname=ifname)
                ipr.link("set", index=index, state="up")
            ipr.addr("add", index=ipr.link_lookup(ifname="v0")[0], address="10.0.0.1", prefixlen=24)
        yield seen
    finally:
        pyroute2.netns.popns()
        pyroute2.netns.remove(name)


def state(count, drop=(), loopbacks=("10.77.60.1/32",)):
    routes = [{"kind": "IPv4Route", "metadata": {"name": "r%d" % i},
               "spec": {"destination": "10.99.0.%d/32" % i, "device": "v0", "source": "10.77.60.1"}}
              for i in range(1, count + 1) if i not in drop]
    router = {"kind": "BGPRouter", "metadata": {"name": "bgp"}, "spec": {"exportPrefixes": list(loopbacks)}}
    return {"node": "rr-a", "resources": [router, *routes]}


def kernel_routes():
    with pyroute2.IPRoute() as ipr:
        return {"%s/%d" % (m.get_attr("RTA_DST"), m["dst_len"]) for m in ipr.get_routes(family=2, table=254)
                if m["proto"] == ROUTE_PROTO}


def lo_addresses():
    with pyroute2.IPRoute() as ipr:
        return {a.get_attr("IFA_LOCAL") for a in ipr.get_addr(family=2, index=ipr.link_lookup(ifname="lo")[0])}


def apply(seen, memory, st, **kwargs):
    seen.clear()
    return dataplane.apply_dataplane(st, memory=memory, **kwargs)


def test_a_change_touches_only_what_changed_and_a_refused_delta_takes_the_whole_path(host):
    events = []
    memory = dataplane.DataplaneMemory(on_fallback=events.append)
    assert apply(host, memory, state(50)) == ["tunnels +0 -0", "routes +50 -0"]
    assert (memory.full_runs, memory.delta_runs) == (1, 0) and len(kernel_routes()) == 50
    assert host["get_routes"] == 1 and host["get_links"] >= 1        # the whole path dumps

    # Nothing changed (a renewal): no netlink request at all.
    assert apply(host, memory, state(50)) == ["tunnels +0 -0", "routes +0 -0"] and host == {}

    # One more leaf's route: one link read by name (its device), one route request, no dump.
    assert apply(host, memory, state(51)) == ["tunnels +0 -0", "routes +1 -0"]
    assert "10.99.0.51/32" in kernel_routes() and memory.delta_runs == 2
    assert not dumps(host), host
    assert host == {"link get": 1, "route replace": 1}, host

    # A revocation: one delete.  A new owned /32: lo's addresses (filtered by the kernel) and one address.
    assert apply(host, memory, state(51, drop={3})) == ["tunnels +0 -0", "routes +0 -1"]
    assert "10.99.0.3/32" not in kernel_routes() and host == {"route del": 1}, host
    apply(host, memory, state(51, drop={3}, loopbacks=("10.77.60.1/32", "10.77.60.2/32")))
    assert "10.77.60.2" in lo_addresses() and host == {"link get": 1, "get_addr index": 1, "addr add": 1}, host
    assert not events

    # Someone deleted a route by hand that the next delta deletes too: the kernel refuses (no such route),
    # the whole path runs at once and converges; the caller is told why.
    with pyroute2.IPRoute() as ipr:
        ipr.route("del", dst="10.99.0.7", dst_len=32, table=254, proto=ROUTE_PROTO, scope=255)
    out = apply(host, memory, state(51, drop={3, 7}))
    assert len(events) == 1 and "data-plane delta failed" in events[0] and "whole path" in events[0]
    assert out == ["tunnels +0 -0", "routes +0 -0"] and memory.full_runs == 2 and memory.fallbacks == 1
    assert kernel_routes() == {"10.99.0.%d/32" % i for i in range(1, 52) if i not in (3, 7)}

    # The repair pass (full=True) takes the whole path even when nothing changed; a route removed by hand
    # since is put back.
    with pyroute2.IPRoute() as ipr:
        ipr.route("del", dst="10.99.0.9", dst_len=32, table=254, proto=ROUTE_PROTO, scope=255)
    assert apply(host, memory, state(51, drop={3, 7})) == ["tunnels +0 -0", "routes +0 -0"]   # not seen
    assert apply(host, memory, state(51, drop={3, 7}), full=True) == ["tunnels +0 -0", "routes +1 -0"]
    assert "10.99.0.9/32" in kernel_routes() and memory.full_runs == 3


def test_an_invalid_state_changes_nothing_and_keeps_the_memory(host):
    memory = dataplane.DataplaneMemory()
    apply(host, memory, state(3))
    last = memory.last
    bad = state(4)
    bad["resources"][-1]["spec"]["device"] = "no such/if"
    with pytest.raises(netlink.NetlinkConfigError, match="device"):
        apply(host, memory, bad)
    assert host == {} and memory.last is last and len(kernel_routes()) == 3
