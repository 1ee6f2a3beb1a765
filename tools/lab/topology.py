# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create or delete the lab's network namespaces and underlay from inventories/lab (needs root).

Usage: topology.py [--inventory DIR] [--prefix P] [--hosts h1,h2] {up,down,status}

- up: one namespace <prefix>-<host> per inventory host (group_vars/all/lab.yml, hosts.yml), plus
  <prefix>-underlay holding one bridge per segment of lab_segments, each with its gateway address and
  forwarding between them (the "WAN"). Each lab_underlay entry of a host is a veth named
  <segment>-wan in the host (the name the documents give as underlayInterface, e.g. private-wan) with
  that address, its peer enslaved to the segment's bridge; the host's default route is the gateway of
  its first segment; /run/<prefix>/<host>/frr/daemons as the frr package ships it. Re-running it is a
  no-op; a host that is half there is rebuilt.
- down: kill what runs in those namespaces, delete them and /run/<prefix> (the per-host files the roles
  wrote, inventories/lab lab_root). Deleting what is already gone is fine.
- status: print the namespaces of the lab that exist.

The namespace helpers are tests/netns/procs.py (shared with the test harness, not duplicated).
"""

import argparse
import contextlib
import ipaddress
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from pyroute2 import NetNS, netns

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from netns.procs import _netns_list, _remove_netns, wait_for  # noqa: E402 - needs tests/ on sys.path

UNDERLAY = "underlay"


def load(inventory, prefix=None):
    """The lab description: prefix, segments, and {host: [(segment, address), ...]} in inventory order."""
    inventory = Path(inventory)
    lab = yaml.safe_load((inventory / "group_vars" / "all" / "lab.yml").read_text())
    hosts = {}

    def walk(group):
        for name, hvars in ((group or {}).get("hosts") or {}).items():
            underlay = (hvars or {}).get("lab_underlay", [])
            hosts[name] = [(u["segment"], ipaddress.ip_interface(u["address"])) for u in underlay]
        for child in ((group or {}).get("children") or {}).values():
            walk(child)

    walk(yaml.safe_load((inventory / "hosts.yml").read_text())["all"])
    segments = {name: (ipaddress.ip_network(seg["prefix"]), ipaddress.ip_address(seg["gateway"]))
                for name, seg in lab["lab_segments"].items()}
    for host, links in hosts.items():
        for segment, addr in links:
            if segment not in segments or addr.ip not in segments[segment][0]:
                raise ValueError(f"{host}: {addr} is not in a segment of lab_segments ({segment})")
    return {"prefix": prefix or lab["lab_netns_prefix"], "segments": segments, "hosts": hosts}


def ns_name(lab, host):
    return f"{lab['prefix']}-{host}"


def _sysctl(ns, *settings):
    # sysctl under net.* is per namespace; nsenter keeps it to the child (our process stays where it is).
    subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", "sysctl", "-q", "-e", "-w", *settings],
                   check=True, capture_output=True, text=True)  # fmt: skip


def _index(ipr, ifname):
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def _has_addr(ipr, index, iface):
    return any(a.get("index") == index and a.get_attr("IFA_ADDRESS") == str(iface.ip)
               for a in ipr.get_addr(family=2 if iface.version == 4 else 10))  # fmt: skip


def _new_ns(name):
    netns.create(name)
    with NetNS(name) as ipr:
        ipr.link("set", index=_index(ipr, "lo"), state="up")
    _sysctl(name, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")


def _underlay_up(lab):
    name = ns_name(lab, UNDERLAY)
    if name not in _netns_list():
        _new_ns(name)
    with NetNS(name) as ipr:
        for segment, (net, gateway) in lab["segments"].items():
            bridge = f"br-{segment}"
            if _index(ipr, bridge) is None:
                ipr.link("add", ifname=bridge, kind="bridge")
            idx = _index(ipr, bridge)
            if not _has_addr(ipr, idx, ipaddress.ip_interface(f"{gateway}/{net.prefixlen}")):
                ipr.addr("add", index=idx, address=str(gateway), prefixlen=net.prefixlen)
            ipr.link("set", index=idx, state="up")
    return name


def _host_complete(lab, host):
    name = ns_name(lab, host)
    if name not in _netns_list():
        return False
    with NetNS(name) as ipr:
        for segment, addr in lab["hosts"][host]:
            idx = _index(ipr, f"{segment}-wan")
            if idx is None or not _has_addr(ipr, idx, addr):
                return False
        return not lab["hosts"][host] or bool(ipr.get_default_routes(family=2))


def _host_up(lab, host, underlay):
    name = ns_name(lab, host)
    if _host_complete(lab, host):
        return False
    _remove_netns(name)   # half built (an interrupted up): start this host again from nothing
    _new_ns(name)
    with NetNS(name) as ipr, NetNS(underlay) as uipr:
        for segment, addr in lab["hosts"][host]:
            ifname, peer = f"{segment}-wan", f"{host}-{segment}"[:15]
            with contextlib.suppress(Exception):   # a peer left in the underlay by an interrupted up
                uipr.link("del", index=_index(uipr, peer))
            ipr.link("add", ifname=ifname, kind="veth", peer={"ifname": peer, "net_ns_fd": underlay})
            idx = _index(ipr, ifname)
            ipr.addr("add", index=idx, address=str(addr.ip), prefixlen=addr.network.prefixlen)
            ipr.link("set", index=idx, state="up")
            uipr.link("set", index=_index(uipr, peer), master=_index(uipr, f"br-{segment}"), state="up")
        if lab["hosts"][host]:
            gateway = lab["segments"][lab["hosts"][host][0][0]][1]
            ipr.route("add", dst="0.0.0.0", dst_len=0, gateway=str(gateway))
        # Carrier comes up asynchronously; the first packet of a test must not race it.
        wait_for(lambda: all(ipr.link("get", index=_index(ipr, f"{s}-wan"))[0].get("IFLA_OPERSTATE") == "UP"
                             for s, _a in lab["hosts"][host]),
                 timeout=5, interval=0.02, message=f"{name} underlay up")  # fmt: skip
    return True


def _seed_files(lab, host):
    """What the frr package would have installed on a real host, in the host's own directory.

    The namespaces share this machine's filesystem, so the roles' FRR paths are per host under /run/<prefix>
    (group_vars/sam_*); the roles edit the daemons file the package ships and never create it.
    """
    frr = Path("/run") / lab["prefix"] / host / "frr"
    frr.mkdir(parents=True, exist_ok=True)
    daemons = frr / "daemons"
    if not daemons.exists():
        shipped = Path("/etc/frr/daemons")
        daemons.write_text(shipped.read_text() if shipped.is_file() else "zebra=yes\nbgpd=no\n")


def up(lab, hosts=None):
    underlay = _underlay_up(lab)
    built = []
    for host in hosts or lab["hosts"]:
        if _host_up(lab, host, underlay):
            built.append(host)
        _seed_files(lab, host)
    return built


def down(lab):
    removed = []
    for host in [*lab["hosts"], UNDERLAY]:
        name = ns_name(lab, host)
        if name in _netns_list():
            _remove_netns(name)
            removed.append(name)
    shutil.rmtree(Path("/run") / lab["prefix"], ignore_errors=True)
    return removed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--inventory", default=str(ROOT / "inventories" / "lab"))
    parser.add_argument("--prefix", help="namespace prefix (default: lab_netns_prefix of the inventory)")
    parser.add_argument("--hosts", help="comma-separated subset of the inventory hosts (up only)")
    parser.add_argument("action", choices=("up", "down", "status"))
    args = parser.parse_args(argv)
    lab = load(args.inventory, args.prefix)
    hosts = args.hosts.split(",") if args.hosts else None
    unknown = sorted(set(hosts or ()) - set(lab["hosts"]))
    if unknown:
        parser.error(f"unknown hosts {unknown} (inventory: {sorted(lab['hosts'])})")
    if args.action == "up":
        built = up(lab, hosts)
        print(f"lab {lab['prefix']}: created {built or 'nothing (already up)'}")
    elif args.action == "down":
        print(f"lab {lab['prefix']}: removed {down(lab) or 'nothing'}")
    else:
        existing = set(_netns_list())
        for host in [*lab["hosts"], UNDERLAY]:
            print(f"{ns_name(lab, host):32} {'up' if ns_name(lab, host) in existing else 'absent'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
