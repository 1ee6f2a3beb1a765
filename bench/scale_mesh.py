# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The RR side of bench/lab_scale.py: documents, the enrollment service per RR, bgpd's view, /proc figures.

The documents are tests/support/synthetic.py's (policy ``bench``, RRSet ``rrs`` with rr-a 10.99.0.2
and rr-b 10.99.0.3, leaf i at tunnel 10.128.x.y owning 10.64.x.y/32) plus what an RR needs of its own to
materialize BGP: a BGPRouter, a BGPDynamicPeer over the leaves' tunnel range and a SAMTransportProfile that
takes its peers from the policy (the shape of inventories/cloudedge/host_vars/rr-a.yml).
"""

import json
import os
import pathlib
import re
import select
import subprocess
import sys
import time

from netns.procs import _stop_procs  # tests/ is on sys.path (lab_scale.py puts it there)

from boma_mesh_utils.sam.core import wire
from boma_mesh_utils.sam.io import enroll_client
from support import synthetic

SAMCTL = str(pathlib.Path(sys.executable).with_name("samctl"))
ASN = 64577
JOIN_KEY = b"scale-join-token-0123456789"
LEAF_TOKEN = "scale-leaf-api-token-abcdef"
ADMIN_TOKEN = "scale-admin-api-token-ghijkl"
API_PORT = 8443
# The dynamic peer's source prefix: route-map sequence numbers are the offset in it (render_frr), so it
# must be small enough for every leaf's offset to stay below 65535 (a /10 would not be for large N).
LEAF_SOURCE = "10.128.0.0/16"
RRS = {  # RRSet members of synthetic.RRSET_DOC: tunnel address (BGP identity) and underlay endpoint
    member["nodeRef"]: {"tunnel": member["tunnelAddress"].split("/")[0], "endpoint": member["endpoint"]}
    for member in synthetic.RRSET_DOC["spec"]["members"]
}
_RECONCILE = re.compile(r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*?reconcile: bgp (?P<what>\w+)"
                        r"(?: \+(?P<add>\d+) -(?P<del>\d+) lines(?:, \d+ objects verified)?)? "
                        r"\((?P<leaves>\d+) leaves\) \((?P<secs>[0-9.]+)s\)(?: \[(?P<steps>[^\]]*)\])?", re.M)


def _log_time(text):
    """samctl's log time ("2026-12-04 03:14:50,387", local time) as Unix time."""
    stamp, _comma, millis = text.partition(",")
    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000.0


def _steps(text):
    """The reconcile log's "[state 0.072, render 0.036, ...]" as {step: seconds} ({} when absent)."""
    steps = {}
    for item in (text or "").split(", "):
        name, _sep, value = item.rpartition(" ")
        if name:
            steps[name] = float(value)
    return steps


def _res(api, kind, name, spec):
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name}, "spec": spec}


def rr_documents(node, join_token_file, listen_limit=None):
    """One RR's documents for `samctl serve --config`: the shared bench set plus its BGP resources.

    ``listen_limit``: the BGPDynamicPeer's listen.limit (render_frr's default `bgp listen limit` is 1000)."""
    net = "net.routerd.net/v1alpha1"
    pool = synthetic.POLICY_DOCS[0]["spec"]["prefix"]
    import_policy = {"allowedPrefixes": [pool], "allowedPrefixLengthMin": 32, "allowedPrefixLengthMax": 32}
    listen = {"sourcePrefixes": [LEAF_SOURCE]}
    if listen_limit:
        listen["limit"] = listen_limit
    own = [
        _res(net, "BGPRouter", "scale-bgp", {"asn": ASN, "routerID": RRS[node]["tunnel"], "listen": {"port": 179},
                                             "importPolicy": dict(import_policy, nextHopRewrite="unchanged")}),
        _res(net, "BGPDynamicPeer", "scale-leaves", {
            "routerRef": "BGPRouter/scale-bgp", "peerASN": ASN, "listen": listen,
            "routeReflectorClient": True, "routeReflectorClusterID": "10.99.0.254",
            "importPolicy": dict(import_policy, nextHopRewrite="peer-address")}),
        _res("mobility.routerd.net/v1alpha1", "SAMTransportProfile", node, {
            "selfNodeRef": node, "mode": "ipip", "encryption": "none", "addressingMode": "pair-stable",
            "innerPrefix": LEAF_SOURCE, "underlayInterface": "eth0", "localEndpoint": RRS[node]["endpoint"],
            "peersFrom": [{"resource": "SAMEnrollmentPolicy/bench"}],
            "bgp": {"routerRef": "BGPRouter/scale-bgp", "peerASN": ASN, "generatePeers": False}}),
    ]
    return synthetic.service_documents(join_token_file) + own


def leaves_of(claims):
    """[(leaf name, tunnel address, owned /32)] in claim order, read from the signed claims themselves."""
    return [(doc["metadata"]["name"], doc["spec"]["tunnelAddress"].split("/")[0],
             doc["spec"]["mobility"]["ownedAddresses"][0]) for doc in claims]


