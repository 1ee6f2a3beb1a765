# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Configuration rules (everything except individual claims), one function per kind."""

from .bgp_policy import effective_import
from .findings import ERROR, INFO, WARNING, Finding
from .model import split_ref


def check_config(mesh, findings):
    for peer in mesh.dynamic_peers.values():
        _dynamic_peer(mesh, peer, findings)
    for profile in mesh.transports.values():
        _transport(mesh, profile, findings)
    leaf_ids = {c.leaf_id for c in mesh.claims.values() if c.leaf_id}
    for rrset in mesh.rrsets.values():
        _rrset(mesh, rrset, leaf_ids, findings)
    for policy in mesh.policies.values():
        _policy(mesh, policy, findings)


def _ref(findings, owner, path, ref, kind, table, required=False):
    """Check a 'Kind/name' reference; return the target or None."""
    if ref is None:
        if required:
            findings.append(Finding(owner, path, "required", "is required"))
        return None
    name = split_ref(ref, kind)
    if name is None:
        findings.append(Finding(owner, path, "reference", "%r must reference %s/<name>" % (ref, kind)))
        return None
    target = table.get(name)
    if target is None:
        findings.append(Finding(owner, path, "reference", "references missing %s %r" % (kind, ref)))
    return target


def _ref_form(findings, owner, path, ref, kind):
    if split_ref(ref, kind) is None or "/" not in ref:
        findings.append(Finding(owner, path, "reference", "%r must reference %s/<name>" % (ref, kind)))


def _dynamic_peer(mesh, peer, findings):
    ref = "BGPDynamicPeer/" + peer.name
    router = _ref(findings, ref, "spec.routerRef", peer.router_ref, "BGPRouter", mesh.routers)
    if peer.rr_client and router is not None and router.asn is not None and peer.peer_asn is not None \
            and peer.peer_asn != router.asn:
        findings.append(Finding(ref, "spec.peerASN", "rr-client-asn",
                                "routeReflectorClient requires iBGP: peerASN %d must equal BGPRouter/%s asn %d"
                                % (peer.peer_asn, router.name, router.asn)))
    if not peer.source_prefixes:
        findings.append(Finding(ref, "spec.listen.sourcePrefixes", "listen-range-required",
                                "at least one listen source prefix is required"))
    policy, where = effective_import(peer, router)
    if peer.next_hop_rewrite is not None and not peer.allowed_prefixes:
        findings.append(Finding(ref, "spec.importPolicy.allowedPrefixes", "import-allowlist-required",
                                "is required when spec.importPolicy.nextHopRewrite is set (routerd does not combine "
                                "a peer's nextHopRewrite with its BGPRouter's allowlist)"))
    elif not policy.prefixes:
        findings.append(Finding(ref, "spec.importPolicy.allowedPrefixes", "import-allowlist-required",
                                "an import allowlist is required (here or in the BGPRouter's importPolicy): dynamic "
                                "peers must not be able to announce anything"))
    bounds = (policy.length_min, policy.length_max)
    if None not in bounds and bounds[0] > bounds[1]:
        return   # prefix-length-range, reported where the bounds are written
    if bounds not in ((None, None), (32, 32)):
        # routerd's rule: omitted (exact /32s, as rendered) or both 32; anything else would admit other lengths
        source = "" if where == "spec.importPolicy" else " (inherited from %s)" % where
        findings.append(Finding(ref, "spec.importPolicy", "host-routes-only",
                                "allowedPrefixLengthMin/Max%s are %s/%s: they must be omitted or both be 32 (SAM "
                                "admits only /32 host routes)" % (source, _bound(bounds[0]), _bound(bounds[1]))))


