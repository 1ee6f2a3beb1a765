# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 18: what a leaf's renewal costs the RR, next to a real change (no frr-reload for a renewal, in figures).

One network namespace with a real FRR (zebra + bgpd, started with nothing but "hostname rr-a") and
`samctl serve --reconcile bgp --reconcile-interval 0.2` in it (unix socket, as tests/netns/test_service_reconcile).
The RR's documents are the cloudedge inventory's view of rr-a without claims (the synthetic bench documents of
tests/support have no BGPRouter, so they do not render for FRR); N synthetic leaves are signed for the
cloudedge-leaves policy (endpoint and owned /32 come from /24s: N <= 244).

1. N leaves enrolled through the API, until a `reconcile: bgp changed ... (N leaves)` line: enrollment wall time,
   the reconcile runs it took, the last one's duration, the RR's CPU seconds.
2. R renewals of random enrolled leaves (same intent, re-signed with a new nonce and timestamp), one at a time,
   each waited for its own reconcile run: submit p50/p99, reconcile runs (`unchanged` vs full applies), RR CPU
   per renewal, running config and bgpd pid before/after.
3. One new leaf (a real change at N leaves): its apply (a delta since issue 19), its duration (log) and RR CPU.

RR CPU = utime+stime of the samctl process (`ip netns exec` execs, so the Popen pid is samctl's) plus its waited-for
children (frr-reload.py, vtysh).  --repair-interval is 3600 s so that no periodic repair falls in the window.

Usage (root, FRR installed): sudo .venv/bin/python bench/renewal_cost.py [LEAVES] [RENEWALS]   (default 200 100)
"""

import datetime
import json
import os
import pathlib
import random
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))   # mesh_views, netns (harness), support

from mesh_views import rr_view_reading, secret_file  # noqa: E402
from netns.harness import Topology, cleanup_stale  # noqa: E402
from netns.procs import _stop_procs  # noqa: E402

from boma_mesh_utils.sam.core import signing, wire  # noqa: E402
from boma_mesh_utils.sam.io import enroll_client  # noqa: E402

SAMCTL = str(pathlib.Path(sys.executable).with_name("samctl"))
JOIN_KEY = b"renewal-bench-join-token-0123456789"
LEAF_TOKEN, ADMIN_TOKEN = "renewal-bench-leaf-token-abcdef", "renewal-bench-admin-token-ghijkl"
INTERVAL = 0.2
PREFIX = "bmrenew"   # our own namespace prefix: cleanup_stale never touches other engineers' runs
TICK = os.sysconf("SC_CLK_TCK")
DURATION = re.compile(r"\((\d+(?:\.\d+)?)s\)\s*$")


def missing():
    reasons = []
    if os.geteuid() != 0:
        reasons.append("must run as root (network namespace, FRR daemons)")
    if not os.access("/usr/lib/frr/bgpd", os.X_OK) or not os.access("/usr/lib/frr/frr-reload.py", os.X_OK):
        reasons.append("FRR missing (/usr/lib/frr/bgpd, frr-reload.py)")
    if shutil.which("ip") is None:
        reasons.append("`ip` missing (iproute2)")
    return reasons


def intent(index):
    """Leaf i of policy cloudedge-leaves: tunnel 10.255.1+i/250.x, endpoint 10.20.0.10+i, owns 10.77.60.10+i."""
    high, low = divmod(index, 250)
    tunnel = "10.255.%d.%d" % (1 + high, low + 1)
    return {"policyRef": "SAMEnrollmentPolicy/cloudedge-leaves", "rrSetRef": "SAMRRSet/cloudedge-rrs",
            "leafID": "leaf-s%d" % index, "joinAudience": "cloudedge-private-underlay",
            "tunnelAddress": tunnel + "/32", "endpoint": "10.20.0.%d" % (10 + index),
            "mobility": {"ownedAddresses": ["10.77.60.%d/32" % (10 + index)]},
            "bgp": {"asn": 64577, "routerID": tunnel}}


def signed(index):
    now = datetime.datetime.now(datetime.timezone.utc)
    return "leaf-s%d" % index, signing.sign_claim(intent(index), JOIN_KEY, os.urandom(16).hex(), now)


def cpu(pid):
    """(own, children) CPU seconds of pid: utime+stime, cutime+cstime of /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK, (int(fields[13]) + int(fields[14])) / TICK


def cpu_total(pid):
    return sum(cpu(pid))


class Service:
    def __init__(self, topo, frr, tmp):
        self.socket, self.log = "unix:" + str(tmp / "rr-a.sock"), tmp / "rr-a.log"
        confdir = tmp / "frr-persist"
        confdir.mkdir()
        config = tmp / "rr.json"
        token_file = secret_file(tmp / "join-token", JOIN_KEY.decode())
        config.write_text(json.dumps({"resources": rr_view_reading(token_file)}))
        argv = ["ip", "netns", "exec", topo.netns_name("rr-a"), SAMCTL, "serve", "-v", "--config", str(config),
                "--node", "rr-a", "--db", str(tmp / "rr-a.db"), "--socket", str(tmp / "rr-a.sock"),
                "--token-file", secret_file(tmp / "leaf-token", LEAF_TOKEN),
                "--admin-token-file", secret_file(tmp / "admin-token", ADMIN_TOKEN),
                "--reconcile", "bgp", "--reconcile-interval", str(INTERVAL), "--repair-interval", "3600",
                "--frr-vty-socket", frr.vty_dir, "--frr-confdir", str(confdir)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        topo._track(self.proc.pid)   # a crashed run's service is killed by the next run's cleanup_stale
        ready, _w, _x = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on "):
            raise RuntimeError("samctl serve did not start: %r\n%s" % (line, self.log.read_text()[-3000:]))

    def submit(self, name, spec):
        started = time.perf_counter()
        resp = enroll_client.request(self.socket, "POST", wire.submit_path(), LEAF_TOKEN,
                                     wire.submit_request(name, spec), timeout=30)
        if resp.status != 200:
            raise RuntimeError("%s: HTTP %s %s" % (name, resp.status, resp.body[:300]))
        return time.perf_counter() - started

    def runs(self):
        lines = self.log.read_text().splitlines()
        return [line for line in lines if "reconcile: " in line or "reconcile failed" in line]

    def wait_run(self, mark, match, timeout=120):
        """The first reconcile log line after index ``mark`` containing ``match`` (failed runs raise)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.runs()[mark:]
            bad = [line for line in lines if "reconcile failed" in line]
            if bad:
                raise RuntimeError(bad[0])
            found = [line for line in lines if match in line]
            if found:
                return found[0]
            time.sleep(0.02)
        raise RuntimeError("no reconcile line with %r after %d s:\n%s" % (match, timeout, "\n".join(self.runs()[-5:])))


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def bench(topo, tmp, leaves, renewals, services):
    topo.add_host("rr-a")
    topo.address("rr-a", "10.99.0.2/32")
    frr = topo.start_frr("rr-a", "hostname rr-a\n!\n")
    service = Service(topo, frr, tmp)
    services.append(service)
    pid = service.proc.pid
    service.wait_run(0, "(0 leaves)", timeout=30)    # the start-up reconcile (peer-group, no leaf)
    time.sleep(INTERVAL * 2)

    # 1. N leaves through the API, until a run has applied all of them.
    mark, cpu0, started = len(service.runs()), cpu_total(pid), time.monotonic()
    for index in range(leaves):
        service.submit(*signed(index))
    submitted = time.monotonic() - started
    line = service.wait_run(mark, "(%d leaves)" % leaves)
    enroll_wall, enroll_cpu = time.monotonic() - started, cpu_total(pid) - cpu0
    enroll_runs = len(service.runs()) - mark
    ranges = frr.vtysh("show running-config").count("bgp listen range")
    print("enrollment: %d leaves submitted in %.2f s; applied after %.1f s in %d reconcile runs, the last %s; "
          "%d listen ranges in the running config; RR CPU %.2f s"
          % (leaves, submitted, enroll_wall, enroll_runs, DURATION.search(line).group(0), ranges, enroll_cpu))
    time.sleep(INTERVAL * 3)

    # 2. R renewals of random enrolled leaves, each waited for its own reconcile run.
    before, bgpd, bgpd_cpu0 = frr.vtysh("show running-config"), frr.pid("bgpd"), cpu_total(frr.pid("bgpd"))
    mark, (own0, kids0), latencies = len(service.runs()), cpu(pid), []
    for count in range(renewals):
        latencies.append(service.submit(*signed(random.randrange(leaves))))
        deadline = time.monotonic() + 30
        while len(service.runs()) - mark < count + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(INTERVAL + 0.05)   # past the rate limit: the next renewal gets its own run
    own1, kids1 = cpu(pid)
    lines = service.runs()[mark:]
    unchanged = sum("reconcile: unchanged" in line for line in lines)
    applied = sum("reconcile: bgp" in line for line in lines)
    failed = sum("reconcile failed" in line for line in lines)
    same_config, same_bgpd = frr.vtysh("show running-config") == before, frr.pid("bgpd") == bgpd
    per_renewal = ((own1 - own0) + (kids1 - kids0)) / renewals
    yes = {True: "yes", False: "NO"}
    print("renewals: %d at N=%d leaves; submit p50 %.1f ms p99 %.1f ms; reconcile runs %d: %d applied to FRR "
          "(delta or frr-reload), %d unchanged%s; RR CPU %.1f ms per renewal (children %.1f ms); "
          "running config unchanged: %s; bgpd pid unchanged: %s; bgpd CPU %.0f ms in all"
          % (renewals, leaves, pct(latencies, 0.5), pct(latencies, 0.99), len(lines), applied, unchanged,
             ", %d failed" % failed if failed else "", per_renewal * 1000, (kids1 - kids0) / renewals * 1000,
             yes[same_config], yes[same_bgpd], (cpu_total(bgpd) - bgpd_cpu0) * 1000))

    # 3. A real change at N leaves: one new leaf, one apply (a delta since issue 19: the log line says which).
    time.sleep(INTERVAL * 3)
    mark, cpu0, started = len(service.runs()), cpu_total(pid), time.monotonic()
    service.submit(*signed(leaves))
    line = service.wait_run(mark, "(%d leaves)" % (leaves + 1))
    wall, change_cpu = time.monotonic() - started, cpu_total(pid) - cpu0
    apply_s = float(DURATION.search(line).group(1))
    how = "delta" if "reconcile: bgp delta" in line else "full apply (frr-reload)"
    print("a real change at N=%d: %s %.1f s (submit -> applied %.2f s), RR CPU %.2f s; log: %s"
          % (leaves, how, apply_s, wall, change_cpu, line.split("reconcile: ", 1)[1]))
    print("ratio: the change costs the RR %.0fx the CPU of a renewal (%.2f s vs %.1f ms)"
          % (change_cpu / per_renewal if per_renewal else float("inf"), change_cpu, per_renewal * 1000))


def main():
    args = [int(a) for a in sys.argv[1:3]]
    leaves, renewals = (args + [200, 100][len(args):])[:2]
    if missing():
        print("renewal_cost: skipped: " + "; ".join(missing()))
        return 0
    if not 1 <= leaves <= 244 or renewals < 1:
        sys.exit("LEAVES must be 1..244 (the cloudedge /24s), RENEWALS >= 1")
    cleanup_stale(PREFIX)
    tmp, topo, services, started = pathlib.Path(tempfile.mkdtemp(prefix="renewal-cost-")), None, [], time.monotonic()
    try:
        topo = Topology(tmp / "netns", prefix=PREFIX)
        bench(topo, tmp, leaves, renewals, services)
    except BaseException:
        log = tmp / "rr-a.log"
        if log.exists():
            print("--- rr-a.log (tail) ---\n" + "\n".join(log.read_text().splitlines()[-30:]), file=sys.stderr)
        raise
    finally:
        for service in services:   # one that failed to start is killed with its namespace below
            _stop_procs([service.proc], grace=10)
            service.proc.stdout.close()
        if topo is not None:
            topo.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("run time %.1f s" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
