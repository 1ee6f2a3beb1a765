# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's only netlink code: tunnels, addresses, routes and WireGuard through pyroute2.

Every entry point follows the same shape: normalize + validate the desired objects (pure, no kernel
access), read the kernel, ``plan_*`` a list of actions ``{action, kind, name, before, after}``, then
``apply_actions`` them (check mode stops after the plan).  Managed links carry IFLA_IFALIAS ``boma.mesh``;
managed routes carry protocol ``ROUTE_PROTO``; managed loopback addresses carry the label ``<lo>:sam``.
Only objects with these marks are ever removed.
"""

import base64
import errno
import ipaddress
import os

try:
    from pyroute2 import IPRoute, WireGuard
    from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, genlmsg
    from pyroute2.netlink.exceptions import NetlinkError as Pyroute2Error
    from pyroute2.netlink.generic import GenericNetlinkSocket

    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - reported by the modules
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = _exc
    genlmsg = object
    Pyroute2Error = OSError
    IPRoute = WireGuard = GenericNetlinkSocket = None
    NLM_F_ACK = NLM_F_DUMP = NLM_F_REQUEST = 0

try:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - reported by sam_wireguard
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = _exc

OWNER = "boma.mesh"
PREFIX = "sam-"
IFNAME_MAX = 15
ROUTE_PROTO = 77  # marks routes installed by boma.mesh (not a registered protocol in rt_protos)
LO_LABEL_SUFFIX = ":sam"
TUNNEL_MODES = ("ipip", "gre", "fou")
TUNNEL_ENCAP_FOU = 1
GRE_KEY_FLAG = 0x2000
RT_TABLE_MAIN = 254
RT_SCOPE_LINK = 253
RT_SCOPE_NOWHERE = 255
IFF_UP = 1
NETNS_RUN_DIR = "/var/run/netns"
# fields whose change needs the link deleted and created again; the rest are changed in place
TUNNEL_RECREATE = ("mode", "local", "remote", "underlay", "encap_sport", "encap_dport", "key")


class NetlinkConfigError(Exception):
    """Desired state rejected before any change; ``errors`` name the field path and the rule."""

    def __init__(self, errors):
        super().__init__("; ".join(errors))
        self.errors = list(errors)


# ---------------------------------------------------------------- generic netlink FOU (not in pyroute2 0.9.7)

FOU_CMD_ADD, FOU_CMD_DEL, FOU_CMD_GET = 1, 2, 3
FOU_ENCAP_DIRECT = 1


class foumsg(genlmsg):  # pylint: disable=invalid-name
    """Generic netlink message of the kernel's ``fou`` family (include/uapi/linux/fou.h)."""

    prefix = "FOU_ATTR_"
    nla_map = (
        ("FOU_ATTR_UNSPEC", "none"),
        ("FOU_ATTR_PORT", "be16"),
        ("FOU_ATTR_AF", "uint8"),
        ("FOU_ATTR_IPPROTO", "uint8"),
        ("FOU_ATTR_TYPE", "uint8"),
        ("FOU_ATTR_REMCSUM_NOPARTIAL", "flag"),
        ("FOU_ATTR_LOCAL_V4", "ip4addr"),
        ("FOU_ATTR_LOCAL_V6", "ip6addr"),
        ("FOU_ATTR_PEER_V4", "ip4addr"),
        ("FOU_ATTR_PEER_V6", "ip6addr"),
        ("FOU_ATTR_PEER_PORT", "be16"),
        ("FOU_ATTR_IFINDEX", "int32"),
    )


def _fou_socket(netns):
    sock = GenericNetlinkSocket(netns=netns, flags=0) if netns else GenericNetlinkSocket()
    try:
        sock.bind("fou", foumsg)
    except Pyroute2Error as exc:
        sock.close()
        if exc.code == errno.ENOENT:
            raise NetlinkConfigError(["fou: the kernel has no generic netlink family 'fou' "
                                      "(load the module: modprobe fou)"]) from exc
        raise
    return sock


def _fou_msg(cmd, port=None):
    msg = foumsg()
    msg["cmd"] = cmd
    msg["version"] = 1
    if port is not None:
        msg["attrs"] = [["FOU_ATTR_PORT", port], ["FOU_ATTR_AF", 2], ["FOU_ATTR_IPPROTO", 4],
                        ["FOU_ATTR_TYPE", FOU_ENCAP_DIRECT]]
    return msg


