# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An RR's data plane at N leaves (N ipip tunnels, N routes): one more leaf, one revocation and a renewal through
apply/dataplane.py with its memory (the short path), against the whole path at the same N (issue 19).

Prints wall time and the netlink requests of each (dumps named apart); exits 1 when one more leaf dumps
anything or touches more than its tunnel and route, 0 otherwise.  Needs a kernel with ipip (the qemu guest of
`make test-kernel`); elsewhere it says so and exits 0.
Usage: .venv/bin/python bench/dataplane_delta.py [N]     (inside the guest: BOMA_KERNEL_GUEST=1; make bench)
"""

import os
import sys
import time
from pathlib import Path

from pyroute2 import IPRoute, netns

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
NS = "bomadelta"


def modules():
    from inprocess import collection_on_path  # noqa: PLC0415 (path set just above)

    collection_on_path()
    from ansible_collections.boma.mesh.plugins.module_utils.sam.apply import dataplane  # noqa: PLC0415

    from support.netlink_count import Counting  # noqa: PLC0415

    return dataplane, Counting


def state(count, extra=0, drop=()):
    resources = [{"kind": "BGPRouter", "metadata": {"name": "bgp"}, "spec": {"exportPrefixes": ["10.77.60.1/32"]}}]
    for i in range(count + extra):
        if i in drop:
            continue
        name = "sam-b%04d" % i
        resources.append({"kind": "TunnelInterface", "metadata": {"name": name}, "spec": {
            "ifname": name, "mode": "ipip", "local": "10.0.0.1", "remote": "10.1.%d.%d" % (i // 250, i % 250 + 1),
            "address": "10.255.0.1/32"}})
        resources.append({"kind": "IPv4Route", "metadata": {"name": name}, "spec": {
            "destination": "10.64.%d.%d/32" % (i // 250, i % 250 + 1), "device": name, "source": "10.77.60.1"}})
    return {"node": "rr-a", "resources": resources}


def timed(dataplane, seen, st, memory=None, full=False):
    seen.clear()
    start = time.perf_counter()
    out = dataplane.apply_dataplane(st, memory=memory, full=full)
    return time.perf_counter() - start, dict(seen), out


def show(label, seconds, seen, out):
    requests = ", ".join("%s %d" % (k, v) for k, v in sorted(seen.items())) or "none"
    print("%-34s %8.3f s  %-28s requests: %s" % (label, seconds, ", ".join(out), requests))


def main(argv):
    count = int(argv[1]) if len(argv) > 1 else 1000
    if os.environ.get("BOMA_KERNEL_GUEST") != "1":
        print("bench/dataplane_delta.py: needs the kernel-lane guest (ipip); skipped")
        return 0
    dataplane, counting = modules()
    seen = {}
    real_open = dataplane.netlink.open_ipr
    dataplane.netlink.open_ipr = lambda *a, **k: counting(real_open(*a, **k), seen)
    if NS in netns.listnetns():
        netns.remove(NS)
    netns.create(NS)
    netns.pushns(NS)
    code = 0
    try:
        with IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        memory = dataplane.DataplaneMemory()
        print("== data plane at %d leaves (ipip tunnels + routes, one namespace, guest kernel) ==" % count)
        show("first apply (whole path)", *timed(dataplane, seen, state(count), memory))
        show("whole path again, nothing to do", *timed(dataplane, seen, state(count), memory, full=True))
        show("renewal (same state)", *timed(dataplane, seen, state(count), memory))
        seconds, one, out = timed(dataplane, seen, state(count, extra=1), memory)
        show("one more leaf (short path)", seconds, one, out)
        show("one revocation (short path)", *timed(dataplane, seen, state(count, extra=1, drop={7}), memory))
        whole, seen_whole, out_whole = timed(dataplane, seen, state(count, extra=2, drop={7}), None)
        show("one more leaf, whole path", whole, seen_whole, out_whole)
        print("one more leaf: short path %.1fx faster than the whole path" % (whole / seconds))
        dumped = {k: v for k, v in one.items() if k in ("get_links", "get_addr", "get_routes")}
        if dumped or one.get("link add") != 1 or one.get("route replace") != 1:
            print("bench/dataplane_delta.py: FAILED: one more leaf made %s" % one)
            code = 1
    finally:
        netns.popns()
        netns.remove(NS)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
