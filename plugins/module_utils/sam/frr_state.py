# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Synthetic materialized RR states for benchmarks and scale tests (N admitted leaves)."""

import ipaddress

from .materialize import API_VERSION

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