def fou_ports(netns=None):
    """Local FOU receive ports (IPv4, ipproto 4) as a set of ints."""
    sock = _fou_socket(netns)
    try:
        ports = set()
        for msg in sock.nlm_request(_fou_msg(FOU_CMD_GET), msg_type=sock.prid,
                                    msg_flags=NLM_F_REQUEST | NLM_F_DUMP):
            if msg.get_attr("FOU_ATTR_IPPROTO") in (4, None) and msg.get_attr("FOU_ATTR_AF") in (2, None):
                ports.add(msg.get_attr("FOU_ATTR_PORT"))
        return ports
    finally:
        sock.close()


def fou_port(netns, port, add):
    """Add or delete a FOU receive port; EEXIST/EADDRINUSE (add) and ENOENT (delete) count as done."""
    sock = _fou_socket(netns)
    try:
        tuple(sock.nlm_request(_fou_msg(FOU_CMD_ADD if add else FOU_CMD_DEL, port), msg_type=sock.prid,
                               msg_flags=NLM_F_REQUEST | NLM_F_ACK))  # a generator: consume it to send
    except Pyroute2Error as exc:
        done = (errno.EEXIST, errno.EADDRINUSE) if add else (errno.ENOENT, errno.ESRCH)
        if exc.code not in done:
            raise
    finally:
        sock.close()


# ---------------------------------------------------------------- helpers


def open_ipr(netns=None):
    """An IPRoute handle, inside network namespace ``netns`` when given (it must exist; never created)."""
    if not netns:
        return IPRoute()
    if "/" in netns or not os.path.exists(os.path.join(NETNS_RUN_DIR, netns)):
        raise NetlinkConfigError(["netns [netns-missing] network namespace %r does not exist" % netns])
    return IPRoute(netns=netns, flags=0)


def _attr(msg, *path):
    for name in path:
        if msg is None:
            return None
        msg = msg.get_attr(name)
    return msg


def _link_view(link):
    """Name, index, kind, alias, up flag and kind-specific data of one RTM_NEWLINK message."""
    return {"index": link["index"], "ifname": link.get_attr("IFLA_IFNAME"),
            "kind": _attr(link, "IFLA_LINKINFO", "IFLA_INFO_KIND"),
            "alias": link.get_attr("IFLA_IFALIAS"), "up": bool(link["flags"] & IFF_UP),
            "mtu": link.get_attr("IFLA_MTU"),
            "data": _attr(link, "IFLA_LINKINFO", "IFLA_INFO_DATA"), "link": link}


def read_links(ipr):
    """{ifname: link view} for every link."""
    return {view["ifname"]: view for view in (_link_view(link) for link in ipr.get_links())}


def _ipv4_addresses(ipr, index=None):
    out = []
    for msg in ipr.get_addr(family=2, index=index) if index is not None else ipr.get_addr(family=2):
        out.append({"index": msg["index"], "address": "%s/%d" % (msg.get_attr("IFA_LOCAL")
                                                                 or msg.get_attr("IFA_ADDRESS"), msg["prefixlen"]),
                    "label": msg.get_attr("IFA_LABEL")})
    return out


def valid_ifname(name):
    return bool(name) and len(name) <= IFNAME_MAX and "/" not in name and not any(c.isspace() for c in name)


def parse_interface(value, path, errors):
    try:
        return str(ipaddress.ip_interface(str(value)))
    except ValueError:
        errors.append("%s [ipv4-interface] %r is not an address with prefix length" % (path, value))
        return None


def _ip(value, path, errors):
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        errors.append("%s [ipv4-address] %r is not an IPv4 address" % (path, value))
        return None


def _port(value, path, errors):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        errors.append("%s [port] %r is not a UDP port (1-65535)" % (path, value))
        return None
    return value


def resources_of_kind(resources, kind):
    """(path, spec) for each resource of ``kind`` in a sam_materialize ``state.resources`` list."""
    out = []
    for pos, res in enumerate(resources or []):
        if isinstance(res, dict) and res.get("kind") == kind:
            spec = res.get("spec")
            out.append(("resources[%d].spec" % pos, spec if isinstance(spec, dict) else {}))
    return out


# ---------------------------------------------------------------- tunnels


