"""Materialize + render FRR for 1,000 admitted leaves (goal < 0.5 s) and the reload diff of one more leaf.

Usage: .venv/bin/python bench/render.py [N] [REPEATS]
"""

import datetime
import difflib
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))   # tests/support: synthetic documents

from boma_mesh_utils.sam.core.loader import load_resources  # noqa: E402
from boma_mesh_utils.sam.core.materialize import materialize  # noqa: E402
from boma_mesh_utils.sam.core.render.frr import render_frr  # noqa: E402
from boma_mesh_utils.sam.core.validate import validate  # noqa: E402
from support.synthetic import POLICY_DOCS, signed_claims  # noqa: E402

TOKEN = b"bench-join-token"


def documents(count):
    rr_docs = [
        {"kind": "SAMRRSet", "metadata": {"name": "rrs"}, "spec": {"members": [
            {"nodeRef": "rr-a", "endpoint": "10.10.0.2", "tunnelAddress": "10.99.0.2/32"},
            {"nodeRef": "rr-b", "endpoint": "10.10.0.3", "tunnelAddress": "10.99.0.3/32"}]}},
        {"kind": "BGPRouter", "metadata": {"name": "bgp"}, "spec": {"asn": 64577, "routerID": "10.99.0.2"}},
        {"kind": "BGPDynamicPeer", "metadata": {"name": "leaves"}, "spec": {
            "routerRef": "BGPRouter/bgp", "peerASN": 64577, "listen": {"sourcePrefixes": ["10.128.0.0/10"]},
            "routeReflectorClient": True, "importPolicy": {"allowedPrefixes": ["10.64.0.0/10"],
                                                           "allowedPrefixLengthMin": 32,
                                                           "allowedPrefixLengthMax": 32}}},
        {"kind": "SAMTransportProfile", "metadata": {"name": "rr-a"}, "spec": {
            "selfNodeRef": "rr-a", "mode": "ipip", "localEndpoint": "10.10.0.2", "underlayInterface": "eth0",
            "peersFrom": [{"resource": "SAMEnrollmentPolicy/bench"}],
            "bgp": {"routerRef": "BGPRouter/bgp", "peerASN": 64577, "generatePeers": False}}},
    ]
    return list(POLICY_DOCS) + rr_docs + signed_claims(count, TOKEN)


def pipeline(docs):
    resources, findings = load_resources([("bench", docs)])
    now = datetime.datetime(2026, 6, 28, 1, tzinfo=datetime.timezone.utc)
    report = validate(resources, tokens={"bench": TOKEN}, now=now, findings=findings)
    assert report.ok, [str(f) for f in report.errors[:3]]
    start = time.perf_counter()
    text = render_frr(materialize(report, "rr-a"))
    return text, time.perf_counter() - start


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    docs = documents(count + 1)
    best = min(pipeline(docs[: len(docs) - 1])[1] for _repeat in range(repeats))
    before, _t = pipeline(docs[: len(docs) - 1])
    after, _t = pipeline(docs)
    delta = [d for d in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
             if d[:1] in "+-" and not d.startswith(("+++", "---"))]
    print("leaves=%d  materialize+render FRR best of %d: %.3f s  goal < 0.5 s: %s  config lines=%d"
          % (count, repeats, best, "PASS" if best < 0.5 else "FAIL", len(before.splitlines())))
    print("reload diff when leaf %d is added: %d lines (goal O(1))" % (count + 1, len(delta)))
    for line in delta:
        print("   " + line)
    return 0 if best < 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
