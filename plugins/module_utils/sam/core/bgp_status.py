# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Observed state of a BGP dynamic-peer group, from FRR 8.4 JSON outputs, against a BGPDynamicPeer.

``dynamic_peer_status(outputs, dynamic_peer_spec)`` takes already-parsed vtysh
JSON and returns a plain dict; it never raises on odd input (missing keys,
empty or mistyped values) and reports what can be derived.  The outputs are:

- ``summary``: ``show bgp ipv4 unicast summary json`` (``peers.<addr>.{dynamicPeer,
  state, pfxRcd, peerUptime}`` at the top; ``show bgp summary json`` nests the same
  under ``ipv4Unicast``, which is accepted too);
- ``neighbors``: ``show bgp neighbors json`` (``<addr>.{peerGroup, peerSubnetRangeGroup,
  bgpState, addressFamilyInfo.ipv4Unicast.acceptedPrefixCounter}``);
- ``peer_group``: ``show bgp peer-group json`` (``<G>.dynamicRanges.<AF>.ranges``,
  ``<G>.members.<addr>.{status, dynamic}``).  The RR renders one peer-group per admitted leaf,
  ``<G>@<leafID>`` (core/render/frr.py); those groups are read together as the group ``<G>``;
- ``received`` / ``filtered``: ``{addr: show bgp ipv4 unicast neighbors ADDR
  received-routes json / filtered-routes json}``.  FRR 8.4 lists the routes of
  both under ``receivedRoutes`` (keyed by prefix) with ``totalPrefixCounter``;
  received-routes also has ``filteredPrefixCounter``.  Without
  ``soft-reconfiguration inbound`` both are ``{"warning": "..."}``.
