# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create N managed ipip tunnels in a namespace, then re-check them with nothing to do (goal: re-check <= 2x
a bare pyroute2 dump of the same links).

Needs a kernel with ipip (the qemu guest of `make test-kernel`); elsewhere it says so and exits 0.
Usage: .venv/bin/python bench/tunnels.py [N]     (inside the guest: BOMA_KERNEL_GUEST=1)
"""

import os
import sys
import time
from pathlib import Path

from pyroute2 import IPRoute, netns

ROOT = Path(__file__).resolve().parents[1]
NS = "bomabench"


def _netlink():
    sys.path.insert(0, str(ROOT / "tests"))
    from inprocess import collection_on_path  # noqa: PLC0415 (path set just above)

    collection_on_path()
    from ansible_collections.boma.mesh.plugins.module_utils.sam.apply import netlink  # noqa: PLC0415 (path set just above)

    return netlink


def desired(netlink, count):
    errors, out = [], []
    for num in range(count):
        spec = {"ifname": "sam-b%04d" % num, "mode": "ipip", "local": "10.0.0.1",
                "remote": "10.1.%d.%d" % (num // 250, num % 250 + 1), "address": "10.255.0.1/32"}
        out.append(netlink.tunnel_from_spec(spec, "bench[%d]" % num, errors))
    assert not errors, errors
    return out


def main(argv):
    count = int(argv[1]) if len(argv) > 1 else 1000
    if os.environ.get("BOMA_KERNEL_GUEST") != "1":
        print("bench/tunnels.py: needs the kernel-lane guest (ipip); skipped")
        return 0
    netlink = _netlink()
    if NS in netns.listnetns():
        netns.remove(NS)
    netns.create(NS)
    ipr = IPRoute(netns=NS, flags=0)
    try:
        want = desired(netlink, count)
        start = time.perf_counter()
        actions = netlink.plan_tunnels(ipr, want, netns=NS)
        netlink.apply_actions(ipr, actions, NS)
        create = time.perf_counter() - start
        assert len(actions) == count, len(actions)
        recheck = dump = float("inf")
        for _round in range(3):
            start = time.perf_counter()
            left = netlink.plan_tunnels(ipr, want, netns=NS)
            recheck = min(recheck, time.perf_counter() - start)
            assert left == [], left[:3]
            start = time.perf_counter()
            links = list(ipr.get_links())
            dump = min(dump, time.perf_counter() - start)
            assert len(links) >= count
        print("create %d managed ipip tunnels: %.2f s (%.1f ms each)" % (count, create, create * 1000 / count))
        print("re-check, nothing to do:       %.3f s" % recheck)
        print("bare pyroute2 dump of links:    %.3f s" % dump)
        verdict = "OK" if recheck <= 2 * dump else "OVER"
        print("ratio re-check / dump:          %.2fx (goal <= 2x) %s" % (recheck / dump, verdict))
    finally:
        ipr.close()
        netns.remove(NS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
