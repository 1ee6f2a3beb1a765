# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's network plumbing (topology.py): namespaces, the underlay bridges, veths, identity /32s."""

import collections
import contextlib
import ipaddress
import subprocess
import sys
from pathlib import Path

from pyroute2 import NetNS, netns

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from netns.procs import _netns_list, _remove_netns, wait_for  # noqa: E402 - needs tests/ on sys.path

UNDERLAY = "underlay"


def ifname(lab, host, segment):
    """The host's interface on a segment: the entry's ifname (the documents' underlayInterface) or <segment>-wan."""
    return lab["ifnames"].get((host, segment), f"{segment}-wan")


def _public(lab, host):
    """The host's address on the segment every lab host shares (the leaves' endpoint segment)."""
    shared = set.intersection(*({seg for seg, _a in links} for links in lab["hosts"].values()))
    for segment, addr in lab["hosts"][host]:
        if segment in shared:
            return segment, addr.ip
    raise ValueError(f"{host}: no segment shared by every lab host")


def _identity_up(lab, host, ids):
    """Tunnel and owned /32s on lo; the other hosts' tunnel /32s via their address on the shared segment."""
    segment, _addr = _public(lab, host)
    with NetNS(ns_name(lab, host)) as ipr:
        lo = _index(ipr, "lo")
        for iface in [*ids[host][0], *ids[host][1]]:
            if not _has_addr(ipr, lo, iface):
                ipr.addr("add", index=lo, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        dev = _index(ipr, ifname(lab, host, segment))
        for other, (tunnels, _owned) in ids.items():
            if other == host:
                continue
            gateway = str(_public(lab, other)[1])
            for iface in tunnels:
                ipr.route("replace", dst=str(iface.ip), dst_len=32, gateway=gateway, oif=dev)


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
            idx = _index(ipr, ifname(lab, host, segment))
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
            name_in_host, peer = ifname(lab, host, segment), f"{host}-{segment}"[:15]
            with contextlib.suppress(Exception):   # a peer left in the underlay by an interrupted up
                uipr.link("del", index=_index(uipr, peer))
            ipr.link("add", ifname=name_in_host, kind="veth", peer={"ifname": peer, "net_ns_fd": underlay})
            idx = _index(ipr, name_in_host)
            ipr.addr("add", index=idx, address=str(addr.ip), prefixlen=addr.network.prefixlen)
            ipr.link("set", index=idx, state="up")
            uipr.link("set", index=_index(uipr, peer), master=_index(uipr, f"br-{segment}"), state="up")
        if lab["hosts"][host]:
            gateway = lab["segments"][lab["hosts"][host][0][0]][1]
            ipr.route("add", dst="0.0.0.0", dst_len=0, gateway=str(gateway))
        # A guest "internet" segment that is not the host's first (the RRs' inet-rr): the other internet segments
        # through its gateway, so WireGuard replies leave from the documents' endpoint. Otherwise they leave via
        # the private default route, leaf-a's WireGuard roams the RR peers to 10.10.0.x, and every site.yml run
        # sets them back (changed=1).
        for segment, _addr in lab["hosts"][host][1:]:
            if segment.startswith("inet-"):
                via = lab["segments"][segment][1]
                for other, (net, _gw) in lab["segments"].items():
                    if other.startswith("inet-") and other != segment:
                        ipr.route("add", dst=str(net.network_address), dst_len=net.prefixlen, gateway=str(via))
        # Carrier comes up asynchronously; the first packet of a test must not race it.
        wait_for(lambda: all(ipr.link("get", index=_index(ipr, ifname(lab, host, s)))[0].get("IFLA_OPERSTATE") == "UP"
                             for s, _a in lab["hosts"][host]),
                 timeout=5, interval=0.02, message=f"{name} underlay up")  # fmt: skip
    return True


def tunnel_summary(lab, host):
    """'ipip 2, wireguard 1' for the tunnel links boma.mesh manages in the host's namespace ('' when none).

    Read with the collection's own netlink reader (boma_mesh_utils, installed in the venv), so the table
    shows what the modules see: an ipip link with FOU encapsulation counts as fou.
    """
    from boma_mesh_utils.sam.apply.netlink import common, tunnels  # noqa: PLC0415 - only the status needs it

    name = ns_name(lab, host)
    if name not in _netns_list():
        return ""
    with NetNS(name) as ipr:
        links = common.read_links(ipr)
        owned = [(t["mode"], t["up"]) for t in tunnels.read_tunnels(ipr, links).values() if t["owner"] == common.OWNER]
    owned += [("wireguard", v["up"]) for v in links.values() if v["kind"] == "wireguard" and v["alias"] == common.OWNER]
    counts = collections.Counter(mode for mode, _up in owned)
    down = sum(1 for _mode, up in owned if not up)
    return ", ".join(f"{mode} {n}" for mode, n in sorted(counts.items())) + (f" ({down} down)" if down else "")