def _transport(mesh, profile, findings):
    ref = "SAMTransportProfile/" + profile.name
    if profile.node is None:
        findings.append(Finding(ref, "spec.selfNodeRef", "required", "is required"))
    if profile.mode == "fou":
        for key, value in (("encapSport", profile.encap_sport), ("encapDport", profile.encap_dport)):
            if value is None:
                findings.append(Finding(ref, "spec." + key, "fou-requires-encap-ports",
                                        "is required and must be within 1-65535 when spec.mode is fou"))
    elif profile.mode in ("ipip", "gre"):
        for key, value in (("encapSport", profile.encap_sport), ("encapDport", profile.encap_dport)):
            if value is not None:
                findings.append(Finding(ref, "spec." + key, "encap-ports-not-allowed",
                                        "is only supported when spec.mode is fou (mode is %s)" % profile.mode))
    if profile.router_ref is not None:
        _ref(findings, ref, "spec.bgp.routerRef", profile.router_ref, "BGPRouter", mesh.routers)
    _peers_from(mesh, profile, ref, findings)


def _peers_from(mesh, profile, ref, findings):
    for index, source in enumerate(profile.peers_from):
        path = "spec.peersFrom[%d].resource" % index
        kind, name = source.split("/", 1) if "/" in source else (source, "")
        if kind == "SAMEnrollmentPolicy":
            _ref(findings, ref, path, source, kind, mesh.policies)
        elif kind == "SAMRRSet":
            if name not in mesh.rrsets:
                findings.append(Finding(ref, path, "fetched-at-runtime",
                                        "%s is not in this document set; it must be fetched by enrollment" % source,
                                        INFO))
        else:
            findings.append(Finding(ref, path, "reference",
                                    "%r must reference SAMEnrollmentPolicy/<name> or SAMRRSet/<name>" % source))


def _rrset(mesh, rrset, leaf_ids, findings):
    ref = "SAMRRSet/" + rrset.name
    if not rrset.members:
        findings.append(Finding(ref, "spec.members", "required", "at least one RR member is required"))
    # An RRSet is shared with leaves that hold only their own policy (or fetched it), so
    # like routerd its references are checked for form here, not for presence.
    if rrset.policy_ref is not None:
        _ref_form(findings, ref, "spec.enrollmentPolicyRef", rrset.policy_ref, "SAMEnrollmentPolicy")
    for index, pool in enumerate(rrset.pool_refs):
        _ref_form(findings, ref, "spec.mobilityPoolRefs[%d]" % index, pool, "MobilityPool")
    seen = {}
    for index, member in enumerate(rrset.members):
        for key, value in (("nodeRef", member.node), ("tunnelAddress", member.tunnel_address),
                           ("endpoint", member.endpoint)):
            if value is None:
                continue
            first = seen.setdefault((key, value), index)
            if first != index:
                findings.append(Finding(ref, "spec.members[%d].%s" % (index, key), "duplicate-member",
                                        "%s duplicates spec.members[%d]" % (value, first)))
        if member.node in leaf_ids:
            findings.append(Finding(ref, "spec.members[%d].nodeRef" % index, "rrset-members-not-leaves",
                                    "%s is an enrolled leaf; an RRSet lists route reflectors only" % member.node))


def _policy(mesh, policy, findings):
    ref = "SAMEnrollmentPolicy/" + policy.name
    if policy.token is None and not policy.allow_unsigned:
        findings.append(Finding(ref, "spec.joinTokenFrom", "unsigned-policy",
                                "is required; a policy without a join token admits anyone who can reach the RR "
                                "(set allowUnsigned: true to accept that explicitly)"))
    elif policy.token is None:
        findings.append(Finding(ref, "spec.allowUnsigned", "unsigned-policy",
                                "claims are admitted without a join HMAC", WARNING))
    if policy.transport_ref is not None:
        _ref(findings, ref, "spec.transportProfileRef", policy.transport_ref, "SAMTransportProfile", mesh.transports)
    for index, pool in enumerate(policy.pool_refs):
        _ref(findings, ref, "spec.mobilityPoolRefs[%d]" % index, pool, "MobilityPool", mesh.pools)
    if not policy.pool_refs and not policy.mobility_prefixes:
        findings.append(Finding(ref, "spec.mobilityPoolRefs", "mobility-scope",
                                "set mobilityPoolRefs or mobilityPrefixes: without them no /32 can be authorized",
                                ERROR))


def _bound(value):
    return "unset" if value is None else value