def tunnel_from_spec(spec, path, errors):
    """Normalized desired tunnel from a TunnelInterface spec (camelCase keys); problems go to ``errors``."""
    n_errors = len(errors)
    ifname = spec.get("ifname")
    mode = spec.get("mode")
    if not isinstance(ifname, str) or not valid_ifname(ifname):
        errors.append("%s.ifname [ifname] %r must be 1-%d characters without '/' or spaces"
                      % (path, ifname, IFNAME_MAX))
    if mode not in TUNNEL_MODES:
        errors.append("%s.mode [tunnel-mode] %r is not one of %s" % (path, mode, ", ".join(TUNNEL_MODES)))
    sport = _port(spec.get("encapSport"), path + ".encapSport", errors)
    dport = _port(spec.get("encapDport"), path + ".encapDport", errors)
    has_ports = spec.get("encapSport") is not None or spec.get("encapDport") is not None
    if mode == "fou" and (spec.get("encapSport") is None or spec.get("encapDport") is None):
        errors.append("%s.encapSport/encapDport [fou-ports] mode fou needs both encap ports" % path)
    if mode in ("ipip", "gre") and has_ports:
        errors.append("%s.encapSport/encapDport [encap-ports-only-fou] mode %s takes no encap ports" % (path, mode))
    underlay = spec.get("underlayInterface")
    if underlay is not None and (not isinstance(underlay, str) or not valid_ifname(underlay)):
        errors.append("%s.underlayInterface [ifname] %r is not an interface name" % (path, underlay))
    key = spec.get("key")
    if key is not None and (mode != "gre" or isinstance(key, bool) or not isinstance(key, int)
                            or not 0 <= key < 2 ** 32):
        errors.append("%s.key [gre-key] %r: a key is a 32-bit integer and only for mode gre" % (path, key))
    local = _ip(spec.get("local"), path + ".local", errors)
    remote = _ip(spec.get("remote"), path + ".remote", errors)
    address = parse_interface(spec["address"], path + ".address", errors) if spec.get("address") else None
    peer = parse_interface(spec["peerAddress"], path + ".peerAddress", errors) if spec.get("peerAddress") else None
    mtu = spec.get("mtu")
    if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535):
        errors.append("%s.mtu [mtu] %r must be an integer within 68-65535" % (path, mtu))
    if len(errors) != n_errors:
        return None
    return {"ifname": ifname, "mode": mode, "local": local, "remote": remote, "underlay": underlay,
            "encap_sport": sport, "encap_dport": dport, "key": key if mode == "gre" else None,
            "address": address, "peer_address": peer, "up": True, "owner": OWNER, "mtu": mtu}


def check_tunnel_set(tunnels, paths, errors):
    """Duplicate names and ipip/fou tunnels sharing (local, remote), which the kernel refuses."""
    seen, pairs = {}, {}
    for tun, path in zip(tunnels, paths):
        if tun["ifname"] in seen:
            errors.append("%s.ifname [duplicate] %s is also at %s" % (path, tun["ifname"], seen[tun["ifname"]]))
        seen.setdefault(tun["ifname"], path)
        family = "gre" if tun["mode"] == "gre" else "ipip"
        pair = (family, tun["local"], tun["remote"], tun["key"])
        if pair in pairs:
            errors.append("%s [tunnel-endpoint-collision] %s %s->%s is also used by %s; the kernel allows one "
                          "tunnel per outer address pair" % (path, family, tun["local"], tun["remote"], pairs[pair]))
        pairs.setdefault(pair, path)


def tunnel_view(view, links_by_index, own):
    """Kernel tunnel link (+ its IPv4 addresses) -> the normalized form of tunnel_from_spec (proto/ttl ignored)."""
    data = view["data"]
    kind = view["kind"]
    if kind == "ipip":
        link_idx = _attr(data, "IFLA_IPIP_LINK")
        encap = _attr(data, "IFLA_IPIP_ENCAP_TYPE") or 0
        mode = "fou" if encap == TUNNEL_ENCAP_FOU else "ipip"
        sport = _attr(data, "IFLA_IPIP_ENCAP_SPORT") if mode == "fou" else None
        dport = _attr(data, "IFLA_IPIP_ENCAP_DPORT") if mode == "fou" else None
        local, remote, key = _attr(data, "IFLA_IPIP_LOCAL"), _attr(data, "IFLA_IPIP_REMOTE"), None
        if encap not in (0, TUNNEL_ENCAP_FOU):
            mode = "ipip-encap-%d" % encap
    else:
        link_idx = _attr(data, "IFLA_GRE_LINK")
        mode, sport, dport = "gre", None, None
        local, remote = _attr(data, "IFLA_GRE_LOCAL"), _attr(data, "IFLA_GRE_REMOTE")
        key = _attr(data, "IFLA_GRE_IKEY") or None
    return {"ifname": view["ifname"], "mode": mode, "local": local, "remote": remote,
            "underlay": links_by_index.get(link_idx) if link_idx else None,
            "encap_sport": sport or None, "encap_dport": dport or None, "key": key,
            "address": own[0] if len(own) == 1 else (own or None), "peer_address": None,
            "up": view["up"], "owner": view["alias"], "mtu": view["mtu"]}


