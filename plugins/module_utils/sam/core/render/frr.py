# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""FRR (8.4+) configuration for a node's materialized BGP state.

RR: one peer-group per admitted leaf, ``<peerGroup>@<leafID>``, defined before its only ``bgp listen range``,
the leaf's tunnel /32 (FRR refuses the other order): route-reflector client, next-hop-self, soft
reconfiguration inbound, and ``prefix-list SAM-LEAF-<leafID> in``, the leaf's owned /32s and nothing else.
So a leaf can announce only its own /32s (a union prefix-list on one shared group would let one leaf announce
another's), and an unadmitted or revoked leaf does not even get a session.  A leaf admitted or revoked adds or
removes its own lines and moves none (an O(1) delta), and bgpd's cost of a change does not grow with the
number of leaves (docs/scale.md: a shared route-map with one entry per leaf did).
Leaf: one neighbor per RR with a short connect timer (RRs never dial dynamic
peers) and an export route-map that lets out only the owned /32s.
Timer presets of the documents (materialize: ``timers``) become ``timers K H``
per neighbor / peer-group.  RR-to-RR peering (BGPPeer ``routeReflectorPeer``,
materialize ``rr_peering``): a plain iBGP neighbor whose routes pass only when
they are an admitted claim's /32 (SAM-RR-IN on the SAM-ADMITTED list), at a lower local-preference.
"""

import ipaddress

from .. import identifiers
from ..memo import ByIdentity, Memo
from . import RenderError, identifier, peer_node, resource_label

DEFAULTS = {
    "bfd": False,              # neighbor/peer-group bfd (needs bfdd running)
    "listen_limit": 1000,      # bgp listen limit when the BGPDynamicPeer sets none
    "route_map_delay": 1,      # seconds; FRR's default 5 s delays a new leaf's admission after a reload
    "connect_timer": 2,        # leaf -> RR connect retry (s); the RR never dials a dynamic peer
    "announce": (),            # extra prefixes a leaf originates (tests announce hostile routes with it)
    "export_any": False,       # leaf exports everything it originates (tests only)
    "leaf_routes": "all",      # RR -> leaves: every admitted /32 ("all") or the pools' aggregates ("aggregate")
}
LEAF_ROUTES = ("all", "aggregate")
DENY_SEQ = 65535
# Routes learned from the other RR are a fallback: a path straight from the owning leaf (local-pref 100)
# wins on the RR, and a leaf that reaches both RRs prefers the RR that has the leaf directly.
RR_PEER_LOCAL_PREF = 50
RR_IN = "SAM-RR-IN"
RR_ADMITTED = "SAM-ADMITTED"
TO_LEAVES = "SAM-TO-LEAVES"     # leaf_routes: aggregate: what the RR sends each leaf (the pools' aggregates)
# <BGPDynamicPeer peerGroup>@<leafID>: '@' is in neither identifier (core/identifiers.IDENTIFIER), so a
# leaf's peer-group name says which BGPDynamicPeer it belongs to and never collides with another's.
GROUP_SEPARATOR = "@"


__all__ = ["RenderError", "lint_frr", "render_frr"]


def _addr(value, resource, field):
    """Normalized IPv4 address text; RenderError naming the field for anything else (no text is copied raw)."""
    try:
        return str(ipaddress.IPv4Address(value))
    except (ValueError, TypeError):
        raise RenderError("%s %s [ipv4-address] %r is not an IPv4 address" % (resource, field, value)) from None


def _prefix(value, resource, field):
    try:
        if not isinstance(value, str):      # ipaddress takes an int too: 7 would be 0.0.0.7/32
            raise TypeError(value)
        return _PREFIXES.get(value) or _PREFIXES.put(value, str(ipaddress.IPv4Network(value)))
    except (ValueError, TypeError):
        raise RenderError("%s %s [ipv4-prefix] %r is not an IPv4 prefix" % (resource, field, value)) from None


def _by_kind(state, kind):
    return [r for r in state.get("resources", ()) if r.get("kind") == kind]


def render_frr(state, options=None):
    opts = dict(DEFAULTS, **(options or {}))
    routers = _by_kind(state, "BGPRouter")
    if len(routers) != 1:
        raise RenderError("node %s: expected exactly one BGPRouter in the state, found %d"
                          % (state.get("node"), len(routers)))
    router = routers[0]["spec"]
    if state.get("node") is not None:
        identifier(state["node"], "state", "node")
    # hostname and ip forwarding belong to the host, not to the SAM BGP state: the
    # apply step (apply/frr.py) carries the running values over unchanged.
    lines = ["!"]
    if state.get("role") == "rr":
        body = _rr(state, router, opts)
    else:
        body = _leaf(state, router, opts)
    return "\n".join(lines + body) + "\n"


def _router_head(router, opts):
    head = ["router bgp %d" % router["asn"]]
    if router.get("routerID"):
        head.append(" bgp router-id %s" % _addr(router["routerID"], "BGPRouter", "spec.routerID"))
    head += [" no bgp ebgp-requires-policy", " no bgp default ipv4-unicast", " no bgp network import-check"]
    return head


def _timers(name, spec):
    timers = spec.get("timers") or {}
    if timers.get("keepalive") and timers.get("holdTime"):
        return [" neighbor %s timers %d %d" % (name, timers["keepalive"], timers["holdTime"])]
    return []


def _rr(state, router, opts):
    peers = _by_kind(state, "BGPDynamicPeer")
    rr_peers = [p for p in _by_kind(state, "BGPPeer") if p["spec"].get("routeReflectorPeer")]
    bgp, afi, lists, owned = _router_head(router, opts), [], [], {}
    _one_neighbor_per_leaf(peers)
    pools = _leaf_aggregates(peers, opts)
    lists += ["ip prefix-list %s seq %d permit %s" % (TO_LEAVES, 5 * (i + 1), p) for i, p in enumerate(pools)]
    afi += ["  aggregate-address %s" % p for p in pools]
    for peer in peers:
        label = resource_label(peer)
        spec, group = peer["spec"], identifier(peer["spec"]["peerGroup"], label, "spec.peerGroup")
        if spec.get("routeReflectorClient") and spec.get("peerASN") != router["asn"]:
            raise RenderError("BGPDynamicPeer/%s [rr-client-asn] peerASN %s must equal the local ASN %s"
                              % (group, spec.get("peerASN"), router["asn"]))
        ranges = [ipaddress.IPv4Network(r) for r in spec.get("listenRanges", ())]
        if not ranges:
            raise RenderError("BGPDynamicPeer/%s [listen-range-required] no listen range" % group)
        # Two RRs sharing a cluster-id drop each other's reflected routes (RFC 4456: their own id is in
        # CLUSTER_LIST), which is what RR peering needs them to accept: each RR keeps its router-id then.
        if spec.get("clusterID") and not rr_peers and " bgp cluster-id" not in "\n".join(bgp):
            bgp.append(" bgp cluster-id %s" % _addr(spec["clusterID"], label, "spec.clusterID"))
        for item in _admitted(spec, ranges, label):
            leaf_lists, leaf_bgp, leaf_afi = _leaf_group(group, spec, item, label, opts)
            lists.extend(leaf_lists)
            bgp.extend(leaf_bgp)
            afi.extend(leaf_afi)
            for prefix in item["prefixes"]:
                owned[_prefix(prefix, label, "spec.admitted")] = item["leafID"]
    head, maps = [], []
    if peers:
        limit = max((p["spec"].get("listenLimit") or opts["listen_limit"]) for p in peers)
        bgp.append(" bgp listen limit %d" % limit)
        # A global command in FRR 8.4 (not under router bgp).
        head = ["bgp route-map delay-timer %d" % opts["route_map_delay"], "!"]
    if rr_peers:
        rr_lists, maps = _rr_in_map(owned)
        lists += rr_lists
        for peer in sorted(rr_peers, key=lambda r: int(ipaddress.IPv4Address(r["spec"]["address"]))):
            peer_bgp, peer_afi = _rr_peer(peer, opts)
            bgp += peer_bgp
            afi += peer_afi
    return head + lists + (["!"] if lists else []) + maps + bgp + _afi_block(afi)


def _leaf_aggregates(peers, opts):
    """The pools an RR sends its leaves instead of every admitted /32 (``leaf_routes: aggregate``); [] for "all".

    Every /32 an RR reflects to a leaf already has the RR as next hop (next-hop-self force), so one aggregate per
    pool forwards the same way, and each leaf's update-group then holds one route instead of N: bgpd's memory per
    session stayed flat up to 1,000 leaves, not at 5,000 (docs/scale.md).  Not summary-only: the other RR still
    needs the /32s."""
    mode = opts["leaf_routes"]
    if mode not in LEAF_ROUTES:
        raise RenderError("[leaf-routes] leaf_routes must be one of %s, not %r" % (", ".join(LEAF_ROUTES), mode))
    if mode == "all":
        return []
    pools = set()
    for peer in peers:
        label = resource_label(peer)
        allowed = peer["spec"].get("allowedPrefixes") or ()
        if not allowed:
            raise RenderError("%s spec.allowedPrefixes [leaf-routes] leaf_routes aggregate needs the pools here"
                              % label)
        pools.update(_prefix(p, label, "spec.allowedPrefixes[%d]" % i) for i, p in enumerate(allowed))
    return sorted(pools, key=_net_key)


def _admitted(spec, ranges, label):
    """The admitted items that get a session, by tunnel address: inside a listen range, one per address, owning
    something (anything else gets no peer-group, hence no session)."""
    items = []
    for index, item in enumerate(spec.get("admitted", ())):
        address = _CHECKED_ITEMS.get(item)
        if address is None:
            identifier(item.get("leafID"), label, "spec.admitted[%d].leafID" % index)
            _addr(item.get("neighbor"), label, "spec.admitted[%d].neighbor" % index)
            address = _CHECKED_ITEMS.put(item, ipaddress.IPv4Address(item["neighbor"]))
        items.append((int(address), address, item))
    out, seen = [], set()
    for _key, address, item in sorted(items, key=lambda a: a[0]):
        if address in seen or not item.get("prefixes") or not any(address in r for r in ranges):
            continue
        seen.add(address)
        out.append(item)
    return out


# An admitted item (materialize's, shared while its claim is unchanged) -> its neighbor address, once its leafID
# and neighbor were checked: a render at 5,000 leaves spent a third of its time parsing them again (issue 19).
_CHECKED_ITEMS = ByIdentity()


# Each admitted leaf's lines, by everything they are made of: an RR renders every leaf again on each change and
# almost all are as they were (a third of the render at 1,000 leaves, docs/scale.md).
_LEAF_LINES = Memo()


def _leaf_group(group, spec, item, label, opts):
    """_leaf_lines, from _LEAF_LINES when this leaf was rendered the same way before (lines are tuples)."""
    timers = spec.get("timers") or {}
    key = (group, spec.get("peerASN"), timers.get("keepalive"), timers.get("holdTime"),
           bool(spec.get("routeReflectorClient")), bool(opts["bfd"]), item.get("leafID"), item.get("neighbor"),
           tuple(item.get("prefixes") or ()), opts["leaf_routes"])
    hit = _LEAF_LINES.get(key)
    if hit is None:
        # an unhashable value is rendered (and refused) every time: put() does not keep it
        hit = _LEAF_LINES.put(key, tuple(tuple(lines) for lines in _leaf_lines(group, spec, item, label, opts)))
    return hit


def _leaf_lines(group, spec, item, label, opts):
    """(prefix-list, router and address-family lines) of one admitted leaf: its own peer-group, whose only
    listen range is the leaf's tunnel /32, admitting only the leaf's /32s inbound.

    One peer-group per leaf, not one route-map entry per leaf in a shared map: FRR 8.4 processes every entry
    of every route-map again on any prefix-list or route-map change and reads such a configuration in time
    cubic in the entries (docs/scale.md), while a peer-group's prefix-list costs what it changes."""
    name = "%s%s%s" % (group, GROUP_SEPARATOR, item["leafID"])
    plist = "SAM-LEAF-" + item["leafID"]
    # Owned addresses are /32s: an exact entry matches only that host route
    # (FRR refuses "ge 32" on a /32 as len < ge is required).
    prefixes = sorted((_prefix(p, label, "spec.admitted") for p in item["prefixes"]), key=_net_key)
    lists = ["ip prefix-list %s seq %d permit %s" % (plist, 5 * (i + 1), p) for i, p in enumerate(prefixes)]
    bgp = [" neighbor %s peer-group" % name, " neighbor %s remote-as %d" % (name, spec["peerASN"])]
    bgp += _timers(name, spec)
    if opts["bfd"]:
        bgp.append(" neighbor %s bfd" % name)
    bgp.append(" bgp listen range %s/32 peer-group %s" % (_addr(item["neighbor"], label, "spec.admitted"), name))
    afi = ["  neighbor %s activate" % name]
    if spec.get("routeReflectorClient"):
        afi.append("  neighbor %s route-reflector-client" % name)
    # Leaves reach each other only through the RRs (tunnels go to RRs), so reflected
    # routes must carry the RR as next hop.
    afi += ["  neighbor %s next-hop-self force" % name, "  neighbor %s soft-reconfiguration inbound" % name,
            "  neighbor %s prefix-list %s in" % (name, plist)]
    if opts["leaf_routes"] == "aggregate":
        afi.append("  neighbor %s prefix-list %s out" % (name, TO_LEAVES))
    return lists, bgp, afi


def _one_neighbor_per_leaf(peers):
    """Refuse one leafID admitted for two neighbors (e.g. by two policies): they would share SAM-LEAF-<leafID>,
    so either leaf could announce the other's /32s."""
    owners = {}
    for peer in peers:
        for item in peer["spec"].get("admitted", ()):
            leaf, neighbor = item.get("leafID"), item.get("neighbor")
            first = owners.setdefault(leaf, (neighbor, resource_label(peer)))
            if first[0] != neighbor:
                raise RenderError("%s spec.admitted [duplicate-leaf-id] leafID %s is admitted for neighbors %s (%s) "
                                  "and %s: they would share one prefix-list" % (
                                      resource_label(peer), identifiers.show(leaf), first[0], first[1], neighbor))


def _rr_in_map(owned):
    """(prefix-list lines, route-map lines) for routes from the other RR: only admitted claims' /32s, at a lower
    local-preference.  The other RR already bound each /32 to its owner; this RR refuses any /32 that no claim
    it admitted owns (an unadmitted or revoked leaf, a pool aggregate, a default, an underlay).  One list of
    every admitted /32, each entry's sequence its address, so a leaf admitted or revoked is one entry."""
    lists, seqs = [], {}
    for prefix in sorted(owned, key=_net_key):
        seq = max(_net_key(prefix)[0], 1)
        if seqs.setdefault(seq, prefix) != prefix:
            raise RenderError("[rr-in-sequence] %s (leaf %s) and %s share prefix-list %s sequence %d"
                              % (prefix, identifiers.show(owned[prefix]), seqs[seq], RR_ADMITTED, seq))
        lists.append("ip prefix-list %s seq %d permit %s" % (RR_ADMITTED, seq, prefix))
    maps = []
    if lists:   # a match on a prefix-list with no entry is refused by lint_frr: with no claim, deny only
        maps = ["route-map %s permit 10" % RR_IN, " match ip address prefix-list %s" % RR_ADMITTED,
                " set local-preference %d" % RR_PEER_LOCAL_PREF, "exit", "!"]
    return lists, maps + ["route-map %s deny %d" % (RR_IN, DENY_SEQ), "exit", "!"]


def _peer_head(peer):
    """(address, remote-as and description lines, update-source lines) of a BGPPeer; identifiers checked."""
    spec, label = peer["spec"], resource_label(peer)
    addr = _addr(spec["address"], label, "spec.address")
    bgp = [" neighbor %s remote-as %d" % (addr, spec["remoteASN"]),
           " neighbor %s description %s" % (addr, peer_node(peer))]
    if spec.get("localAddress"):
        bgp.append(" neighbor %s update-source %s" % (addr, _addr(spec["localAddress"], label, "spec.localAddress")))
    return addr, bgp


def _rr_peer(peer, opts):
    spec = peer["spec"]
    addr, bgp = _peer_head(peer)
    bgp += _timers(addr, spec)
    if opts["bfd"]:
        bgp.append(" neighbor %s bfd" % addr)
    # next-hop-self force: a reflected route otherwise keeps the leaf's tunnel address as next hop, which
    # the other RR cannot reach exactly when RR peering is needed (that leaf reaches only this RR).
    afi = ["  neighbor %s activate" % addr, "  neighbor %s next-hop-self force" % addr,
           "  neighbor %s soft-reconfiguration inbound" % addr, "  neighbor %s route-map %s in" % (addr, RR_IN)]
    return bgp, afi


def _afi_block(afi):
    if not afi:    # FRR shows no empty address-family block, so rendering one would never verify as converged
        return ["exit", "!"]
    return [" !", " address-family ipv4 unicast"] + afi + [" exit-address-family", "exit", "!"]


def _net_key(text):
    key = _NET_KEYS.get(text)
    if key is None:
        net = ipaddress.IPv4Network(text)
        key = _NET_KEYS.put(text, (int(net.network_address), net.prefixlen))
    return key


_NET_KEYS = Memo()       # prefix text -> sort key: every admitted /32 is sorted again on each change
_PREFIXES = Memo()       # (value) -> normalized prefix text, for the strings _prefix was given before


def _leaf(state, router, opts):
    owned = sorted(router.get("exportPrefixes", ()), key=_net_key)
    announce = owned + sorted((p for p in opts["announce"] if p not in owned), key=_net_key)
    out = ["ip prefix-list SAM-OWN seq %d permit %s" % (5 * (i + 1), _prefix(p, "BGPRouter", "spec.exportPrefixes"))
           for i, p in enumerate(owned)]
    if owned or opts["export_any"]:
        out += ["!", "route-map SAM-EXPORT permit 10"]
        if not opts["export_any"]:
            out.append(" match ip address prefix-list SAM-OWN")
        out.append("exit")
    # A leaf that owns nothing (a revoked one's teardown state) exports nothing: the deny entry alone, since
    # a match on a prefix-list with no entry is refused by lint_frr (FRR would take it as "match nothing").
    out += ["!", "route-map SAM-EXPORT deny %d" % DENY_SEQ, "exit", "!"]
    bgp, afi = _router_head(router, opts), []
    afi += ["  network %s" % _prefix(p, "BGPRouter", "spec.exportPrefixes") for p in announce]
    for peer in sorted(_by_kind(state, "BGPPeer"), key=lambda r: int(ipaddress.IPv4Address(r["spec"]["address"]))):
        spec = peer["spec"]
        addr, head = _peer_head(peer)
        bgp += head
        bgp += _timers(addr, spec)
        bgp.append(" neighbor %s timers connect %d" % (addr, opts["connect_timer"]))
        if opts["bfd"]:
            bgp.append(" neighbor %s bfd" % addr)
        afi += ["  neighbor %s activate" % addr, "  neighbor %s route-map SAM-EXPORT out" % addr]
    return out + bgp + _afi_block(afi)


def lint_frr(text):
    """Semantic problems FRR 8.4 accepts silently (vtysh -C checks grammar only).

    An undefined route-map or prefix-list denies everything (or, for a
    prefix-list inside a route-map, matches nothing); a listen range before its
    peer-group is refused at load time.
    """
    problems, route_maps, prefix_lists, groups = [], set(), set(), set()
    used_maps, used_lists = [], []
    for number, raw in enumerate(text.splitlines(), 1):
        # Most lines of an RR's configuration are a neighbour's plain settings: skip them before splitting (a
        # third of the Python time of a change at 5,000 leaves was this loop, issue 19).
        if "route-map" not in raw and "prefix-list" not in raw and "peer-group" not in raw:
            continue
        words = raw.split()
        if raw.startswith("route-map ") and len(words) >= 3:
            route_maps.add(words[1])
        elif raw.startswith("ip prefix-list ") and len(words) >= 3:
            prefix_lists.add(words[2])
        elif len(words) == 3 and words[0] == "neighbor" and words[2] == "peer-group":
            groups.add(words[1])
        elif words[:3] == ["bgp", "listen", "range"] and len(words) == 6 and words[5] not in groups:
            problems.append("line %d: bgp listen range uses peer-group %s before it is defined" % (number, words[5]))
        elif words[:1] == ["neighbor"] and len(words) == 5 and words[2] == "route-map":
            used_maps.append((number, words[3]))
        elif words[:1] == ["neighbor"] and len(words) == 5 and words[2] == "prefix-list":
            used_lists.append((number, words[3]))
        elif words[:4] == ["match", "ip", "address", "prefix-list"] and len(words) == 5:
            used_lists.append((number, words[4]))
    problems += ["line %d: route-map %s is not defined" % (n, m) for n, m in used_maps if m not in route_maps]
    problems += ["line %d: prefix-list %s is not defined" % (n, p) for n, p in used_lists if p not in prefix_lists]
    return problems
