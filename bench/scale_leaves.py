# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The leaf side of bench/lab_scale.py: N leaf BGP speakers as ExaBGP neighbors in one namespace.

Each leaf is one ``neighbor`` block per RR with ``local-address`` = the leaf's tunnel address (a /32 on the
namespace's lo), so every leaf has its own TCP session to each RR, sourced from the address its claim
admitted, exactly what the RR's per-claim ``bgp listen range <tunnel>/32`` expects. ExaBGP rather than N FRR
instances: one Python process holds 2N sessions in about 120 MB at N=200, where N bgpd+zebra pairs need
~N x 30 MB and 2N more processes on this 2-vCPU machine. The sessions are spread over ``procs`` processes
(one per vCPU by default): parsing the N x N reflected routes in Python, not the RRs, bounds the convergence time.
"""

import contextlib
import os
import pathlib
import subprocess
import sys

from netns.procs import _stop_procs  # tests/ is on sys.path (lab_scale.py puts it there)

EXABGP = str(pathlib.Path(sys.executable).with_name("exabgp"))
# Routes a few leaves announce besides their own /32, each a different kind of attack; the RR must reject
# all of them: another leaf's /32 (a hijack inside the pool), a pool address nobody owns, one outside the pool.
UNOWNED_IN_POOL = "10.64.255.254/32"
OUTSIDE_POOL = "192.0.2.1/32"
# ExaBGP settings through its environment (exabgp env lists them): no CLI pipe and no listener (the RRs never
# dial a dynamic peer), keep root (it binds nothing privileged, but dropping to nobody would need the config
# and log readable by nobody), and log connection events only (no per-keepalive statistics).
EXABGP_ENV = {
    "exabgp_api_cli": "false",
    "exabgp_tcp_bind": "",
    "exabgp_daemon_drop": "false",
    "exabgp_daemon_daemonize": "false",
    "exabgp_log_level": "INFO",
    "exabgp_log_packets": "false",
    "exabgp_log_routes": "false",
    "exabgp_log_rib": "false",
    "exabgp_log_statistics": "false",
}


def hostile_plan(leaves):
    """{tunnel address: hostile /32} for three leaves: the first hijacks the second's /32, the middle one
    announces an unowned pool address, the last one an address outside the pool (needs at least 4 leaves,
    so that none of them is the victim)."""
    return {leaves[0][1]: leaves[1][2], leaves[len(leaves) // 2][1]: UNOWNED_IN_POOL, leaves[-1][1]: OUTSIDE_POOL}


def neighbor_block(rr_address, tunnel, routes, asn, hold_time):
    lines = ["neighbor %s {" % rr_address,
             "    description leaf-%s;" % tunnel,
             "    router-id %s;" % tunnel,
             "    local-address %s;" % tunnel,
             "    local-as %d;" % asn,
             "    peer-as %d;" % asn,
             "    hold-time %d;" % hold_time,
             "    family {", "        ipv4 unicast;", "    }",
             "    static {"]
    # next-hop self: the leaf's tunnel address, the address its claim binds the /32 to (as the FRR leaf does).
    lines += ["        route %s next-hop self;" % route for route in routes]
    return "\n".join(lines + ["    }", "}", ""])


def exabgp_configs(leaves, rr_addresses, hostile, asn, procs=1, hold_time=90):
    """``procs`` configuration texts; every leaf's sessions (one per RR) live in the same process."""
    texts = [[] for _i in range(max(1, min(procs, len(leaves))))]
    for index, (_name, tunnel, owned) in enumerate(leaves):
        routes = [owned] + ([hostile[tunnel]] if tunnel in hostile else [])
        for rr in rr_addresses:
            texts[index % len(texts)].append(neighbor_block(rr, tunnel, routes, asn, hold_time))
    return ["\n".join(blocks) for blocks in texts]


class Speakers:
    """ExaBGP processes in the leaves' namespace, started and stopped together."""

    def __init__(self, topo, host, workdir, configs):
        self._topo, self.netns = topo, topo.netns_name(host)
        self.configs, self.logs, self.procs = [], [], []
        for index, text in enumerate(configs):
            path = workdir / ("exabgp-%d.conf" % index)
            path.write_text(text)
            self.configs.append(path)
            self.logs.append(workdir / ("exabgp-%d.log" % index))

    def validate(self):
        for path in self.configs:
            res = subprocess.run([EXABGP, "validate", str(path)], capture_output=True, text=True, timeout=120,
                                 check=False)
            if res.returncode != 0:
                raise RuntimeError("exabgp validate %s failed:\n%s%s" % (path, res.stdout[-2000:], res.stderr[-2000:]))

    def start(self):
        env = dict(os.environ, **EXABGP_ENV)
        for path, log in zip(self.configs, self.logs):
            with open(log, "ab") as out:
                # Own session (Ctrl-C reaches the bench only); ip netns exec execs, so the pid is ExaBGP's.
                proc = subprocess.Popen(["ip", "netns", "exec", self.netns, EXABGP, "server", str(path)],
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
            self.procs.append(proc)
            self._topo._track(proc.pid)

    def dead(self):
        """[(index, exit status)] of the processes that stopped on their own."""
        return [(i, p.returncode) for i, p in enumerate(self.procs) if p.poll() is not None]

    @property
    def pids(self):
        return [proc.pid for proc in self.procs]

    def tail(self, lines=20):
        out = []
        for log in self.logs:
            with contextlib.suppress(OSError):
                text = log.read_text(errors="replace").splitlines()[-lines:]
                out.append("--- %s ---\n%s" % (log.name, "\n".join(text)))
        return "\n".join(out)

    def stop(self):
        _stop_procs(self.procs)   # the harness's SIGTERM, then SIGKILL after 5 s