def read_tunnels(ipr, links=None):
    """{ifname: normalized tunnel} for every ipip/gre link (managed or not; see ``owner``)."""
    links = links if links is not None else read_links(ipr)
    by_index = {v["index"]: name for name, v in links.items()}
    by_link = {}
    for entry in _ipv4_addresses(ipr):  # grouped once: a scan per tunnel would be O(n^2)
        by_link.setdefault(entry["index"], []).append(entry["address"])
    return {name: tunnel_view(v, by_index, by_link.get(v["index"], []))
            for name, v in links.items() if v["kind"] in ("ipip", "gre")}


def _public(tun):
    if tun is None:
        return None
    return {k: v for k, v in tun.items() if v is not None}


def _check_tunnels(links, desired, state):
    errors = []
    for tun in desired:
        have = links.get(tun["ifname"])
        if have is not None and have["alias"] != OWNER:
            errors.append("tunnel %s [foreign-link] a link with this name exists and is not managed by %s "
                          "(IFLA_IFALIAS)" % (tun["ifname"], OWNER))
        if state == "present" and tun["underlay"] and tun["underlay"] not in links:
            errors.append("tunnel %s.underlayInterface [underlay-missing] interface %s does not exist"
                          % (tun["ifname"], tun["underlay"]))
    if errors:
        raise NetlinkConfigError(errors)


def _tunnel_change(before, tun):
    after = dict(tun)
    after["peer_address"] = None  # informational only: the route module installs the peer route
    if after["mtu"] is None and before is not None:
        after["mtu"] = before["mtu"]  # not managed: whatever the kernel chose stays
    if before is None:
        action = "create"
    elif any(before[k] != after[k] for k in TUNNEL_RECREATE):
        action = "recreate"
    elif before["address"] != after["address"] or not before["up"] or before["mtu"] != after["mtu"]:
        action = "update"
    else:
        return None
    return {"action": action, "kind": "tunnel", "name": tun["ifname"], "before": _public(before),
            "after": _public(after), "desired": tun}


def _plan_fou(current, desired, doomed, state, netns, fou_ports_now):
    """Open the dport of each desired fou tunnel; close a port a deleted managed fou tunnel used once no
    fou link is left using it."""
    deleted = {t["ifname"] for t in doomed}
    after = {name: t for name, t in current.items() if name not in deleted}
    if state == "present":
        after.update({t["ifname"]: t for t in desired})
    after_ports = {t["encap_dport"] for t in after.values() if t["mode"] == "fou"}
    need = sorted({t["encap_dport"] for t in desired if t["mode"] == "fou"}) if state == "present" else []
    gone = sorted({t["encap_dport"] for t in current.values() if t["mode"] == "fou" and t["owner"] == OWNER}
                  - after_ports)
    if not need and not gone:
        return [], []
    ports = fou_ports_now if fou_ports_now is not None else fou_ports(netns)
    first = [{"action": "create", "kind": "fou-port", "name": str(port), "before": None,
              "after": {"port": port, "ipproto": 4}} for port in need if port not in ports]
    last = [{"action": "delete", "kind": "fou-port", "name": str(port), "before": {"port": port, "ipproto": 4},
             "after": None} for port in gone if port in ports]
    return first, last


