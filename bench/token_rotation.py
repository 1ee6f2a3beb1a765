# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a join-token rotation costs an RR: the reload (registry rebuild, each record's signer found by HMAC)
and a submission, with one token and with a rotation's two, at N admitted claims.

The worst case is measured: every record signed with the *last* listed token, so each is verified against
every token before it. Prints seconds and the ratio to the one-token case (ratios hold on noisy machines).
"""

import copy
import datetime
import pathlib
import sys
import timeit

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))   # tests/support: synthetic documents

from boma_mesh_utils.sam.core.keyring import JoinKey  # noqa: E402
from boma_mesh_utils.sam.core.loader import load_resources  # noqa: E402
from boma_mesh_utils.sam.core.registry import Registry  # noqa: E402
from support import synthetic  # noqa: E402

CURRENT, NEXT = b"bench-current-token-0123", b"bench-next-token-456789"
NOW = datetime.datetime.now(datetime.timezone.utc)
STAMP = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")


def documents(ids):
    docs = copy.deepcopy(synthetic.service_documents("/nonexistent"))
    del docs[1]["spec"]["joinTokenFrom"]
    docs[1]["spec"]["joinTokens"] = [{"id": i, "file": "/nonexistent/" + i} for i in ids]
    return load_resources([("bench", {"resources": docs})])[0]


def records(count, key):
    return [{"name": d["metadata"]["name"], "policy": "bench", "nonce": d["spec"]["joinNonce"], "spec": d["spec"],
             "generation": 1, "acceptedAt": STAMP, "expiresAt": None, "revoked": False, "revokedReason": None}
            for d in synthetic.signed_claims(count, key, timestamp=STAMP)]


def best_of(runs, work):
    return min(timeit.repeat(work, number=1, repeat=runs))


def main(count):
    rows = records(count, NEXT)
    one = {"bench": [JoinKey("next", NEXT)]}
    two = {"bench": [JoinKey("current", CURRENT), JoinKey("next", NEXT)]}
    single = best_of(3, lambda: Registry(documents(["next"]), rows, one))
    rotation = best_of(3, lambda: Registry(documents(["current", "next"]), rows, two))
    ratio = rotation / single
    print("reload at %d claims: one token %.3f s, two tokens %.3f s (x%.2f)" % (count, single, rotation, ratio))
    doc = synthetic.signed_claims(1, NEXT, timestamp=STAMP, start=count)[0]
    reg_one, reg_two = Registry(documents(["next"]), rows, one), Registry(documents(["current", "next"]), rows, two)
    check_one = best_of(200, lambda: reg_one.check(doc["metadata"]["name"], doc["spec"], one, NOW))
    check_two = best_of(200, lambda: reg_two.check(doc["metadata"]["name"], doc["spec"], two, NOW))
    micro = (check_one * 1e6, check_two * 1e6, check_two / check_one)
    print("submission check: one token %.0f us, two tokens %.0f us (x%.2f)" % micro)
    retiring = Registry(documents(["current", "next"]), rows,
                        {"bench": [JoinKey("current", CURRENT), JoinKey("next", NEXT, NOW)]})
    best = best_of(5, lambda: retiring.listing(NOW, retiring=True))
    listed = len(retiring.listing(NOW, retiring=True)["items"])
    print("claim list --retiring at %d claims: %.3f s (%d listed)" % (count, best, listed))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10000)
