# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Endpoint routes (protocol ROUTE_PROTO) and the owned /32s on the loopback (label lo:sam)."""

import ipaddress

from ...core.findings import Finding
from .common import (
    IFNAME_MAX,
    LO_LABEL_SUFFIX,
    ROUTE_PROTO,
    RT_SCOPE_LINK,
    RT_SCOPE_NOWHERE,
    RT_TABLE_MAIN,
    NetlinkConfigError,
    _ip,
    _ipv4_addresses,
    parse_interface,
    read_links,
    valid_ifname,
)
from .options import OPTIONS


def route_from_spec(spec, resource, errors):
    """Normalized desired route from an IPv4Route spec found at ``resource`` (options.py); a Finding per problem
    goes to ``errors``."""
    n_errors = len(errors)
    dest = spec.get("destination")
    try:
        dest = str(ipaddress.IPv4Network(str(dest), strict=True))
    except ValueError:
        errors.append(Finding(resource, "destination", "ipv4-prefix", "%r is not an IPv4 prefix" % (dest,)))
    device = spec.get("device")
    if not isinstance(device, str) or not valid_ifname(device):
        errors.append(Finding(resource, "device", "ifname", "%r is not an interface name (1-%d characters)"
                              % (device, IFNAME_MAX)))
    source = _ip(spec["source"], resource, "source", errors) if spec.get("source") else None
    if len(errors) != n_errors:
        return None
    return {"destination": dest, "device": device, "source": source}


def check_route_set(routes, resources, errors):
    """Each destination once (the main table holds one route per prefix); ``resources`` are where each route
    was found (options.py)."""
    seen = {}
    for route, resource in zip(routes, resources):
        dest = route["destination"]
        if dest in seen:
            errors.append(Finding(resource, "destination", "duplicate", "%s is also at %s" % (dest, seen[dest])))
        seen.setdefault(dest, resource)


def loopback_from_list(values, resource, field, errors):
    """The owned /32s of list ``field`` (found at ``resource``); a Finding per bad item goes to ``errors``."""
    out = []
    for pos, value in enumerate(values or []):
        path = "%s[%d]" % (field, pos)
        iface = parse_interface(value, resource, path, errors)
        if iface and not iface.endswith("/32"):
            errors.append(Finding(resource, path, "host-prefix", "%s: loopback addresses are /32" % iface))
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
        errors.append(Finding(OPTIONS, "loopbackInterface", "device-missing", "interface %s does not exist" % lo))
    if state == "present":
        errors += [Finding("route %s" % r["destination"], "device", "device-missing",
                           "interface %s does not exist" % r["device"]) for r in routes if r["device"] not in links]
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
