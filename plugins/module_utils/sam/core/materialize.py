# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state of one node (leaf or RR) from a validated document set.

The result is a list of routerd-style resources ``{apiVersion, kind, metadata:
{name}, spec}`` of kinds BGPRouter, TunnelInterface, IPv4Route, BGPPeer,
WireGuardPeer and BGPDynamicPeer: the netcommon "rendered" idea, consumed by
the data-plane modules and the BGP renderers.  Nothing here touches a host.
"""

import hashlib
import json

from .bgp_policy import effective_import
from .findings import Finding
from .memo import ByIdentity
from .model import TIMER_PRESETS, split_ref

API_VERSION = "materialized.boma.mesh/v1alpha1"
OWNER = "boma.mesh"
IFNAME_MAX = 15


class MaterializeError(ValueError):
    """The node cannot be materialized; ``findings`` say why (resource, path, rule)."""

    def __init__(self, findings):
        super().__init__("; ".join(f.describe() for f in findings))
        self.findings = findings


def tunnel_name(peer):
    """Kernel-safe (<= 15 chars) tunnel name, stable for a peer: sam-<peer> or sam-<prefix>-<hash>."""
    name = "sam-" + peer
    if len(name) <= IFNAME_MAX and all(c.isalnum() or c in "-_." for c in peer):
        return name
    digest = hashlib.sha256(peer.encode("utf-8")).hexdigest()[:4]
    safe = "".join(c for c in peer if c.isalnum() or c == "-")[:6]
    return "sam-%s-%s" % (safe, digest)


def _res(kind, name, spec):
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def _ip(net):
    return str(net.network_address)


def _tunnel(profile, name, remote, local_addr, peer_addr, **labels):
    spec = {"ifname": name, "mode": profile.mode, "local": str(profile.local_endpoint),
            "remote": str(remote), "underlayInterface": profile.underlay, "address": str(local_addr),
            "peerAddress": str(peer_addr), "owner": OWNER, "transportProfileRef": "SAMTransportProfile/" + profile.name}
    if profile.mode == "fou":
        spec.update(encapSport=profile.encap_sport, encapDport=profile.encap_dport)
    spec.update(labels)
    return _res("TunnelInterface", name, spec)


def _route(name, peer_addr, local_addr):
    return _res("IPv4Route", name, {"destination": str(peer_addr), "device": name, "source": _ip(local_addr),
                                    "owner": OWNER})


def _wireguard(profile, name, spec):
    """A WireGuardPeer and a route per allowed IP through the WireGuard interface (what wg-quick would add).

    The ipip tunnel over WireGuard runs between the profiles' localEndpoints, so the interface carries the
    local one (localAddress) and each peer's allowed IPs must route into it.
    """
    spec = dict(spec, interface=profile.underlay, localAddress=str(profile.local_endpoint), owner=OWNER)
    out = [_res("WireGuardPeer", name, spec)]
    for index, net in enumerate(spec["allowedIPs"]):
        out.append(_res("IPv4Route", "wg-%s-%d" % (name, index), {
            "destination": str(net), "device": profile.underlay, "source": str(profile.local_endpoint),
            "owner": OWNER}))
    return out


def _timers(*presets):
    """{"profile", "keepalive", "holdTime"} of the first preset set (routerd order), or None (daemon default)."""
    name = next((p for p in presets if p), None)
    if name is None:
        return None
    keepalive, hold = TIMER_PRESETS[name]
    return {"profile": name, "keepalive": keepalive, "holdTime": hold}


def _with_timers(spec, timers):
    if timers:
        spec["timers"] = timers
    return spec


def node_role(mesh, node):
    """'rr' when the node is an RRSet member, 'leaf' when a profile of it consumes an RRSet, else None."""
    if any(m.node == node for rrset in mesh.rrsets.values() for m in rrset.members):
        return "rr"
    if any(p.node == node and any(s.startswith("SAMRRSet/") for s in p.peers_from)
           for p in mesh.transports.values()):
        return "leaf"
    return None


def state_digest(state):
    """'sha256:...' over a materialized state (canonical JSON): the leaf agent and the RR's reconcile apply only
    when it changed (a renewal leaves it as it was: nonce, timestamp and HMAC are not part of it)."""
    text = _canonical(state)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


# dict -> its canonical JSON: an RR's state is mostly the resources its memos kept (_CLAIM_RESOURCES, the admitted
# items), so a digest on each change encodes only what is new (it was a tenth of a run at 5,000 claims).  Large
# texts are not kept: the per-run BGPDynamicPeer with every admitted item would pin its text until the memo
# empties.
_ENCODED = ByIdentity(limit=100000)
_KEEP_TEXT = 4096


def _canonical(value):
    """json.dumps(value, sort_keys=True, separators=(",", ":"), default=str), with the dicts' texts memoized."""
    if isinstance(value, dict):
        text = _ENCODED.get(value)
        if text is None:
            text = "{%s}" % ",".join("%s:%s" % (json.dumps(key), _canonical(value[key])) for key in sorted(value))
            if len(text) <= _KEEP_TEXT:
                _ENCODED.put(value, text)
        return text
    if isinstance(value, (list, tuple)):
        return "[%s]" % ",".join(_canonical(item) for item in value)
    return json.dumps(value, default=str)


