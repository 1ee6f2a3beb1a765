# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a node's data plane (WireGuard peers, tunnels, endpoint routes, owned loopback /32s) with netlink.

What the playbook does with sam_wireguard, sam_tunnel and sam_route (purge: true), for the two long-running
processes: the RR's reconcile loop (rr/reconcile.py) and the leaf agent (leaf/agent.py).  The same netlink
helpers as the modules plan and apply, so both paths converge on the same host state, and only objects
boma.mesh marked are ever removed.

With a ``DataplaneMemory`` a change costs what it changes (issue 19): the desired objects are compared with
the ones last applied, in-process, and only those that differ are read (one ``RTM_GETLINK`` by name per
tunnel), planned, applied and read back; nothing that did not change is dumped.  The whole path (dump every
link, address and route, plan with purge) runs at start-up, after any failure of the short path (the caller's
``on_fallback`` is told why) and whenever the caller asks for it (the periodic repair pass).
"""

import errno

from ..core.findings import Finding
from . import netlink
from .netlink.common import OWNER, _ipv4_addresses, _link_view
from .netlink.routes import _plan_loopback
from .netlink.tunnels import _check_tunnels, _tunnel_change, tunnel_view
from .node import ApplyError

LOOPBACK = "lo"
# plan_routes' order: new addresses before the routes that use them as source, deleted addresses last
ROUTE_RANK = {("address", "create"): 0, ("route", "delete"): 1, ("route", "create"): 2, ("route", "update"): 2,
              ("address", "delete"): 3}


class DataplaneMemory:
    """The data plane one long-running process last applied (desired objects only: never a private key)."""

    def __init__(self, on_fallback=None):
        self.last = None          # {"tunnels": {name: tun}, "routes": {dest: route}, "loopbacks": [...], "wg": ...}
        self.on_fallback = on_fallback
        self.full_runs = self.delta_runs = self.fallbacks = 0

    def forget(self):
        self.last = None


def desired_dataplane(state, wireguard, errors):
    """The normalized desired objects of a materialized state (pure but for reading the WireGuard key file)."""
    resources = state["resources"]
    tunnels, where, routes = [], [], []
    for resource, spec in netlink.resources_of_kind(resources, "TunnelInterface"):
        tun = netlink.tunnel_from_spec(spec, resource, errors)
        if tun:
            tunnels.append(tun)
            where.append(resource)
    netlink.check_tunnel_set(tunnels, where, errors)
    for resource, spec in netlink.resources_of_kind(resources, "IPv4Route"):
        route = netlink.route_from_spec(spec, resource, errors)
        if route:
            routes.append(route)
    owned = [r["spec"].get("exportPrefixes") or [] for r in resources if r["kind"] == "BGPRouter"]
    loopbacks = netlink.loopback_from_list(owned[0] if owned else [], "BGPRouter", "exportPrefixes", errors)
    wg = _wireguard_desired(resources, wireguard or {}, errors)
    return {"tunnels": {t["ifname"]: t for t in tunnels}, "routes": {r["destination"]: r for r in routes},
            "loopbacks": sorted(loopbacks), "wg": wg}


def _wireguard_desired(resources, wireguard, errors):
    """(desired, private key, interface) for the admitted claims' WireGuard peers, or None.

    None when the state has no WireGuardPeer: the interface then keeps its peers until the next playbook run
    (the role owns the interface; the service only follows claims admitted or revoked in between).  None too
    when a peer or the key is invalid (a Finding each in ``errors``).
    """
    specs = list(netlink.resources_of_kind(resources, "WireGuardPeer"))
    if not specs:
        return None
    before = len(errors)
    peers = [peer for peer in (netlink.peer_from_spec(spec, resource, errors) for resource, spec in specs) if peer]
    interface, local = specs[0][1].get("interface"), specs[0][1].get("localAddress")
    private = netlink.read_private_key(wireguard.get("key_file")) if wireguard.get("key_file") else None
    if private is None:
        errors.append(Finding("WireGuardPeer", "", "private-key-missing", "no private key (--wg-key-file %s; the "
                              "sam_rr role creates it)" % wireguard.get("key_file")))
        return None
    address = netlink.parse_interface("%s/32" % local, "WireGuardPeer", "localAddress", errors) if local else None
    if len(errors) != before:
        return None
    desired = {"public_key": netlink.public_key_of(private), "listen_port": wireguard.get("listen_port"),
               "address": address, "peers": peers}
    return desired, private, interface


def apply_dataplane(state, wireguard=None, memory=None, full=False):
    """Bring the data plane to ``state``; returns count strings ("tunnels +1 -0", ...) for the caller's log.

    Raises netlink.NetlinkConfigError (a desired object is invalid: nothing applied) or the netlink error of
    the whole path.  With ``memory`` (and not ``full``) only what changed since the last apply is touched.
    """
    errors = []
    desired = desired_dataplane(state, wireguard, errors)
    if errors:
        raise netlink.NetlinkConfigError(errors)
    public = _public(desired)
    if memory is not None and memory.last is not None and not full:
        try:
            out = _apply_changes(memory.last, desired)
            memory.last, memory.delta_runs = public, memory.delta_runs + 1
            return out
        except (netlink.NetlinkConfigError, netlink.Pyroute2Error, OSError, ApplyError) as exc:
            memory.fallbacks += 1
            if memory.on_fallback:
                memory.on_fallback("data-plane delta failed (%s: %s); whole path" % (type(exc).__name__, exc))
    if memory is not None:
        memory.last = None            # a failure below leaves nothing to compare with: the next run is whole
    out = _apply_whole(desired)
    if memory is not None:
        memory.last, memory.full_runs = public, memory.full_runs + 1
    return out


def _public(desired):
    wg = desired["wg"]
    return dict(desired, wg=None if wg is None else (wg[0], wg[2]))


def _apply_wireguard(ipr, wg):
    """sam_wireguard with purge for ``wg`` (_wireguard_desired); the plan, or None when there is no WireGuard."""
    if wg is None:
        return None
    desired, private, interface = wg
    actions = netlink.plan_wireguard(ipr, None, interface, desired, "present", True)
    netlink.apply_actions(ipr, actions, None, private_key=private, interface=interface)
    return actions


def _apply_whole(desired):
    """The modules' path: dump links, addresses and routes, plan with purge, apply."""
    ipr = netlink.open_ipr()            # this process's namespace: the service runs where FRR runs
    try:
        # WireGuard, then tunnels (ipip over WireGuard starts at its address), then the routes pointing at
        # both: the order of the role's tasks.
        wg = _apply_wireguard(ipr, desired["wg"])
        tunnel_actions = netlink.plan_tunnels(ipr, list(desired["tunnels"].values()), "present", True)
        netlink.apply_actions(ipr, tunnel_actions)
        route_actions = netlink.plan_routes(ipr, list(desired["routes"].values()), desired["loopbacks"],
                                            "present", True)
        netlink.apply_actions(ipr, route_actions)
    finally:
        ipr.close()
    return _counts(tunnel_actions, route_actions, wg)


