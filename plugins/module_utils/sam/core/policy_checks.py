# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""routerd's rules on the parts of the documents the typed views do not hold (issue 20).

A transport profile's addressing and underlay interface, MobilityPool shape and overlap, and a nonce reused after
its claim was skipped (BGP policies are bgp_policy.py's).  The rule each function follows is routerd's
(docs/enrollment.md, "Differences from routerd's validation", names the files read); a difference is written there.
"""

from .fields import Reader, parse_prefix
from .findings import Finding
from .model import split_ref

ADDRESSING_MODES = ("edge-index", "pair-stable")
POOL_MODES = ("selective-address",)
MEMBER_ROLES = ("onprem", "cloud")
# The kinds routerd's config index counts as interfaces (pkg/config/index.go).
INTERFACE_KINDS = ("Interface", "WireGuardInterface", "Bridge", "VRF", "VXLANSegment", "VXLANTunnel", "PPPoESession")


def check_documents(resources, mesh, findings):
    """The rules that read more than one resource or kinds the mesh does not hold."""
    interfaces = {res.name for res in resources if res.kind in INTERFACE_KINDS}
    for profile in mesh.transports.values():
        # routerd validates one Router document, which names every interface of the node. An inventory's
        # sam_node_resources hold none (the host's interfaces are not documents there): nothing to check against.
        if interfaces and profile.underlay is not None and profile.underlay not in interfaces:
            findings.append(Finding("SAMTransportProfile/" + profile.name, "spec.underlayInterface", "reference",
                                    "references missing Interface %r (this document set defines %s)"
                                    % (profile.underlay, ", ".join(sorted(interfaces)))))
    for res in resources:
        if res.kind == "SAMTransportProfile":
            _transport_addressing(Reader(res.ref, res.spec, findings))
        elif res.kind == "MobilityPool":
            _pool_shape(Reader(res.ref, res.spec, findings))
    _pool_overlap(mesh, findings)


def _transport_addressing(r):
    r.str("underlayInterface", required=True)
    mode = r.str("addressingMode")
    if mode is not None and mode not in ADDRESSING_MODES:
        r.error(r.at("addressingMode"), "choice", "%r is not one of %s" % (mode, ", ".join(ADDRESSING_MODES)))
    text = r.str("innerPrefix", required=True)
    if text is None:
        return
    inner = parse_prefix(text)
    if inner is None:
        r.error(r.at("innerPrefix"), "ipv4-prefix", "%r is not an IPv4 prefix" % text)
    elif inner.prefixlen > 31:
        # both addressing modes hand out /31 edges from it (routerd: "must leave at least one /31 edge")
        r.error(r.at("innerPrefix"), "inner-prefix-size", "%s leaves no /31 edge: use /31 or shorter" % inner)


def _pool_shape(r):
    r.str("groupRef", required=True)
    mode = r.str("mode")
    if mode is not None and mode not in POOL_MODES:
        r.error(r.at("mode"), "choice", "%r is not supported; only %s" % (mode, ", ".join(POOL_MODES)))
    members, sources = r.list("members"), r.list("membersFrom")
    if not members and not sources:
        r.error(r.at("members"), "required", "at least one member (or membersFrom source) is required")
    for index, source in enumerate(sources):
        ref = source.get("resource") if isinstance(source, dict) else None
        if split_ref(ref, "MobilityMemberSet") is None or "/" not in str(ref):
            r.error(r.at("membersFrom[%d].resource" % index), "reference",
                    "%r must reference MobilityMemberSet/<name>" % (ref,))
    seen = {}
    for index, item in enumerate(members):
        base = r.at("members[%d]" % index)
        if not isinstance(item, dict):
            r.error(base, "type", "must be a mapping")
            continue
        m = Reader(r.ref, item, r.findings, base=base)
        node = m.str("nodeRef", required=True)
        m.str("site", required=True)
        role = m.str("role", required=True)
        if role is not None and role not in MEMBER_ROLES:
            m.error(m.at("role"), "member-role", "%r must be onprem or cloud" % role)
        if node is not None and seen.setdefault(node, index) != index:
            m.error(m.at("nodeRef"), "duplicate-member", "%s duplicates %s" % (node, r.at("members[%d]" % seen[node])))


def _pool_overlap(mesh, findings):
    # routerd: MobilityPool prefixes must be disjoint, else one /32 would be authorized by two pools
    earlier = []
    for pool in mesh.pools.values():
        if pool.prefix is None:
            continue
        for name, prefix in earlier:
            if pool.prefix.overlaps(prefix):
                findings.append(Finding("MobilityPool/" + pool.name, "spec.prefix", "mobility-pool-overlap",
                                        "%s overlaps MobilityPool/%s %s: MobilityPool prefixes must be disjoint"
                                        % (pool.prefix, name, prefix)))
                break
        earlier.append((pool.name, pool.prefix))


def reused_nonces(mesh, report, candidates):
    """(findings, names) of active claims whose joinNonce a revoked or expired claim of the same policy used.

    routerd's duplicate-nonce rule reads every claim of the document set, skipped or not: a nonce is spent once a
    claim carried it, whatever became of that claim.
    """
    spent = {}
    for name in report.skipped:
        claim = mesh.claims.get(name)
        if claim is not None and claim.nonce:
            spent.setdefault((split_ref(claim.policy_ref, "SAMEnrollmentPolicy"), claim.nonce), claim.name)
    findings, names = [], set()
    if not spent:
        return findings, names
    for policy_name, claims in candidates.items():
        for claim in claims:
            owner = spent.get((policy_name, claim.nonce))
            if owner is not None:
                findings.append(Finding(claim.ref, "spec.joinNonce", "duplicate-join-nonce",
                                        "joinNonce %s was already used by SAMEnrollmentClaim/%s (revoked or expired: "
                                        "a nonce is never reused)" % (claim.nonce, owner)))
                names.add(claim.name)
    return findings, names