def materialize(report, node, fetched_rrsets=None, rr_peering=False):
    """{'node', 'role', 'resources'} for ``node`` (its selfNodeRef), from a validate() Report.

    ``fetched_rrsets`` maps RRSet name -> RRSet view (model.parse_rrset) fetched by enrollment;
    it is used when the document set does not hold the RRSet a leaf consumes.
    ``rr_peering`` (RR only): one BGPPeer (``routeReflectorPeer: true``) per other member of the
    node's SAMRRSet, between the members' endpoints (docs/bgp.md, "RR-to-RR peering").
    """
    mesh = report.mesh
    role = node_role(mesh, node)
    if role is None:
        raise MaterializeError([Finding("node/" + str(node), "selfNodeRef", "unknown-node",
                                        "no SAMRRSet member and no SAMTransportProfile consuming a SAMRRSet "
                                        "has this selfNodeRef")])
    resources = _rr(report, node, rr_peering) if role == "rr" else _leaf(mesh, node, fetched_rrsets or {})
    names = [r["metadata"]["name"] for r in resources if r["kind"] == "TunnelInterface"]
    seen, clash = set(), set()
    for name in names:            # O(N): a list.count per name was a quarter of a run at 5,000 leaves
        (clash if name in seen else seen).add(name)
    clash = sorted(clash)
    if clash:
        raise MaterializeError([Finding("node/" + node, "TunnelInterface", "tunnel-name-collision",
                                        "two peers map to the tunnel name(s) %s" % ", ".join(clash))])
    return {"node": node, "role": role, "resources": resources}


def _router(mesh, profile, node, owned=()):
    name = split_ref(profile.router_ref, "BGPRouter") if profile.router_ref else None
    router = mesh.routers.get(name) if name else None
    if router is None:
        raise MaterializeError([Finding("SAMTransportProfile/" + profile.name, "spec.bgp.routerRef", "reference",
                                        "node %s needs a BGPRouter for its BGP state" % node)])
    return router, _res("BGPRouter", router.name, {"asn": router.asn, "routerID": str(router.router_id or ""),
                                                   "exportPrefixes": [str(p) for p in owned]})


