# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What FRR's bgpd pays for the RR's admission policy at N leaves, per policy shape (docs/scale.md, issue 19).

One bgpd per shape, in its own namespace (tests/netns/harness.py Topology), started with N leaves' configuration
and no session, then one change at a time through one vtysh session; bgpd's CPU seconds from /proc:

- ``route-map``: what render_frr wrote before issue 19: one peer-group, one ``route-map SAM-IN-<group>`` entry
  per leaf (``match peer`` + the leaf's prefix-list);
- ``peer-group``: what it writes now: one peer-group per leaf (its /32 listen range) with ``neighbor <group>
  prefix-list <leaf's> in`` and no per-leaf route-map; RR-to-RR routes through one route-map on a union list.

Prints, per shape: bgpd ready after start-up (seconds, CPU), one unrelated prefix-list entry, one more leaf
(vtysh wall time, bgpd CPU), one leaf removed.  Exit 0 when every step converged, 1 otherwise, 2 when the
machine cannot run it.  Usage (root): .venv/bin/python bench/frr_policy_cost.py [--leaves N] [--shape S ...]
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from netns.harness import Topology, cleanup_stale  # noqa: E402

PREFIX = "boma_policy"
HZ = os.sysconf("SC_CLK_TCK")
SETTLE = 3.0   # seconds after a change: bgpd's route-map delay-timer is 1 s in both shapes


def cpu(pid):
    fields = pathlib.Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def addresses(i):
    host = i + 1
    return "10.128.%d.%d" % (host // 256, host % 256), "10.64.%d.%d/32" % (host // 256, host % 256)


def per_leaf(i):
    """(top-level, router bgp, address-family) lines of leaf i in the peer-group shape."""
    tunnel, owned = addresses(i)
    group, plist = "L%d" % i, "SAM-LEAF-leaf-%d" % i
    top = ["ip prefix-list %s seq 5 permit %s" % (plist, owned),
           "ip prefix-list SAM-ADMITTED seq %d permit %s" % (i + 10, owned)]
    bgp = [" neighbor %s peer-group" % group, " neighbor %s remote-as 64577" % group,
           " bgp listen range %s/32 peer-group %s" % (tunnel, group)]
    af = ["  neighbor %s %s" % (group, what) for what in (
        "activate", "route-reflector-client", "next-hop-self force", "soft-reconfiguration inbound",
        "prefix-list %s in" % plist)]
    return top, bgp, af


def peer_group_config(count):
    top, bgp, af = [], [], []
    for i in range(count):
        a, b, c = per_leaf(i)
        top, bgp, af = top + a, bgp + b, af + c
    top += ["route-map SAM-RR-IN permit 10", " match ip address prefix-list SAM-ADMITTED",
            " set local-preference 50", "route-map SAM-RR-IN deny 65535"]
    head = ["!", "bgp route-map delay-timer 1", "router bgp 64577", " bgp router-id 10.99.0.2",
            " no bgp default ipv4-unicast", " bgp listen limit %d" % (count + 100),
            " neighbor 10.99.0.3 remote-as 64577"]
    rr_peer = ["  neighbor 10.99.0.3 activate", "  neighbor 10.99.0.3 route-map SAM-RR-IN in"]
    return "\n".join(top + head + bgp + [" address-family ipv4 unicast"] + rr_peer + af
                     + [" exit-address-family", "exit"]) + "\n"


def route_map_config(count):
    """The shape render_frr wrote before: one shared peer-group and route-map, one entry per leaf."""
    lists, maps, ranges = [], [], []
    for i in range(count):
        tunnel, owned = addresses(i)
        lists.append("ip prefix-list SAM-LEAF-leaf-%d seq 5 permit %s" % (i, owned))
        maps += ["route-map SAM-IN-leaves permit %d" % (i + 1), " match peer %s" % tunnel,
                 " match ip address prefix-list SAM-LEAF-leaf-%d" % i, "exit"]
        ranges.append(" bgp listen range %s/32 peer-group leaves" % tunnel)
    maps += ["route-map SAM-IN-leaves deny 65535", "exit"]
    head = ["!", "bgp route-map delay-timer 1", "router bgp 64577", " bgp router-id 10.99.0.2",
            " no bgp default ipv4-unicast", " bgp listen limit %d" % (count + 100), " neighbor leaves peer-group",
            " neighbor leaves remote-as 64577"]
    af = [" address-family ipv4 unicast"] + ["  neighbor leaves %s" % what for what in (
        "activate", "route-reflector-client", "next-hop-self force", "soft-reconfiguration inbound",
        "route-map SAM-IN-leaves in")] + [" exit-address-family", "exit"]
    return "\n".join(lists + maps + head + ranges + af) + "\n"


def route_map_changes(count):
    tunnel, owned = addresses(count)
    add = ["configure terminal", "ip prefix-list SAM-LEAF-leaf-%d seq 5 permit %s" % (count, owned),
           "route-map SAM-IN-leaves permit %d" % (count + 1), "match peer %s" % tunnel,
           "match ip address prefix-list SAM-LEAF-leaf-%d" % count,
           "router bgp 64577", "bgp listen range %s/32 peer-group leaves" % tunnel]
    remove = ["configure terminal", "router bgp 64577", "no bgp listen range 10.128.0.6/32 peer-group leaves",
              "exit", "no route-map SAM-IN-leaves permit 6", "no ip prefix-list SAM-LEAF-leaf-5"]
    return route_map_config(count), add, remove


def peer_group_changes(count):
    top, bgp, af = per_leaf(count)
    add = ["configure terminal", *top, "router bgp 64577", *bgp, "address-family ipv4 unicast", *af]
    remove = ["configure terminal", "router bgp 64577", "no neighbor L5 peer-group", "exit",
              "no ip prefix-list SAM-LEAF-leaf-5", "no ip prefix-list SAM-ADMITTED seq 15 permit 10.64.0.6/32"]
    return peer_group_config(count), add, remove


SHAPES = {"route-map": route_map_changes, "peer-group": peer_group_changes}


def ready(frr, timeout):
    """Seconds until bgpd answers a show command (it reads its start-up configuration first)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            frr.vtysh("show bgp summary json")
            return time.monotonic() - started
        except (subprocess.SubprocessError, OSError):
            time.sleep(0.5)
    raise TimeoutError("bgpd did not answer within %d s" % timeout)


def step(frr, commands):
    """(vtysh wall seconds, bgpd CPU seconds) of one vtysh session, the route-map delay-timer included."""
    pid = frr.pid()
    time.sleep(SETTLE)
    before, started = cpu(pid), time.monotonic()
    frr.vtysh(*commands)
    wall = time.monotonic() - started
    time.sleep(SETTLE)
    return wall, cpu(pid) - before


def run_shape(topo, shape, count, timeout):
    config, add, remove = SHAPES[shape](count)
    host = "rr-" + shape.replace("-", "")
    topo.add_host(host)
    frr = topo.start_frr(host, "hostname %s\n%s" % (host, config))
    up = ready(frr, timeout)
    figures = {"ready": up, "ready_cpu": cpu(frr.pid())}
    figures["unrelated"] = step(frr, ["configure terminal", "ip prefix-list UNUSED seq 5 permit 10.1.1.1/32"])
    figures["add"] = step(frr, add)
    figures["remove"] = step(frr, remove)
    running = frr.vtysh("show running-config")
    tunnel, _owned = addresses(count)
    figures["converged"] = ("%s/32" % tunnel in running) and "SAM-LEAF-leaf-5 " not in running
    frr.stop()
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=200)
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES), help="default: both")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds bgpd may take to start")
    args = parser.parse_args()
    if os.geteuid() != 0 or not os.access("/usr/lib/frr/bgpd", os.X_OK):
        print("frr_policy_cost: needs root and FRR (make setup)", file=sys.stderr)
        return 2
    if args.leaves < 10:
        print("frr_policy_cost: --leaves must be at least 10 (leaf 5 is the one removed)", file=sys.stderr)
        return 2
    cleanup_stale(PREFIX)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="boma-policy-"))
    code = 0
    print("== FRR policy cost: %d leaves, no session, one bgpd per shape ==" % args.leaves)
    print("%-11s %22s %22s %22s %22s" % ("shape", "start-up: ready (CPU)", "unrelated plist", "+1 leaf",
                                         "-1 leaf"))
    try:
        topo = Topology(workdir / "topology", prefix=PREFIX)
        try:
            for shape in args.shape or sorted(SHAPES):
                f = run_shape(topo, shape, args.leaves, args.timeout)
                cells = ["%.1f s (%.1f s)" % (f["ready"], f["ready_cpu"])]
                cells += ["%.3f s, bgpd %.2f s" % f[key] for key in ("unrelated", "add", "remove")]
                print("%-11s %22s %22s %22s %22s%s" % (shape, *cells, "" if f["converged"] else "  NOT CONVERGED"),
                      flush=True)
                code = code or (0 if f["converged"] else 1)
        finally:
            topo.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
