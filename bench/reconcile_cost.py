# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Python side of one RR reconcile run at N claims: what a new claim costs before vtysh (docs/scale.md).

An in-process enrollment service (rr/service.py, bench/scale_mesh.py's RR documents) holds N accepted claims and
has reconciled once; then one more claim is accepted and the run's steps are timed as `samctl serve` logs them:
``state`` (records, validation, materialization: rr/reconcile.desired_state), ``render`` (render_frr), ``delta``
(frr_delta against the last candidate) and ``lint`` (lint_frr of the whole candidate).  No FRR: what vtysh and
bgpd add is bench/lab_scale.py's.  Prints each N's best of REPEATS and the ratio of the largest N to the smallest
(issue 19: within 1.5x from 200 to 5,000 leaves); exit 1 when the ratio is over --max-ratio.

Usage: .venv/bin/python bench/reconcile_cost.py [--leaves N ...] [--repeats R] [--max-ratio X]
"""

import argparse
import datetime
import pathlib
import shutil
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))   # tests/support: synthetic claims
sys.path.insert(0, str(ROOT / "bench"))
from scale_mesh import JOIN_KEY, rr_documents  # noqa: E402

from boma_mesh_utils.sam.core import wire  # noqa: E402
from boma_mesh_utils.sam.core.fields import format_time  # noqa: E402
from boma_mesh_utils.sam.core.loader import load_resources  # noqa: E402
from boma_mesh_utils.sam.core.render import frr_delta  # noqa: E402
from boma_mesh_utils.sam.core.render.frr import lint_frr, render_frr  # noqa: E402
from boma_mesh_utils.sam.rr import reconcile  # noqa: E402
from boma_mesh_utils.sam.rr.service import Service  # noqa: E402
from support import synthetic  # noqa: E402

STEPS = ("state", "render", "delta", "lint")


def run_once(service):
    """(candidate, {step: seconds}) of one run as rr/reconcile + apply/node do it, without FRR."""
    steps = {}
    started = time.perf_counter()
    state = reconcile.desired_state(service, "rr-a", True)
    steps["state"] = time.perf_counter() - started
    started = time.perf_counter()
    candidate = render_frr(state)
    steps["render"] = time.perf_counter() - started
    return candidate, steps


def measure(count, repeats, workdir):
    """Best seconds per step for one more claim at ``count`` claims."""
    token = workdir / "join-token"
    token.write_text(JOIN_KEY.decode() + "\n")
    resources, _findings = load_resources([("rr.json", {"resources": rr_documents("rr-a", str(token), count + 100)})])
    service = Service("rr-a", resources, str(workdir / ("rr-%d.db" % count)), b"leaf-token-0123456789",
                      b"admin-token-0123456789", lambda _policy: JOIN_KEY)
    now = format_time(datetime.datetime.now(datetime.timezone.utc))
    claims = synthetic.signed_claims(count + repeats, JOIN_KEY, timestamp=now, nonce="cost-%d" % count)
    for claim in claims[:count]:
        service.submit(wire.submit_request(claim["metadata"]["name"], claim["spec"]))
    last, _steps = run_once(service)                         # the start-up run: every cache filled once
    best = {}
    for claim in claims[count:]:
        service.submit(wire.submit_request(claim["metadata"]["name"], claim["spec"]))
        candidate, steps = run_once(service)
        started = time.perf_counter()
        change = frr_delta.delta(last, candidate)
        steps["delta"] = time.perf_counter() - started
        started = time.perf_counter()
        problems = lint_frr(candidate)
        steps["lint"] = time.perf_counter() - started
        if problems or change.empty:
            raise SystemExit("reconcile_cost: the run at %d claims is wrong: %s" % (count, problems or "no delta"))
        last = candidate
        for step, seconds in steps.items():
            best[step] = min(best.get(step, seconds), seconds)
    service.close()
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, action="append", help="default: 200, 1000 and 5000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-ratio", type=float, default=None, help="exit 1 when largest/smallest is over it")
    args = parser.parse_args()
    counts = sorted(args.leaves or (200, 1000, 5000))
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="boma-reconcile-cost-"))
    try:
        figures = {count: measure(count, args.repeats, workdir) for count in counts}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("== reconcile run, Python side, one more claim (best of %d, seconds) ==" % args.repeats)
    print("%8s %s %8s" % ("claims", " ".join("%8s" % s for s in STEPS), "total"))
    for count in counts:
        f = figures[count]
        print("%8d %s %8.4f" % (count, " ".join("%8.4f" % f[s] for s in STEPS), sum(f.values())))
    low, high = sum(figures[counts[0]].values()), sum(figures[counts[-1]].values())
    ratio = high / low
    print("ratio %d/%d: %.1fx (claims: %.0fx)" % (counts[-1], counts[0], ratio, counts[-1] / counts[0]))
    if args.max_ratio is not None and ratio > args.max_ratio:
        print("reconcile_cost: ratio %.1fx is over %.1fx" % (ratio, args.max_ratio))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