def _leaf(mesh, node, fetched):
    profiles = [p for p in mesh.transports.values() if p.node == node]
    claims = [c for c in mesh.claims.values() if c.leaf_id == node]
    if len(claims) != 1 or claims[0].tunnel_address is None:
        raise MaterializeError([Finding("node/" + node, "SAMEnrollmentClaim", "leaf-claim",
                                        "a leaf needs exactly one SAMEnrollmentClaim with leafID %s and a "
                                        "tunnelAddress (found %d)" % (node, len(claims)))])
    claim = claims[0]
    out, seen_router = [], False
    for profile in profiles:
        for source in profile.peers_from:
            name = split_ref(source, "SAMRRSet")
            rrset = mesh.rrsets.get(name) or fetched.get(name)
            if rrset is None:
                raise MaterializeError([Finding("SAMTransportProfile/" + profile.name, "spec.peersFrom",
                                                "rrset-missing", "%s is neither in the document set nor fetched"
                                                % source)])
            router, router_res = _router(mesh, profile, node, claim.owned_nets)
            if not seen_router:
                out.append(router_res)
                seen_router = True
            out.extend(_leaf_peers(profile, rrset, claim, router, _timers(profile.timers, router.timers)))
    return out


def _leaf_peers(profile, rrset, claim, router, timers):
    wireguard = profile.encryption == "wireguard"
    out = []
    for member in rrset.members:
        name = tunnel_name(member.node)
        remote = member.wg_transport_endpoint if wireguard and member.wg_transport_endpoint else member.endpoint
        out.append(_tunnel(profile, name, remote, claim.tunnel_address, member.tunnel_address,
                           peerNodeRef=member.node))
        out.append(_route(name, member.tunnel_address, claim.tunnel_address))
        out.append(_res("BGPPeer", member.node, _with_timers({
            "address": _ip(member.tunnel_address), "remoteASN": member.asn or profile.peer_asn or router.asn,
            "localAddress": _ip(claim.tunnel_address), "nodeRef": member.node, "owner": OWNER}, timers)))
        if wireguard:
            out.extend(_wireguard(profile, member.node, {
                "publicKey": member.wg_public_key, "endpoint": member.wg_endpoint,
                "allowedIPs": [str(net) for net in member.wg_allowed_ips],
                "persistentKeepalive": member.wg_keepalive or 0, "nodeRef": member.node}))
    return out


def _rr(report, node, rr_peering=False):
    mesh = report.mesh
    member = next(m for rrset in mesh.rrsets.values() for m in rrset.members if m.node == node)
    profiles = [p for p in mesh.transports.values() if p.node == node]
    out = []
    router = None
    for profile in sorted(profiles, key=lambda p: p.name):
        if router is None:
            router, router_res = _router(mesh, profile, node)
            out.append(router_res)
        for source in profile.peers_from:
            policy_name = split_ref(source, "SAMEnrollmentPolicy")
            if policy_name is None:
                continue
            policy = mesh.policies.get(policy_name)
            for claim in sorted(report.active.get(policy_name, ()), key=lambda c: c.leaf_id):
                read = (profile, policy, member, router)
                hit = _CLAIM_RESOURCES.get(claim)
                if hit is None or hit[0] != read:
                    hit = _CLAIM_RESOURCES.put(claim, (read, tuple(_rr_claim(profile, policy, claim, member, router))))
                out.extend(hit[1])
    out.extend(_dynamic_peers(mesh, report, router))
    if rr_peering and router is not None:
        out.extend(_rr_peers(mesh, member, router))
    return out


def _rr_peers(mesh, member, router):
    """iBGP to the other RRs of the node's RRSet(s), between the members' endpoints.

    The endpoints, not the tunnel addresses: no tunnel is materialized between two RRs, and the
    endpoints are what the RRs already reach each other on (enrollment replication).
    """
    others = {}
    for rrset in mesh.rrsets.values():
        if any(m.node == member.node for m in rrset.members):
            for other in rrset.members:
                if other.node != member.node and other.endpoint is not None:
                    others.setdefault(other.node, other)
    return [_res("BGPPeer", other.node, _with_timers({
        "address": str(other.endpoint), "remoteASN": other.asn or router.asn, "localAddress": str(member.endpoint),
        "nodeRef": other.node, "routeReflectorPeer": True, "owner": OWNER}, _timers(router.timers)))
        for other in sorted(others.values(), key=lambda m: m.node)]


