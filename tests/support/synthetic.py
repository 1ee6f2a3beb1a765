# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Synthetic documents and states for benchmarks and scale tests (N leaves in one policy)."""

import ipaddress

from boma_mesh_utils.sam.core import payload
from boma_mesh_utils.sam.core.materialize import API_VERSION

TUNNEL_RANGE = ipaddress.IPv4Network("10.128.0.0/16")
POOL = ipaddress.IPv4Network("10.64.0.0/16")


def synthetic_rr_state(count, asn=64577):
    """An RR state with ``count`` admitted leaves, leaf i at tunnel .i+1 owning pool .i+1."""
    admitted = []
    for index in range(count):
        offset = index + 1
        admitted.append({"claimRef": "SAMEnrollmentClaim/leaf-%d" % index, "leafID": "leaf-%d" % index,
                         "neighbor": str(TUNNEL_RANGE.network_address + offset),
                         "prefixes": ["%s/32" % (POOL.network_address + offset)]})

    def res(kind, name, spec):
        return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}

    return {"node": "rr-a", "role": "rr", "resources": [
        res("BGPRouter", "bgp", {"asn": asn, "routerID": "10.99.0.2", "exportPrefixes": []}),
        res("BGPDynamicPeer", "leaves", {
            "peerGroup": "leaves", "listenRanges": [str(TUNNEL_RANGE)], "listenLimit": None, "peerASN": asn,
            "localASN": asn, "routeReflectorClient": True, "clusterID": None, "allowedPrefixes": [str(POOL)],
            "allowedPrefixLengthMin": 32, "allowedPrefixLengthMax": 32, "nextHopRewrite": "peer-address",
            "admitted": admitted}),
    ]}


POLICY_DOCS = [
    {"kind": "MobilityPool", "metadata": {"name": "pool"}, "spec": {
        "prefix": "10.64.0.0/10", "groupRef": "bench",
        "members": [{"nodeRef": "rr-a", "site": "dc-a", "role": "cloud"}]}},
    {"kind": "SAMEnrollmentPolicy", "metadata": {"name": "bench"}, "spec": {
        "rrSetRef": "SAMRRSet/rrs", "joinTokenFrom": {"file": "/nonexistent"}, "joinAudience": "bench",
        "allowedLeafIDs": {"pattern": "^leaf-[0-9]+$"}, "tunnelAddressPrefixes": ["10.128.0.0/10"],
        "endpointPrefixes": ["10.192.0.0/10"], "mobilityPoolRefs": ["MobilityPool/pool"], "ttl": "24h"}},
]


RRSET_DOC = {"kind": "SAMRRSet", "metadata": {"name": "rrs"}, "spec": {
    "enrollmentPolicyRef": "SAMEnrollmentPolicy/bench", "mobilityPoolRefs": ["MobilityPool/pool"],
    "members": [{"nodeRef": "rr-%s" % side, "endpoint": "10.192.0.%d" % (250 + i), "tunnelAddress": "10.99.0.%d/32" % i,
                 "bgp": {"asn": 64577, "routerID": "10.99.0.%d" % i}} for i, side in ((2, "a"), (3, "b"))]}}


def service_documents(token_file):
    """An RR's documents for the enrollment service: the bench policy (token at ``token_file``) and RRSet."""
    policy = dict(POLICY_DOCS[1])
    policy["spec"] = dict(policy["spec"], joinTokenFrom={"file": token_file})
    return [POLICY_DOCS[0], policy, RRSET_DOC]


def signed_claims(count, key, timestamp="2026-06-28T00:00:00Z", start=0, nonce="n"):
    """``count`` SAMEnrollmentClaim documents of policy ``bench`` signed with ``key`` (leaf i at .i+1)."""
    docs = []
    for index in range(start, start + count):
        high, low = divmod(index + 1, 250)
        spec = {"policyRef": "SAMEnrollmentPolicy/bench", "rrSetRef": "SAMRRSet/rrs", "leafID": "leaf-%d" % index,
                "joinAudience": "bench", "joinNonce": "%s-%d" % (nonce, index), "joinTimestamp": timestamp,
                "tunnelAddress": "10.128.%d.%d/32" % (high, low + 1), "endpoint": "10.192.%d.%d" % (high, low + 1),
                "mobility": {"ownedAddresses": ["10.64.%d.%d/32" % (high, low + 1)]},
                "bgp": {"asn": 64577, "routerID": "10.128.%d.%d" % (high, low + 1)}}
        spec["joinHMAC"] = payload.join_hmac(key, spec)
        docs.append({"kind": "SAMEnrollmentClaim", "metadata": {"name": "leaf-%d" % index}, "spec": spec})
    return docs
