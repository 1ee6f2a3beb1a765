# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ipip / gre / fou tunnel links: normalize, read back, plan, apply."""

import ipaddress

from ...core.findings import Finding
from .common import (
    GRE_KEY_FLAG,
    IFNAME_MAX,
    OWNER,
    TUNNEL_ENCAP_FOU,
    TUNNEL_MODES,
    TUNNEL_RECREATE,
    NetlinkConfigError,
    _attr,
    _ip,
    _ipv4_addresses,
    _port,
    parse_interface,
    read_links,
    valid_ifname,
)
from .fou import fou_ports


def tunnel_from_spec(spec, resource, errors):
    """Normalized desired tunnel from a TunnelInterface spec (camelCase keys) found at ``resource``
    (options.py); a Finding per problem goes to ``errors``."""
    n_errors = len(errors)
    ifname = spec.get("ifname")
    mode = spec.get("mode")
    if not isinstance(ifname, str) or not valid_ifname(ifname):
        errors.append(Finding(resource, "ifname", "ifname", "%r must be 1-%d characters without '/' or spaces"
                              % (ifname, IFNAME_MAX)))
    if mode not in TUNNEL_MODES:
        errors.append(Finding(resource, "mode", "tunnel-mode", "%r is not one of %s" % (mode, ", ".join(TUNNEL_MODES))))
    sport = _port(spec.get("encapSport"), resource, "encapSport", errors)
    dport = _port(spec.get("encapDport"), resource, "encapDport", errors)
    has_ports = spec.get("encapSport") is not None or spec.get("encapDport") is not None
    if mode == "fou" and (spec.get("encapSport") is None or spec.get("encapDport") is None):
        errors.append(Finding(resource, "encapSport/encapDport", "fou-ports", "mode fou needs both encap ports"))
    if mode in ("ipip", "gre") and has_ports:
        errors.append(Finding(resource, "encapSport/encapDport", "encap-ports-only-fou",
                              "mode %s takes no encap ports" % mode))
    underlay = spec.get("underlayInterface")
    if underlay is not None and (not isinstance(underlay, str) or not valid_ifname(underlay)):
        errors.append(Finding(resource, "underlayInterface", "ifname", "%r is not an interface name" % (underlay,)))
    key = spec.get("key")
    if key is not None and (mode != "gre" or isinstance(key, bool) or not isinstance(key, int)
                            or not 0 <= key < 2 ** 32):
        errors.append(Finding(resource, "key", "gre-key", "%r: a key is a 32-bit integer and only for mode gre"
                              % (key,)))
    local = _ip(spec.get("local"), resource, "local", errors)
    remote = _ip(spec.get("remote"), resource, "remote", errors)
    address = parse_interface(spec["address"], resource, "address", errors) if spec.get("address") else None
    peer = (parse_interface(spec["peerAddress"], resource, "peerAddress", errors) if spec.get("peerAddress")
            else None)
    mtu = spec.get("mtu")
    if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535):
        errors.append(Finding(resource, "mtu", "mtu", "%r must be an integer within 68-65535" % (mtu,)))
    if len(errors) != n_errors:
        return None
    return {"ifname": ifname, "mode": mode, "local": local, "remote": remote, "underlay": underlay,
            "encap_sport": sport, "encap_dport": dport, "key": key if mode == "gre" else None,
            "address": address, "peer_address": peer, "up": True, "owner": OWNER, "mtu": mtu}


def check_tunnel_set(tunnels, resources, errors):
    """Duplicate names and ipip/fou tunnels sharing (local, remote), which the kernel refuses; ``resources``
    are where each tunnel was found (options.py)."""
    seen, pairs = {}, {}
    for tun, resource in zip(tunnels, resources):
        if tun["ifname"] in seen:
            errors.append(Finding(resource, "ifname", "duplicate",
                                  "%s is also at %s" % (tun["ifname"], seen[tun["ifname"]])))
        seen.setdefault(tun["ifname"], resource)
        family = "gre" if tun["mode"] == "gre" else "ipip"
        pair = (family, tun["local"], tun["remote"], tun["key"])
        if pair in pairs:
            errors.append(Finding(resource, "", "tunnel-endpoint-collision",
                                  "%s %s->%s is also used by %s; the kernel allows one tunnel per outer address pair"
                                  % (family, tun["local"], tun["remote"], pairs[pair])))
        pairs.setdefault(pair, resource)


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
        resource = "tunnel %s" % tun["ifname"]
        if have is not None and have["alias"] != OWNER:
            errors.append(Finding(resource, "", "foreign-link", "a link with this name exists and is not managed by "
                                  "%s (IFLA_IFALIAS)" % OWNER))
        if state == "present" and tun["underlay"] and tun["underlay"] not in links:
            errors.append(Finding(resource, "underlayInterface", "underlay-missing",
                                  "interface %s does not exist" % tun["underlay"]))
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