# Claim -> (the documents it was materialized with, its resources): an RR materializes every admitted claim on each
# change and almost all are as they were (issue 19).  The parsed documents are the same objects while the RR's
# documents are (core/mesh.py), and the resources are only read afterwards, so they are shared.
_CLAIM_RESOURCES = ByIdentity()
_ADMITTED_ITEMS = ByIdentity()


def _rr_claim(profile, policy, claim, member, router):
    name = tunnel_name(claim.leaf_id)
    out = [_tunnel(profile, name, claim.endpoint, member.tunnel_address, claim.tunnel_address,
                   claimRef=claim.ref, leafID=claim.leaf_id),
           _route(name, claim.tunnel_address, member.tunnel_address)]
    if profile.generate_peers:
        out.append(_res("BGPPeer", claim.leaf_id, _with_timers({
            "address": _ip(claim.tunnel_address), "remoteASN": claim.asn or profile.peer_asn or router.asn,
            "localAddress": _ip(member.tunnel_address), "claimRef": claim.ref, "owner": OWNER},
            _timers(profile.timers, router.timers))))
    if profile.encryption == "wireguard":
        keepalive = claim.wg_keepalive if claim.wg_keepalive is not None else (policy.wg_keepalive or 0)
        out.extend(_wireguard(profile, claim.leaf_id, {
            "publicKey": claim.wg_public_key, "endpoint": claim.wg_endpoint,
            "allowedIPs": [str(net) for _i, _t, net in claim.wg_allowed_ips if net is not None],
            "persistentKeepalive": keepalive, "claimRef": claim.ref}))
    return out


def _dynamic_peers(mesh, report, router):
    claims = {}
    for active in report.active.values():
        for claim in active:
            claims[claim.tunnel_address.network_address] = claim
    out = []
    for peer in sorted(mesh.dynamic_peers.values(), key=lambda p: p.name):
        if router is None or split_ref(peer.router_ref, "BGPRouter") != router.name:
            continue
        items = []
        for claim in claims.values():
            hit = _ADMITTED_ITEMS.get(claim)
            if hit is None or hit[0] is not peer:
                hit = _ADMITTED_ITEMS.put(claim, (peer, _admitted_item(peer, claim)))
            if hit[1] is not None:
                items.append(hit[1])
        imports = effective_import(peer, router)[0]
        out.append(_res("BGPDynamicPeer", peer.name, _with_timers({
            "peerGroup": peer.name, "listenRanges": [str(p) for p in peer.source_prefixes],
            "listenLimit": peer.listen_limit, "peerASN": peer.peer_asn, "localASN": router.asn,
            "routeReflectorClient": peer.rr_client,
            "clusterID": str(peer.cluster_id) if peer.cluster_id else None,
            # the effective policy: a peer without an allowlist renders its BGPRouter's, never none
            "allowedPrefixes": [str(p) for p in imports.prefixes],
            "allowedPrefixLengthMin": imports.length_min if imports.length_min is not None else 32,
            "allowedPrefixLengthMax": imports.length_max if imports.length_max is not None else 32,
            "nextHopRewrite": imports.next_hop_rewrite,
            "admitted": [item for _address, item in sorted(items, key=lambda i: i[0])],
        }, _timers(peer.timers, router.timers))))
    return out


def _admitted_item(peer, claim):
    """(tunnel address as int, BGPDynamicPeer admitted item) of a claim inside the peer's listen ranges, else None."""
    if not any(claim.tunnel_address.subnet_of(r) for r in peer.source_prefixes):
        return None
    return int(claim.tunnel_address.network_address), {
        "claimRef": claim.ref, "leafID": claim.leaf_id, "neighbor": _ip(claim.tunnel_address),
        "prefixes": [str(n) for n in claim.owned_nets]}


def count_kinds(state):
    counts = {}
    for res in state["resources"]:
        counts[res["kind"]] = counts.get(res["kind"], 0) + 1
    return counts
