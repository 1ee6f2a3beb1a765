# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Observed state of a BGP dynamic-peer group from gobgpd 3.10 JSON: bgp_status.dynamic_peer_status's result shape
(issue 20), so sam_dynamic_peer_info reports a GoBGP RR as it reports an FRR one.

``gobgp_peer_status(outputs, dynamic_peer_spec)`` takes already-parsed ``gobgp -j`` outputs and never raises on
odd input:

- ``neighbors``: ``gobgp -j neighbor`` (``conf.{peer_group, neighbor_address}``: a session accepted through a
  dynamic-neighbors range has no configured address; ``state.{neighbor_address, session_state}``);
- ``adj_in``: ``{addr: gobgp -j neighbor ADDR adj-in -a ipv4}``: every route the peer sent, before policy;
- ``rib``: ``gobgp -j global rib -a ipv4``: the routes that passed the import policy, each path naming its
  ``neighbor-ip``.  gobgpd's per-neighbor ``accepted`` counter counts routes before the global import policy, so
  what is accepted is read here, from the RIB, and what is rejected is what the peer sent and the RIB lacks;
- ``ranges``: the group's ``[[dynamic-neighbors]]`` prefixes from the configuration file (gobgp's CLI does not
  list them), or None when unknown.
"""

from .bgp_status import (
    ESTABLISHED,
    _address,
    _address_key,
    _admission,
    _admitted,
    _dict,
    _int,
    _list,
    _network,
    _prefix_key,
    _reason,
    _spec_of,
    _text,
    _unique,
    peer_totals,
)

# gobgp's session_state numbers (its API's PeerState.SessionState)
STATES = {1: "Idle", 2: "Connect", 3: "Active", 4: "OpenSent", 5: "OpenConfirm", 6: ESTABLISHED}


def _members(name, neighbors):
    """{address: neighbor JSON} of the group's peers (configured in the group or accepted through its ranges)."""
    out = {}
    for neighbor in _list(neighbors):
        item = _dict(neighbor)
        if _text(_dict(item.get("conf")).get("peer_group")) != name:
            continue
        address = _address(_dict(item.get("state")).get("neighbor_address")
                           or _dict(item.get("conf")).get("neighbor_address"))
        if address:
            out.setdefault(address, item)
    return out


def _accepted_from(rib):
    """{neighbor address: prefixes in the RIB from it}."""
    out = {}
    for prefix, paths in _dict(rib).items():
        for path in _list(paths):
            source = _address(_dict(path).get("neighbor-ip"))
            if source:
                out.setdefault(source, set()).add(str(prefix))
    return out


def _peer(address, item, neighbor, outputs, accepted_by, admission):
    sent = _dict(_dict(outputs.get("adj_in")).get(address))
    received = sorted(_unique([str(p) for p in sent]), key=_prefix_key) if address in _dict(outputs.get("adj_in")) \
        else None
    accepted = sorted(accepted_by.get(address, ()), key=_prefix_key)
    rejected = [p for p in received if p not in set(accepted)] if received is not None else []
    reasons = {p: _reason(admission, address, p) for p in rejected}
    state = _int(_dict(neighbor.get("state")).get("session_state"))
    return {
        "address": address,
        "state": STATES.get(state, None if state is None else str(state)),
        "dynamic": not _dict(neighbor.get("conf")).get("neighbor_address"),
        "uptime": None,                  # gobgp's JSON has a start time, not an uptime: not invented here
        "listen_range": None,
        "hostname": None,
        "accepted": len(accepted),
        "received": len(received) if received is not None else None,
        "rejected": len(rejected) if received is not None else None,
        "claimRef": item.get("claimRef") if item else None,
        "leafID": item.get("leafID") if item else None,
        "rejected_routes": rejected,
        "rejected_reasons": {p: r for p, r in reasons.items() if r is not None},
        "warnings": [] if received is not None else ["adj-in: not read"],
    }


def gobgp_peer_status(outputs, dynamic_peer_spec=None):
    """bgp_status.dynamic_peer_status's result for a gobgpd, from ``outputs`` (see the module docstring)."""
    outputs = _dict(outputs)
    spec, resource_name = _spec_of(dynamic_peer_spec)
    name = _text(spec.get("peerGroup")) or resource_name
    members = _members(name, outputs.get("neighbors")) if name else {}
    admitted = _admitted(spec)
    admission = _admission(spec, admitted)
    accepted_by = _accepted_from(outputs.get("rib"))
    peers = [_peer(addr, admitted.get(addr), members[addr], outputs, accepted_by, admission)
             for addr in sorted(members, key=_address_key)]
    ranges = outputs.get("ranges")
    source = [str(n) for n in (_network(r) for r in _list(ranges)) if n is not None]
    desired = [str(r) for r in _list(spec.get("listenRanges"))]
    within = [n for n in (_network(r) for r in desired) if n is not None]
    warnings = ["%s %s" % (p["address"], w) for p in peers for w in p["warnings"]]
    if ranges is None:
        warnings.append("dynamic-neighbors ranges unknown: gobgp does not list them (give the configuration file)")
    return {
        "peer_group": name,
        "peer_group_found": bool(members) or bool(source),
        "source_prefixes": source,
        # GoBGP's ranges are each admitted leaf's /32 inside the listen ranges (render_gobgp): the missing ones
        "listen_ranges_missing": [] if ranges is None else [
            "%s/32" % addr for addr, item in sorted(admitted.items(), key=lambda kv: _address_key(kv[0]))
            if _list(item.get("prefixes")) and (not within or any(_network(addr) and _network(addr).subnet_of(w)
                                                                  for w in within))
            and "%s/32" % addr not in source],
        **peer_totals(peers, admitted),
        "warnings": warnings,
    }