def plan_tunnels(ipr, desired, state="present", purge=False, netns=None, fou_ports_now=None):
    """Actions to reach ``desired`` (normalized tunnels); raises NetlinkConfigError before any change."""
    links = read_links(ipr)
    current = read_tunnels(ipr, links)
    _check_tunnels(links, desired, state)
    actions = []
    if state == "present":
        actions = [a for a in (_tunnel_change(current.get(t["ifname"]), t) for t in desired) if a]
    wanted = {t["ifname"] for t in desired}
    doomed = [tun for name, tun in sorted(current.items()) if tun["owner"] == OWNER
              and ((state == "absent" and name in wanted) or (purge and name not in wanted))]
    actions += [{"action": "delete", "kind": "tunnel", "name": tun["ifname"], "before": _public(tun),
                 "after": None} for tun in doomed]
    first, last = _plan_fou(current, desired, doomed, state, netns, fou_ports_now)
    return first + actions + last


def _tunnel_link_args(tun, links):
    under = links[tun["underlay"]]["index"] if tun["underlay"] else None
    if tun["mode"] == "gre":
        args = {"kind": "gre", "gre_local": tun["local"], "gre_remote": tun["remote"], "gre_ttl": 64}
        if under:
            args["gre_link"] = under
        if tun["key"] is not None:
            args.update(gre_ikey=tun["key"], gre_okey=tun["key"], gre_iflags=GRE_KEY_FLAG, gre_oflags=GRE_KEY_FLAG)
        return args
    args = {"kind": "ipip", "ipip_local": tun["local"], "ipip_remote": tun["remote"], "ipip_ttl": 64}
    if under:
        args["ipip_link"] = under
    if tun["mode"] == "fou":
        args.update(ipip_encap_type=TUNNEL_ENCAP_FOU, ipip_encap_sport=tun["encap_sport"],
                    ipip_encap_dport=tun["encap_dport"])
    return args


def _set_link_address(ipr, index, address, fresh=False):
    """Make ``address`` (or none) the only IPv4 address of link ``index`` (``fresh``: it has none yet)."""
    have = [] if fresh else [a["address"] for a in _ipv4_addresses(ipr, index)]
    for old in have:
        if old != address:
            iface = ipaddress.ip_interface(old)
            ipr.addr("del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    if address and address not in have:
        iface = ipaddress.ip_interface(address)
        ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)


def _index_of(ipr, ifname):
    (link,) = ipr.link("get", ifname=ifname)
    return link["index"]


def _apply_tunnel(ipr, action, links):
    name = action["name"]
    if action["action"] in ("delete", "recreate") and name in links:
        ipr.link("del", index=links[name]["index"])
    if action["action"] == "delete":
        return
    tun = action["desired"]
    fresh = action["action"] in ("create", "recreate")
    if fresh:
        ipr.link("add", ifname=name, **_tunnel_link_args(tun, links))
        index = _index_of(ipr, name)
    else:
        index = links[name]["index"]
    extra = {"mtu": tun["mtu"]} if tun.get("mtu") else {}
    ipr.link("set", index=index, ifalias=OWNER, state="up", **extra)
    _set_link_address(ipr, index, tun["address"], fresh)


# ---------------------------------------------------------------- routes and loopback addresses


def route_from_spec(spec, path, errors):
    n_errors = len(errors)
    dest = spec.get("destination")
    try:
        dest = str(ipaddress.IPv4Network(str(dest), strict=True))
    except ValueError:
        errors.append("%s.destination [ipv4-prefix] %r is not an IPv4 prefix" % (path, dest))
    device = spec.get("device")
    if not isinstance(device, str) or not valid_ifname(device):
        errors.append("%s.device [ifname] %r is not an interface name (1-%d characters)" % (path, device, IFNAME_MAX))
    source = _ip(spec["source"], path + ".source", errors) if spec.get("source") else None
    if len(errors) != n_errors:
        return None
    return {"destination": dest, "device": device, "source": source}


def loopback_from_list(values, path, errors):
    out = []
    for pos, value in enumerate(values or []):
        iface = parse_interface(value, "%s[%d]" % (path, pos), errors)
        if iface and not iface.endswith("/32"):
            errors.append("%s[%d] [host-prefix] %s: loopback addresses are /32" % (path, pos, iface))
        elif iface:
            out.append(iface)
    return out


def read_routes(ipr, links=None):
    """{destination: route} for the IPv4 main-table routes carrying protocol ROUTE_PROTO."""
    links = links if links is not None else read_links(ipr)
    by_index = {v["index"]: name for name, v in links.items()}
    out = {}
    for msg in ipr.get_routes(family=2, table=RT_TABLE_MAIN, proto=ROUTE_PROTO):
        if msg["proto"] != ROUTE_PROTO:
            continue
        dest = "%s/%d" % (msg.get_attr("RTA_DST") or "0.0.0.0", msg["dst_len"])
        out[dest] = {"destination": dest, "device": by_index.get(msg.get_attr("RTA_OIF")),
                     "source": msg.get_attr("RTA_PREFSRC")}
    return out