"""

import ipaddress
from dataclasses import dataclass

from .admission import RouteAdmission

ROUTE_TABLE_KEYS = ("receivedRoutes", "filteredRoutes", "routes", "advertisedRoutes")
ESTABLISHED = "Established"
# A route bgpd filtered although the desired state (RouteAdmission) would admit it: policy drift.
ADMISSIBLE = "admissible"


@dataclass(frozen=True)
class _Claim:
    """The few claim fields RouteAdmission reads, built from a spec.admitted entry."""

    name: str
    ref: str
    tunnel_address: object
    owned_nets: tuple


def _dict(value):
    return value if isinstance(value, dict) else {}


def _list(value):
    return value if isinstance(value, list) else []


def _int(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _text(value):
    return value if isinstance(value, str) and value else None


def _address(value):
    """Canonical address text (any /len dropped), or the stripped text when it is not an IP address."""
    text = str(value).strip()
    try:
        return str(ipaddress.ip_address(text.partition("/")[0]))
    except ValueError:
        return text


def _address_key(address):
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return (9, 0, address)
    return (addr.version, int(addr), "")


def _network(value):
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        return None


def _prefix_key(prefix):
    net = _network(prefix)
    if net is None:
        return (9, 0, 0, prefix)
    return (net.version, int(net.network_address), net.prefixlen, "")


def _unique(items):
    seen, out = set(), []
    for item in items:
        if item is not None and item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _spec_of(dynamic_peer):
    """(spec, resource name) from a BGPDynamicPeer resource or its bare spec."""
    peer = _dict(dynamic_peer)
    if isinstance(peer.get("spec"), dict):
        return peer["spec"], _text(_dict(peer.get("metadata")).get("name"))
    return peer, None


def _summary_peers(summary):
    summary = _dict(summary)
    if "peers" not in summary:
        summary = _dict(summary.get("ipv4Unicast"))
    return {_address(addr): _dict(peer) for addr, peer in _dict(summary.get("peers")).items()}


def _neighbors(neighbors):
    return {_address(addr): info for addr, info in _dict(neighbors).items()
            if isinstance(info, dict) and ("bgpState" in info or "peerGroup" in info or "remoteAs" in info)}


def _group_ranges(group):
    ranges = []
    for family in _dict(group.get("dynamicRanges")).values():
        ranges.extend(str(r) for r in _list(_dict(family).get("ranges")))
    return ranges


def _normal_range(value):
    net = _network(value)
    return str(net) if net is not None else str(value).strip()


def _in_ranges(address, ranges):
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return False
    nets = [n for n in (_network(r) for r in ranges) if n is not None and n.version == addr.version]
    return any(addr in net for net in nets)


def _in_group(value, name):
    """A peer-group name that is the group ``name`` or one of its per-leaf groups (``name@leafID``)."""
    return isinstance(value, str) and bool(name) and (value == name or value.startswith(name + "@"))


def _groups_of(name, group_json):
    return {key: value for key, value in group_json.items() if _in_group(key, name) and isinstance(value, dict)}


def _merged(groups):
    """One group view of the per-leaf groups: every listen range and member, in name order."""
    ranges, members = [], {}
    for key in sorted(groups):
        ranges += _group_ranges(groups[key])
        members.update(_dict(groups[key].get("members")))
    return {"dynamicRanges": {"IPv4": {"ranges": ranges}}, "members": members}


def _members(name, group, neighbors, summary, ranges):
    """{address: (group member entry, neighbor entry, summary entry)} of every peer in the group."""
    members = {_address(addr): _dict(entry) for addr, entry in _dict(group.get("members")).items()}
    for addr, info in neighbors.items():
        if _in_group(info.get("peerGroup"), name) or _in_group(_dict(_dict(info.get("addressFamilyInfo")).get(
                "ipv4Unicast")).get("peerGroupMember"), name):
            members.setdefault(addr, {})
    for addr, peer in summary.items():
        # Without bgpd's own word (neighbors), a dynamic peer inside the group's listen ranges belongs to it.
        if peer.get("dynamicPeer") is True and addr not in neighbors and _in_ranges(addr, ranges):
            members.setdefault(addr, {})
    return {addr: (entry, neighbors.get(addr, {}), summary.get(addr, {})) for addr, entry in members.items()}


def _route_prefix(key, value):
    net = _network(key)
    if net is not None:
        return str(net)
    if isinstance(value, list):  # newer FRR may list the paths of a prefix
        value = next((v for v in value if isinstance(v, dict)), {})
    value = _dict(value)
    net = _network(value.get("network") or value.get("prefix") or "")
    if net is None and value.get("addrPrefix") is not None and value.get("prefixLen") is not None:
        net = _network("%s/%s" % (value.get("addrPrefix"), value.get("prefixLen")))
    return str(net) if net is not None else None


def _routes(output):
    """(sorted prefixes or None, totalPrefixCounter or None, filteredPrefixCounter or None, warning or None)."""
    output = _dict(output)
    table = next((output[k] for k in ROUTE_TABLE_KEYS if isinstance(output.get(k), (dict, list))), None)
    prefixes = None
    if isinstance(table, dict):
        prefixes = [_route_prefix(k, v) for k, v in table.items()]
    elif isinstance(table, list):
        prefixes = [_route_prefix(None, v) for v in table]
    if prefixes is not None:
        prefixes = sorted(_unique(prefixes), key=_prefix_key)
    warning = _text(output.get("warning")) or _text(output.get("error"))
    return prefixes, _int(output.get("totalPrefixCounter")), _int(output.get("filteredPrefixCounter")), warning


def _first(*values):
    return next((v for v in values if v is not None), None)


def _counts(neighbor, summary, received_out, filtered_out):
    """(received, accepted, rejected, rejected prefixes, warnings) of one peer."""
    got, got_total, got_filtered, got_warning = _routes(received_out)
    bad, bad_total, bad_warning = (_routes(filtered_out)[i] for i in (0, 1, 3))
    received = _first(got_total, len(got) if got is not None else None)
    rejected = _first(bad_total, len(bad) if bad is not None else None, got_filtered)
    family = _dict(_dict(neighbor.get("addressFamilyInfo")).get("ipv4Unicast"))
    accepted = _first(_int(summary.get("pfxRcd")), _int(family.get("acceptedPrefixCounter")))
    if accepted is None and received is not None and rejected is not None:
        accepted = max(received - rejected, 0)
    if rejected is None and received is not None and accepted is not None:
        rejected = max(received - accepted, 0)
    warnings = ["%s: %s" % (what, text) for what, text in
                (("received-routes", got_warning), ("filtered-routes", bad_warning)) if text]
    return received, accepted, rejected, bad or [], warnings


def _admitted(spec):
    """{neighbor address: admitted entry} of spec.admitted (entries without a neighbor are skipped)."""
    out = {}
    for entry in _list(spec.get("admitted")):
        item = _dict(entry)
        if item.get("neighbor") is not None:
            out.setdefault(_address(item["neighbor"]), item)
    return out


def _admission(spec, admitted):
    """A RouteAdmission mirroring the desired import policy, or None when spec.allowedPrefixes is unknown."""
    pools = [n for n in (_network(p) for p in _list(spec.get("allowedPrefixes"))) if n is not None and n.version == 4]
    if not pools:
        return None
    claims = []
    for address, item in admitted.items():
        try:
            tunnel = ipaddress.IPv4Network(address + "/32")
        except ValueError:
            continue
        ref = str(item.get("claimRef") or item.get("leafID") or address)
        owned = tuple(n for n in (_network(p) for p in _list(item.get("prefixes"))) if n is not None and n.version == 4)
        claims.append(_Claim(ref, ref, tunnel, owned))
    length_min = _int(spec.get("allowedPrefixLengthMin"))
    length_max = _int(spec.get("allowedPrefixLengthMax"))
    return RouteAdmission(claims, pools, length_min=length_min, length_max=length_max)


def _reason(admission, address, prefix):
    if admission is None:
        return None
    try:
        decision = admission.admit_route(address, prefix)
    except (ValueError, TypeError, AttributeError):
        return None
    return ADMISSIBLE if decision.accepted else decision.rule


def _state(entry, neighbor, summary):
    return _first(_text(summary.get("state")), _text(neighbor.get("bgpState")), _text(entry.get("status")))


def _dynamic(entry, neighbor, summary):
    for value in (summary.get("dynamicPeer"), entry.get("dynamic")):
        if isinstance(value, bool):
            return value
    return bool(neighbor.get("peerSubnetRangeGroup"))


def _peer(address, sources, item, outputs, admission):
    entry, neighbor, summary = sources
    received, accepted, rejected, rejected_routes, warnings = _counts(
        neighbor, summary, _dict(outputs.get("received")).get(address), _dict(outputs.get("filtered")).get(address))
    reasons = {p: _reason(admission, address, p) for p in rejected_routes}
    return {
        "address": address,
        "state": _state(entry, neighbor, summary),
        "dynamic": _dynamic(entry, neighbor, summary),
        "uptime": _first(_text(summary.get("peerUptime")), _text(neighbor.get("bgpTimerUpString"))),
        "listen_range": _text(neighbor.get("peerSubnetRangeGroup")),
        "hostname": _first(_text(summary.get("hostname")), _text(neighbor.get("hostname"))),
        "accepted": accepted,
        "received": received,
        "rejected": rejected,
        "claimRef": item.get("claimRef") if item else None,
        "leafID": item.get("leafID") if item else None,
        "rejected_routes": rejected_routes,
        "rejected_reasons": {p: r for p, r in reasons.items() if r is not None},
        "warnings": warnings,
    }


def _summarize(peers):
    by_prefix, by_reason = {}, {}
    for peer in peers:
        for prefix in peer["rejected_routes"]:
            by_prefix.setdefault(prefix, []).append(peer["address"])
        for reason in peer["rejected_reasons"].values():
            by_reason[reason] = by_reason.get(reason, 0) + 1
    ordered = {p: by_prefix[p] for p in sorted(by_prefix, key=_prefix_key)}
    return {"by_prefix": ordered, "by_reason": dict(sorted(by_reason.items()))}


def dynamic_peer_status(outputs, dynamic_peer_spec=None):
    """Status of the dynamic-peer group of ``dynamic_peer_spec`` (a BGPDynamicPeer resource or spec).

    Returns ``peer_group``, ``peer_group_found``, ``source_prefixes`` (listen ranges as bgpd reports
    them), ``listen_ranges_missing`` (desired ``listenRanges`` bgpd does not report), ``discovered_peers``,
    ``accepted_total``, ``rejected_total``, ``rejected_summary`` (``by_prefix``: prefix -> neighbors,
    ``by_reason``: RouteAdmission rule -> count, when ``allowedPrefixes`` is known), ``unmatched_peers``
    (dynamic peers with no admitted claim), ``missing_peers`` (admitted claims with no established
    session) and ``warnings``.
    """
    outputs = _dict(outputs)
    spec, resource_name = _spec_of(dynamic_peer_spec)
    name = _text(spec.get("peerGroup")) or resource_name
    groups = _groups_of(name, _dict(outputs.get("peer_group")))
    group = _merged(groups)
    neighbors = _neighbors(outputs.get("neighbors"))
    summary = _summary_peers(outputs.get("summary"))
    desired = [str(r) for r in _list(spec.get("listenRanges"))]
    group_neighbors = [n for n in neighbors.values() if _in_group(n.get("peerGroup"), name)]
    source_prefixes = _unique(_group_ranges(group) or [_text(n.get("peerSubnetRangeGroup")) for n in group_neighbors])
    members = _members(name, group, neighbors, summary, source_prefixes or desired) if name else {}
    admitted = _admitted(spec)
    admission = _admission(spec, admitted)
    peers = [_peer(addr, members[addr], admitted.get(addr), outputs, admission)
             for addr in sorted(members, key=_address_key)]
    seen = {_normal_range(r) for r in source_prefixes}
    return {
        "peer_group": name,
        "peer_group_found": bool(groups),
        "source_prefixes": source_prefixes,
        "listen_ranges_missing": [r for r in desired if _normal_range(r) not in seen],
        **peer_totals(peers, admitted),
        "warnings": ["%s %s" % (p["address"], w) for p in peers for w in p["warnings"]],
    }


def peer_totals(peers, admitted):
    """The part of the result both daemons' readers compute alike from the peers and the admitted claims."""
    established = {p["address"] for p in peers if p["state"] == ESTABLISHED}
    return {
        "discovered_peers": peers,
        "accepted_total": sum(p["accepted"] or 0 for p in peers),
        "rejected_total": sum(p["rejected"] or 0 for p in peers),
        "rejected_summary": _summarize(peers),
        "unmatched_peers": [p["address"] for p in peers if p["dynamic"] and p["address"] not in admitted],
        "missing_peers": [{"claimRef": item.get("claimRef"), "leafID": item.get("leafID"), "neighbor": addr,
                           "state": _first(*[p["state"] for p in peers if p["address"] == addr])}
                          for addr, item in sorted(admitted.items(), key=lambda kv: _address_key(kv[0]))
                          if addr not in established],
    }
