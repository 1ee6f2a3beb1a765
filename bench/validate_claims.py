"""Validate + HMAC-verify N claims in one policy and print the figures (goal: 10,000 in < 1 s).

Usage: bench/validate_claims.py [N] [REPEATS]   (run from the repo with .venv/bin/python)
Prints wall time for load+validate, per-claim cost, and the ratio to a bare HMAC loop over
the same claims, which is the machine-independent figure.
"""

import datetime
import gc
import hashlib
import hmac
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))   # tests/support: synthetic documents

from boma_mesh_utils.sam.core import payload  # noqa: E402
from boma_mesh_utils.sam.core.loader import load_resources  # noqa: E402
from boma_mesh_utils.sam.core.validate import route_admission, validate  # noqa: E402
from support.synthetic import POLICY_DOCS, signed_claims  # noqa: E402

TOKEN = b"bench-join-token"
NOW = datetime.datetime(2026, 6, 28, 1, 0, tzinfo=datetime.timezone.utc)


def documents(count):
    return list(POLICY_DOCS) + signed_claims(count, TOKEN)


def _best(docs, repeats):
    """Best wall time of load + validate over ``repeats`` runs, and the last report."""
    best, report = float("inf"), None
    for _repeat in range(repeats):
        start = time.perf_counter()
        resources, findings = load_resources([("bench", docs)])
        report = validate(resources, tokens={"bench": TOKEN}, now=NOW, findings=findings)
        best = min(best, time.perf_counter() - start)
    return best, report


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    docs = documents(count)
    best, report = _best(docs, repeats)
    assert report.ok and len(report.verified) == count, [str(f) for f in report.errors[:5]]
    start = time.perf_counter()
    admit = route_admission(report).admit_route
    for i in range(count):
        a, b = divmod(i + 1, 250)
        admit("10.128.%d.%d" % (a, b + 1), "10.64.%d.%d/32" % (a, b + 1))
    admit_time = time.perf_counter() - start
    texts = [payload.canonical_payload(d["spec"]).encode() for d in docs[2:]]
    start = time.perf_counter()
    for text in texts:
        hmac.new(TOKEN, text, hashlib.sha256).hexdigest()
    bare = time.perf_counter() - start
    half, _report = _best(docs[: 2 + count // 2], repeats)
    print("claims=%d  validate+verify best of %d: %.3f s  (%.1f us/claim)  goal < 1 s: %s"
          % (count, repeats, best, best / count * 1e6, "PASS" if best < 1.0 else "FAIL"))
    print("route admission: %d lookups in %.3f s (%.2f us each)" % (count, admit_time, admit_time / count * 1e6))
    print("ratio validate / bare HMAC loop: %.1fx" % (best / bare))
    print("linearity: time(N) / time(N/2) = %.2f (2.0 is linear)" % (best / half))
    # CPython's cyclic GC walks the whole (growing) heap; without it the core itself is linear.
    gc.collect()
    gc.disable()
    try:
        full, _report = _best(docs, repeats)
        half, _report = _best(docs[: 2 + count // 2], repeats)
    finally:
        gc.enable()
    print("without cyclic GC: %.3f s, time(N) / time(N/2) = %.2f" % (full, full / half))
    return 0 if best < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