def _counts(tunnel_actions, route_actions, wg_actions):
    counts = [_count("tunnels", tunnel_actions, "tunnel"), _count("routes", route_actions, "route")]
    return counts + ([_count("wireguard peers", wg_actions, "wireguard-peer")] if wg_actions is not None else [])


def _count(label, actions, kind):
    mine = [a for a in actions if a["kind"] == kind]
    added = sum(1 for a in mine if a["action"] in ("create", "update", "recreate"))
    removed = sum(1 for a in mine if a["action"] == "delete")
    return "%s +%d -%d" % (label, added, removed)


# -- the short path: only what changed --------------------------------------------------------------------
def _changed(old, new):
    """(names added or changed, names removed) between two {name: object} maps, in a stable order."""
    return sorted(k for k, v in new.items() if old.get(k) != v), sorted(k for k in old if k not in new)


def _apply_changes(last, desired):
    tun_new, tun_gone = _changed(last["tunnels"], desired["tunnels"])
    rt_new, rt_gone = _changed(last["routes"], desired["routes"])
    lo_changed = last["loopbacks"] != desired["loopbacks"]
    wg_changed = _public(desired)["wg"] != last["wg"]
    if not (tun_new or tun_gone or rt_new or rt_gone or lo_changed or wg_changed):
        return _counts([], [], [] if desired["wg"] is not None else None)
    # Strict checking: the kernel itself filters a dump by interface (an address read stays one link's).
    ipr = netlink.open_ipr(strict=True)
    try:
        wg = _apply_wireguard(ipr, desired["wg"]) if wg_changed else ([] if desired["wg"] is not None else None)
        # A revoked leaf's routes go before its tunnel (deleting a link takes its routes with it, and a delete
        # of a route that is gone already is refused); new routes come after the tunnels they use.
        gone = [{"action": "delete", "kind": "route", "name": dest, "before": last["routes"][dest], "after": None}
                for dest in rt_gone]
        netlink.apply_actions(ipr, gone, links={})
        tunnel_actions = _tunnels_delta(ipr, [desired["tunnels"][n] for n in tun_new], tun_gone)
        route_actions = gone + _routes_delta(ipr, last, desired, rt_new, lo_changed)
    finally:
        ipr.close()
    return _counts(tunnel_actions, route_actions, wg)