class RRService:
    """`samctl serve --reconcile bgp` in an RR's namespace, exactly as the sam_rr role runs it (no TLS here).

    It listens on the RR's underlay address (the peer RR replicates over TCP through the namespaces) and on
    a unix socket in the work dir (the bench, outside every namespace, submits there: the same HTTP API).
    """

    def __init__(self, topo, node, frr, workdir, listen, peer, listen_limit=None, extra=()):
        self.node, self.frr = node, frr
        self.socket = str(workdir / (node + ".sock"))
        self.log = workdir / (node + ".service.log")
        self.confdir = workdir / (node + "-frr")
        self.confdir.mkdir()
        config = workdir / (node + ".json")
        config.write_text(json.dumps({"resources": rr_documents(node, str(workdir / "join-token"), listen_limit)}))
        self.argv = ["ip", "netns", "exec", topo.netns_name(node), SAMCTL, "serve", "--config", str(config),
                     "--node", node, "--db", str(workdir / (node + ".db")), "--listen", "%s:%d" % (listen, API_PORT),
                     "--socket", self.socket, "--token-file", str(workdir / "leaf-token"),
                     "--admin-token-file", str(workdir / "admin-token"), "--peer", "http://%s:%d" % (peer, API_PORT),
                     "--reconcile", "bgp", "--frr-vty-socket", frr.vty_dir, "--frr-confdir", str(self.confdir),
                     *extra]
        self._topo, self.proc = topo, None

    def start(self, timeout=30):
        with open(self.log, "ab") as log:
            # Own session: Ctrl-C reaches the bench only, whose clean-up then stops the service in order.
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        self._topo._track(self.proc.pid)   # a crashed bench's service is killed by the next run's cleanup_stale
        ready, _w, _x = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError("%s: samctl serve did not start: %r\n%s" % (self.node, line, self.tail()))
        return self

    def submit(self, doc):
        body = wire.submit_request(doc["metadata"]["name"], doc["spec"])
        return enroll_client.request("unix:" + self.socket, "POST", wire.submit_path(), LEAF_TOKEN, body, timeout=30)

    def health(self):
        return json.loads(enroll_client.request("unix:" + self.socket, "GET", wire.health_path(), timeout=10).body)

    def reconciles(self):
        """Every reconcile run the service logged: {what, adds, deletes, leaves, seconds, steps, at}; ``at`` is
        the Unix time the run ended (its log line: logged after FRR's read-back matched)."""
        runs = []
        for match in _RECONCILE.finditer(self.log.read_text(errors="replace")):
            runs.append({"what": match["what"], "adds": int(match["add"] or 0), "deletes": int(match["del"] or 0),
                         "leaves": int(match["leaves"]), "seconds": float(match["secs"]),
                         "steps": _steps(match["steps"]), "at": _log_time(match["at"])})
        return runs

    def failures(self):
        return [line for line in self.log.read_text(errors="replace").splitlines() if "reconcile failed" in line]

    def tail(self, lines=30):
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def stop(self):
        if self.proc is None:
            return
        _stop_procs([self.proc], grace=15)
        self.proc.stdout.close()
        self.proc = None


# --------------------------------------------------------------------------- bgpd's view


def listen_ranges(frr):
    return sum(1 for line in frr.vtysh("show running-config").splitlines() if line.startswith(" bgp listen range "))


def summary_peers(frr):
    return frr.json("show bgp ipv4 unicast summary json").get("peers", {})


def established(peers):
    return sorted(addr for addr, peer in peers.items() if peer.get("state") == "Established")


def learned_paths(frr):
    """{(prefix, neighbor)} of every path bgpd accepted from a BGP neighbor (locally originated ones left out)."""
    routes = frr.json("show bgp ipv4 unicast json").get("routes", {})
    return {(prefix, path.get("peerId")) for prefix, paths in routes.items() for path in paths
            if path.get("peerId") not in (None, "0.0.0.0", "(unspec)")}


def received(frr, neighbor):
    """Prefixes bgpd received from ``neighbor`` before policy (soft-reconfiguration inbound keeps them)."""
    out = frr.json("show bgp ipv4 unicast neighbors %s received-routes json" % neighbor)
    return set(out.get("receivedRoutes", {}))


def check_admission(frr, leaves, hostile):
    """(accepted, rejected hostile, problems) of one RR against the claims.

    Accepted must be exactly each leaf's owned /32 from that leaf's own session; every hostile announcement
    must have arrived (received-routes) and be absent from the RIB for that neighbor.
    """
    owned = {(prefix, tunnel) for _name, tunnel, prefix in leaves}
    paths = learned_paths(frr)
    problems = ["accepted without a claim: %s from %s" % pair for pair in sorted(paths - owned)]
    problems += ["owned /32 missing: %s from %s" % pair for pair in sorted(owned - paths)]
    rejected = 0
    for tunnel, prefix in sorted(hostile.items()):
        if prefix not in received(frr, tunnel):
            problems.append("hostile %s from %s never arrived (the check would prove nothing)" % (prefix, tunnel))
        elif (prefix, tunnel) in paths:
            problems.append("hostile %s from %s was ACCEPTED" % (prefix, tunnel))
        else:
            rejected += 1
    return len(paths & owned), rejected, problems


# --------------------------------------------------------------------------- /proc figures

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    """VmRSS of a process in KiB (None when it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid):
    """User + system CPU seconds a process has used so far (None when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