def _plan_loopback(ipr, links, loopbacks, state, purge, lo):
    label = lo + LO_LABEL_SUFFIX
    have_lo = {a["address"]: a for a in _ipv4_addresses(ipr, links[lo]["index"])} if lo in links else {}
    actions = [{"action": "create", "kind": "address", "name": "%s %s" % (lo, addr), "before": None,
                "after": {"address": addr, "device": lo, "label": label}}
               for addr in loopbacks if state == "present" and addr not in have_lo]
    wanted = set(loopbacks)
    for addr, have in sorted(have_lo.items()):
        if have["label"] == label and ((state == "absent" and addr in wanted) or (purge and addr not in wanted)):
            actions.append({"action": "delete", "kind": "address", "name": "%s %s" % (lo, addr),
                            "before": {"address": addr, "device": lo, "label": label}, "after": None})
    return actions


def plan_routes(ipr, routes, loopbacks, state="present", purge=False, lo="lo"):
    """Actions for IPv4Routes and the owned loopback /32s; raises NetlinkConfigError before any change."""
    links = read_links(ipr)
    errors = []
    if lo not in links and (loopbacks or purge):
        errors.append("loopback_interface [device-missing] interface %s does not exist" % lo)
    if state == "present":
        errors += ["route %s.device [device-missing] interface %s does not exist" % (r["destination"], r["device"])
                   for r in routes if r["device"] not in links]
    if errors:
        raise NetlinkConfigError(errors)
    actions = _plan_loopback(ipr, links, loopbacks, state, purge, lo)
    current = read_routes(ipr, links)
    wanted = {r["destination"] for r in routes}
    if state == "present":
        for route in routes:
            before = current.get(route["destination"])
            if before != route:
                actions.append({"action": "create" if before is None else "update", "kind": "route",
                                "name": route["destination"], "before": before, "after": dict(route)})
    for dest, have in sorted(current.items()):
        if (state == "absent" and dest in wanted) or (purge and dest not in wanted):
            actions.append({"action": "delete", "kind": "route", "name": dest, "before": have, "after": None})
    # order: new addresses before the routes that use them as source, deleted addresses last
    rank = {("address", "create"): 0, ("route", "delete"): 1, ("route", "create"): 2, ("route", "update"): 2,
            ("address", "delete"): 3}
    actions.sort(key=lambda a: rank[(a["kind"], a["action"])])
    return actions


def _apply_route(ipr, action, links):
    kind, what = action["kind"], action["action"]
    if kind == "address":
        item = action["after"] or action["before"]
        iface = ipaddress.ip_interface(item["address"])
        index = links[item["device"]]["index"]
        if what == "create":
            ipr.addr("add", index=index, address=str(iface.ip), prefixlen=32, label=item["label"])
        else:
            ipr.addr("del", index=index, address=str(iface.ip), prefixlen=32)
        return
    net = ipaddress.IPv4Network(action["name"])
    if what == "delete":
        ipr.route("del", dst=str(net.network_address), dst_len=net.prefixlen, table=RT_TABLE_MAIN,
                  proto=ROUTE_PROTO, scope=RT_SCOPE_NOWHERE)  # NOWHERE: match any scope, as ip route del
        return
    route = action["after"]
    kwargs = {"dst": str(net.network_address), "dst_len": net.prefixlen, "oif": links[route["device"]]["index"],
              "table": RT_TABLE_MAIN, "proto": ROUTE_PROTO, "scope": RT_SCOPE_LINK}
    if route["source"]:
        kwargs["prefsrc"] = route["source"]
    ipr.route("replace", **kwargs)


# ---------------------------------------------------------------- WireGuard


def valid_wg_key(key):
    """True for the base64 text of exactly 32 bytes."""
    if not isinstance(key, str) or len(key) != 44:
        return False
    try:
        return len(base64.b64decode(key, validate=True)) == 32
    except (ValueError, TypeError):
        return False