def read_links_named(ipr, names):
    """{ifname: link view} of the named links that exist: one RTM_GETLINK each, no dump."""
    out = {}
    for name in sorted(names):
        try:
            (link,) = ipr.link("get", ifname=name)
        except netlink.Pyroute2Error as exc:
            if getattr(exc, "code", None) == errno.ENODEV:
                continue
            raise
        view = _link_view(link)
        out[view["ifname"]] = view
    return out


def _tunnels_of(ipr, links):
    by_index = {v["index"]: name for name, v in links.items()}
    return {name: tunnel_view(v, by_index, [a["address"] for a in _ipv4_addresses(ipr, v["index"])])
            for name, v in links.items() if v["kind"] in ("ipip", "gre")}


def _tunnels_delta(ipr, wanted, gone):
    """Create, change or delete the named tunnels only; each is read back and compared afterwards."""
    if not wanted and not gone:
        return []
    names = {t["ifname"] for t in wanted} | set(gone) | {t["underlay"] for t in wanted if t["underlay"]}
    links = read_links_named(ipr, names)
    _check_tunnels(links, wanted, "present")
    current = _tunnels_of(ipr, links)
    actions = [a for a in (_tunnel_change(current.get(t["ifname"]), t) for t in wanted) if a]
    actions += [{"action": "delete", "kind": "tunnel", "name": name, "before": current[name], "after": None}
                for name in gone if name in current and current[name]["owner"] == OWNER]
    # A new fou tunnel's port is opened here; a port a deleted fou tunnel leaves unused is closed by the whole
    # path (the repair pass), which sees every link that might still use it.
    ports = sorted({t["encap_dport"] for t in wanted if t["mode"] == "fou"})
    open_now = netlink.fou_ports(None) if ports else ()
    first = [{"action": "create", "kind": "fou-port", "name": str(port), "before": None,
              "after": {"port": port, "ipproto": 4}} for port in ports if port not in open_now]
    netlink.apply_actions(ipr, first + actions, links=links)
    after = _tunnels_of(ipr, read_links_named(ipr, names))
    for tun in wanted:
        if _tunnel_change(after.get(tun["ifname"]), tun) is not None:
            raise ApplyError("tunnel %s differs from the state after the delta" % tun["ifname"])
    for name in gone:
        if name in after and after[name]["owner"] == OWNER:
            raise ApplyError("tunnel %s is still there after the delta" % name)
    return actions


def _routes_delta(ipr, last, desired, new, lo_changed):
    """Replace the new or changed routes (acknowledged one by one) and set the loopbacks."""
    if not new and not lo_changed:
        return []
    routes = [desired["routes"][dest] for dest in new]
    links = read_links_named(ipr, {r["device"] for r in routes} | ({LOOPBACK} if lo_changed else set()))
    missing = [Finding("route %s" % r["destination"], "device", "device-missing",
                       "interface %s does not exist" % r["device"]) for r in routes if r["device"] not in links]
    if missing:
        raise netlink.NetlinkConfigError(missing)
    actions = _plan_loopback(ipr, links, desired["loopbacks"], "present", True, LOOPBACK) if lo_changed else []
    actions += [{"action": "update" if dest in last["routes"] else "create", "kind": "route", "name": dest,
                 "before": last["routes"].get(dest), "after": dict(desired["routes"][dest])} for dest in new]
    actions.sort(key=lambda a: ROUTE_RANK[(a["kind"], a["action"])])
    netlink.apply_actions(ipr, actions, links=links)
    return actions