def peer_from_spec(spec, path, errors):
    n_errors = len(errors)
    key = spec.get("publicKey")
    if not valid_wg_key(key):
        errors.append("%s.publicKey [wireguard-key] not the base64 text of 32 bytes" % path)
    endpoint = spec.get("endpoint")
    host = port = None
    if endpoint:
        host, _sep, port_text = str(endpoint).rpartition(":")
        host = _ip(host, path + ".endpoint", errors)
        port = _port(int(port_text) if port_text.isdigit() else port_text, path + ".endpoint", errors)
    allowed = []
    for pos, net in enumerate(spec.get("allowedIPs") or []):
        try:
            allowed.append(str(ipaddress.ip_network(str(net), strict=True)))
        except ValueError:
            errors.append("%s.allowedIPs[%d] [ip-prefix] %r is not a prefix" % (path, pos, net))
    keepalive = spec.get("persistentKeepalive") or 0
    if isinstance(keepalive, bool) or not isinstance(keepalive, int) or not 0 <= keepalive < 65536:
        errors.append("%s.persistentKeepalive [keepalive] %r is not 0-65535 seconds" % (path, keepalive))
    if len(errors) != n_errors:
        return None
    return {"public_key": key, "endpoint": "%s:%d" % (host, port) if host else None,
            "allowed_ips": sorted(allowed), "persistent_keepalive": keepalive}


def public_key_of(private_b64):
    key = X25519PrivateKey.from_private_bytes(base64.b64decode(private_b64))
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def read_private_key(path):
    """The base64 private key stored at ``path``, or None when the file does not exist."""
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except FileNotFoundError:
        return None
    if not valid_wg_key(text):
        raise NetlinkConfigError(["private_key_path [wireguard-key] %s does not hold a base64 32-byte key" % path])
    return text


def create_private_key(path):
    """Generate an X25519 key into a new 0600 file; returns the base64 private key."""
    raw = X25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    text = base64.b64encode(raw).decode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text + "\n")
    os.chmod(path, 0o600)
    return text


def _wg_key_text(value):
    if value is None:
        return None
    if hasattr(value, "get") and value.get("value") is not None:
        value = value.get("value")
    if isinstance(value, bytes):
        return (value if len(value) != 32 else base64.b64encode(value)).decode("ascii")
    return str(value)


def read_wireguard(interface, netns=None):
    """{'listen_port', 'public_key', 'peers': {public_key: peer}} of a WireGuard link (no private key)."""
    wg = WireGuard(netns=netns, flags=0) if netns else WireGuard()
    try:
        (msg,) = wg.info(interface)[:1]
        peers = {}
        for peer in msg.get_attr("WGDEVICE_A_PEERS") or []:
            key = _wg_key_text(peer.get_attr("WGPEER_A_PUBLIC_KEY"))
            endpoint = peer.get_attr("WGPEER_A_ENDPOINT")
            allowed = [a.get("addr") for a in peer.get_attr("WGPEER_A_ALLOWEDIPS") or [] if a.get("addr")]
            peers[key] = {"public_key": key,
                          "endpoint": "%s:%d" % (endpoint["addr"], endpoint["port"]) if endpoint else None,
                          "allowed_ips": sorted(str(ipaddress.ip_network(a, strict=False)) for a in allowed),
                          "persistent_keepalive": peer.get_attr("WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL") or 0}
        return {"listen_port": msg.get_attr("WGDEVICE_A_LISTEN_PORT") or None,
                "public_key": _wg_key_text(msg.get_attr("WGDEVICE_A_PUBLIC_KEY")), "peers": peers}
    finally:
        wg.close()


def plan_wireguard(ipr, netns, interface, desired, state="present", purge=False):
    """``desired``: {'public_key', 'listen_port', 'address', 'peers': [peer]}; no private key in any action."""
    links = read_links(ipr)
    have = links.get(interface)
    if have is not None and (have["alias"] != OWNER or have["kind"] != "wireguard"):
        raise NetlinkConfigError(["interface [foreign-link] %s exists and is not a WireGuard link managed by %s"
                                  % (interface, OWNER)])
    if state == "absent":
        if have is None:
            return []
        return [{"action": "delete", "kind": "wireguard", "name": interface, "before": {"ifname": interface},
                 "after": None}]
    actions = []
    before = {"listen_port": None, "public_key": None, "peers": {}, "address": None}
    if have is None:
        actions.append({"action": "create", "kind": "wireguard", "name": interface, "before": None,
                        "after": {"ifname": interface, "owner": OWNER}})
    else:
        before.update(read_wireguard(interface, netns))
        own = [a["address"] for a in _ipv4_addresses(ipr, have["index"])]
        before["address"] = own[0] if len(own) == 1 else (own or None)
    dev_before = {"listen_port": before["listen_port"], "public_key": before["public_key"],
                  "address": before["address"], "up": bool(have and have["up"])}
    dev_after = {"listen_port": desired["listen_port"] if desired["listen_port"] is not None
                 else before["listen_port"], "public_key": desired["public_key"],
                 "address": desired["address"] if desired["address"] is not None else before["address"], "up": True}
    if dev_before != dev_after:
        actions.append({"action": "update" if have else "create", "kind": "wireguard-device", "name": interface,
                        "before": dev_before if have else None, "after": dev_after})
    wanted = {p["public_key"] for p in desired["peers"]}
    for peer in desired["peers"]:
        old = before["peers"].get(peer["public_key"])
        if old != peer:
            actions.append({"action": "update" if old else "create", "kind": "wireguard-peer",
                            "name": peer["public_key"], "before": old, "after": peer})
    if purge:
        for key, old in sorted(before["peers"].items()):
            if key not in wanted:
                actions.append({"action": "delete", "kind": "wireguard-peer", "name": key, "before": old,
                                "after": None})
    return actions


def _apply_wireguard(ipr, action, links, netns, private_key, interface):
    kind, what = action["kind"], action["action"]
    if kind == "wireguard":
        if what == "delete":
            ipr.link("del", index=links[interface]["index"])
        else:
            ipr.link("add", ifname=interface, kind="wireguard")
            ipr.link("set", index=_index_of(ipr, interface), ifalias=OWNER)
        return
    index = _index_of(ipr, interface)
    wg = WireGuard(netns=netns, flags=0) if netns else WireGuard()
    try:
        if kind == "wireguard-device":
            after = action["after"]
            wg.set(interface, private_key=private_key, listen_port=after["listen_port"])
            if after["address"]:
                _set_link_address(ipr, index, after["address"])
            ipr.link("set", index=index, state="up")
        elif what == "delete":
            wg.set(interface, peer={"public_key": action["name"], "remove": True})
        else:
            peer = action["after"]
            spec = {"public_key": peer["public_key"], "allowed_ips": peer["allowed_ips"],
                    "replace_allowed_ips": True, "persistent_keepalive": peer["persistent_keepalive"]}
            if peer["endpoint"]:
                host, _sep, port = peer["endpoint"].rpartition(":")
                spec.update(endpoint_addr=host, endpoint_port=int(port))
            wg.set(interface, peer=spec)
    finally:
        wg.close()


# ---------------------------------------------------------------- apply


def apply_actions(ipr, actions, netns=None, private_key=None, interface=None):
    """Carry out a plan in order.  Raises Pyroute2Error / NetlinkConfigError on a kernel refusal."""
    links = read_links(ipr) if actions else {}
    for action in actions:
        if action["kind"] == "tunnel":
            _apply_tunnel(ipr, action, links)
        elif action["kind"] == "fou-port":
            fou_port(netns, int(action["name"]), action["action"] == "create")
        elif action["kind"] in ("route", "address"):
            _apply_route(ipr, action, links)
        else:
            _apply_wireguard(ipr, action, links, netns, private_key, interface)


def public_actions(actions):
    """Plan without internal fields, for the module result."""
    return [{k: v for k, v in a.items() if k != "desired"} for a in actions]


def diff_of(actions):
    before, after = {}, {}
    for action in actions:
        key = "%s %s" % (action["kind"], action["name"])
        if action["before"] is not None:
            before[key] = action["before"]
        if action["after"] is not None:
            after[key] = action["after"]
    return {"before": before, "after": after}


def module_result(module, actions, **extra):
    """exit_json keyword arguments: truthful ``changed``, the plan, and before/after in diff mode."""
    out = {"changed": bool(actions), "actions": public_actions(actions)}
    out.update(extra)
    if module._diff:  # pylint: disable=protected-access
        out["diff"] = diff_of(actions)
    return out


def fail_errors(module, what, errors, **extra):
    text = "\n".join(errors)
    module.fail_json(msg="%d error(s) in the desired %s, nothing changed:\n%s" % (len(errors), what, text),
                     errors=list(errors), **extra)
