"""One lab per test module (tools/lab/topology.py, as `make lab`), and what the lab tests share.

``lab_session(name)`` brings a lab up with a private prefix (``<name>-<6 hex>``), yields a ``LabRun`` and
takes it down again (nothing left: namespaces, /run/<prefix>, the daemons reaped). ``Ping`` measures a
traffic outage between two leaves' owned /32s from ping's own receive timestamps.
"""

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "lab"))
import labdaemons  # noqa: E402 - tools/lab is not a package
import labnet  # noqa: E402
import labvars  # noqa: E402
import topology  # noqa: E402

INVENTORY = ROOT / "inventories" / "lab"
RRS = ["rr-a", "rr-b"]
LEAVES = ["leaf-pve", "leaf-a", "leaf-b"]


def poll(predicate, timeout, interval=0.05):
    """(value, seconds) of the first truthy predicate(); (last value, seconds) at the timeout."""
    start = time.monotonic()
    while True:
        value = predicate()
        elapsed = time.monotonic() - start
        if value or elapsed > timeout:
            return value, elapsed
        time.sleep(interval)


def reap(pids, timeout=10):
    """waitpid our children that down killed: no zombie is left behind (PID 1 here reaps nothing)."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while True:
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.05)


class LabRun:
    def __init__(self, name, rr_bgp=None):
        self.prefix = "%s-%s" % (name, secrets.token_hex(3))
        self.lab = topology.load(INVENTORY, self.prefix, rr_bgp=rr_bgp or {})
        self.keeper = None
        ids = topology.identities(self.lab)
        self.tunnel = {h: str(ids[h][0][0].ip) for h in RRS + LEAVES}
        self.owned = {h: [str(i.network) for i in ids[h][1]] for h in LEAVES}
        self.frr = {}
        self.reaped = []

    # -- FRR
    def vty(self, host):
        if host not in self.frr:
            self.frr[host] = topology._frr(self.lab, host, self.keeper)
        return self.frr[host]

    def vtysh(self, host, *commands):
        argv = self.vty(host)._vtysh_argv()
        for command in commands:
            argv += ["-c", command]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert res.returncode == 0, f"{host}: {commands}: rc={res.returncode}\n{res.stdout}\n{res.stderr}"
        return res.stdout

    def announce_hostile(self, leaf, prefixes):
        """A compromised leaf (as molecule/mesh/verify.yml): its FRR export filter opened, ``prefixes`` announced."""
        asn = re.search(r"^router bgp (\d+)", self.vtysh(leaf, "show running-config"), re.MULTILINE).group(1)
        commands = ["configure terminal"]
        commands += ["ip prefix-list SAM-OWN seq %d permit %s" % (900 + i, p) for i, p in enumerate(prefixes)]
        commands += [f"router bgp {asn}", "address-family ipv4 unicast"] + [f"network {p}" for p in prefixes]
        self.vtysh(leaf, *commands)

    def json(self, host, command):
        out = self.vtysh(host, command)
        return json.loads(out) if out.strip() else {}

    def rib(self, host):
        return self.json(host, "show bgp ipv4 unicast json").get("routes", {})

    def fib(self, host):
        """{prefix: [next hops]} of the BGP routes zebra installed in the host's kernel.

        A leaf's routes are ECMP over both RRs (next-hop-self): each RR's tunnel address and the underlay
        address it resolves through.
        """
        out = {}
        for prefix, entries in self.json(host, "show ip route bgp json").items():
            for entry in entries:
                if entry.get("installed"):
                    out[prefix] = sorted(n.get("ip", "") for n in entry.get("nexthops", []) if n.get("active"))
        return out

    def summary(self, host):
        return self.json(host, "show bgp ipv4 unicast summary json").get("peers", {})

    def leaf_peers(self, host):
        """{leaf: summary row} of the RR's sessions with the leaves (by their tunnel address)."""
        peers = self.summary(host)
        return {leaf: peers[self.tunnel[leaf]] for leaf in LEAVES if self.tunnel[leaf] in peers}

    # -- the RR services' admin API (unix socket)
    def hostdir(self, host):
        return topology.run_dir(self.lab, host)

    def rr_endpoint(self, host):
        return "unix:" + str(self.hostdir(host) / "state" / f"{host}.sock")

    def admin_token(self, host):
        return (self.hostdir(host) / "etc" / "admin-token").read_text().strip()

    def vault(self):
        """The lab's generated test values (vault.sam: api_token, admin_token, join_tokens)."""
        return yaml.safe_load((topology.run_dir(self.lab) / "vault.yml").read_text())["vault"]["sam"]

    def resigned_claim(self, leaf):
        """(name, spec, join token) of the leaf's claim intent (host_vars) signed now, as its agent signs it."""
        return labvars.sign_now(self.lab, leaf)

    def stop_agent(self, leaf):
        """Stop the leaf's agent daemon (SIGTERM: no teardown), e.g. before a test submits the leaf's claims itself."""
        pid = topology.agent_pid(self.lab, leaf)
        if pid:
            os.kill(pid, signal.SIGTERM)
            reap([pid])
            self.reaped.append(pid)

    # -- namespaces
    def ns(self, host):
        return topology.ns_name(self.lab, host)

    def run(self, host, *argv, check=True):
        res = subprocess.run(["ip", "netns", "exec", self.ns(host), *argv], capture_output=True, text=True,
                             timeout=30, check=False)  # fmt: skip
        assert not check or res.returncode == 0, f"{host}: {argv}: {res.stdout}{res.stderr}"
        return res

    def underlay_address(self, host):
        return str(labnet._public(self.lab, host)[1])

    def rr_on_path(self, src_leaf, dst_leaf):
        """The RR the kernel's ECMP hash sends src_leaf's owned /32 -> dst_leaf's through (ip route get)."""
        src, dst = self.owned[src_leaf][0].split("/")[0], self.owned[dst_leaf][0].split("/")[0]
        out = self.run(src_leaf, "ip", "route", "get", dst, "from", src).stdout
        via = re.search(r" via (\S+)", out)
        by_address = {self.underlay_address(rr): rr for rr in RRS} | {self.tunnel[rr]: rr for rr in RRS}
        return by_address.get(via.group(1)) if via else None

    def set_underlay(self, host, up):
        """Pull (or put back) every cable of ``host``: its veth peers in the underlay namespace go down.

        Silent: no RST, no NOTIFICATION, no ICMP reaches anybody; the host's own links lose carrier.
        """
        for segment, _addr in self.lab["hosts"][host]:
            peer = f"{host}-{segment}"[:15]   # topology._host_up's name for the underlay end
            subprocess.run(["ip", "-n", self.ns("underlay"), "link", "set", peer, "up" if up else "down"],
                           check=True, capture_output=True, text=True)  # fmt: skip

    # -- the roles and the RR services
    def playbook(self, *args, extra_vars=None):
        """ansible-playbook site.yml on this lab, as topology.bringup runs it (same environment and -e)."""
        base = topology.run_dir(self.lab)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(base / "collections"),
                   ANSIBLE_LOCAL_TEMP=str(base / "ansible-tmp"))
        argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(ROOT / "playbooks" / "site.yml"),
                "-i", str(INVENTORY), "-e", f"lab_netns_prefix={self.prefix}", "-e", f"@{base / 'lab-vars.yml'}"]
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]   # JSON: booleans stay booleans
        res = subprocess.run([*argv, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"ansible-playbook {args} failed:\n{res.stdout[-4000:]}\n{res.stderr[-2000:]}"
        return res.stdout

    def restart_service(self, host, timeout=30):
        """Stop the RR's launcher and start it again (what systemd does on a changed launcher); return the log
        written since, once its start-up reconcile has been logged."""
        _launcher, log, _pidfile = labdaemons._service_paths(self.lab, host)
        pid = topology._service_pid(self.lab, host)
        offset = log.stat().st_size
        if pid:
            os.kill(pid, signal.SIGTERM)
            reap([pid])
            self.reaped.append(pid)
        topology.services_up(self.lab, [host])
        text, _s = poll(lambda: "reconcile" in log.read_text()[offset:] and log.read_text()[offset:], timeout, 0.2)
        return text or log.read_text()[offset:]

    def children(self):
        """Pids this process started for the lab (FRR, the RR launchers, the leaf agents), to reap after down."""
        pids = [pid for pid, _start in topology._tracked(topology.run_dir(self.lab) / "pids.json")]
        for host in RRS + LEAVES:
            pid = topology._service_pid(self.lab, host) if host in RRS else topology.agent_pid(self.lab, host)
            if pid:
                pids.append(pid)
        return pids


def merge_lab_vars(lab, extra):
    """Add ``extra`` to /run/<prefix>/lab-vars.yml (kept by topology.up) so every playbook run gets it."""
    path = topology.run_dir(lab) / "lab-vars.yml"
    data = json.loads(path.read_text())
    data.update(extra)
    path.write_text(json.dumps(data, indent=1) + "\n")


@contextlib.contextmanager
def lab_session(name, lab_vars=None, fail=None, rr_bgp=None):
    """A LabRun brought up as `make lab` does (plus ``lab_vars`` in lab-vars.yml; ``rr_bgp`` {RR: "gobgp"} as
    `topology.py --rr-bgp`), taken down afterwards.

    ``fail(message)`` reports a failed bringup (pytest.fail); the teardown runs in every case and then
    checks that nothing of the lab is left.
    """
    run = LabRun(name, rr_bgp)
    pids = []
    try:
        try:
            if lab_vars:
                topology.up(run.lab, daemons=True)
                merge_lab_vars(run.lab, lab_vars)
            topology.bringup(run.lab, wait=60)
        except SystemExit as exc:   # a failed playbook or no convergence: fail the module, still tear down
            (fail or _raise)(f"lab {run.prefix}: bringup failed: {exc}")
        run.keeper = topology._Keeper(run.lab)
        yield run
    finally:
        pids = run.children()
        topology.down(run.lab)
        reap(pids)
    left = [name for name in topology._netns_list() if name.startswith(run.prefix + "-")]
    assert not left and not topology.run_dir(run.lab).exists(), left
    zombies = [pid for pid in pids + run.reaped if Path(f"/proc/{pid}").exists()]
    assert not zombies, f"processes left after down: {zombies}"


def _raise(message):
    raise AssertionError(message)


class Ping:
    """``ping -D -i INTERVAL`` between two leaves' owned /32s, in the source leaf's namespace."""

    def __init__(self, run, src_leaf, dst_leaf, interval=0.02):
        self.src = run.owned[src_leaf][0].split("/")[0]
        self.dst = run.owned[dst_leaf][0].split("/")[0]
        self.out = tempfile.NamedTemporaryFile(prefix="boma-ping-", suffix=".txt", delete=False)  # noqa: SIM115
        # ip netns exec execs ping: the pid is ping's, so SIGINT makes it print its statistics and exit.
        self.proc = subprocess.Popen(["ip", "netns", "exec", run.ns(src_leaf), "ping", "-n", "-D", "-i",
                                      str(interval), "-I", self.src, self.dst],
                                     stdout=self.out, stderr=subprocess.STDOUT)  # fmt: skip

    def replies(self):
        """Receive timestamps (wall clock, as time.time()) of every echo reply so far."""
        text = Path(self.out.name).read_text(errors="replace")
        return [float(t) for t in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from", text, re.MULTILINE)]

    def recovered_at(self, since, seconds, gap=0.5):
        """Time of the first reply after the last silence longer than ``gap`` since ``since``, once replies
        have kept coming for ``seconds`` after it; None while there was no such silence or it is too recent."""
        times = self.replies()
        # From the last reply before ``since``: the silence may begin right at it.
        times = times[max(0, sum(1 for t in times if t < since) - 1):]
        start = None
        for a, b in zip(times, times[1:]):
            if b - a >= gap:
                start = b
        return start if start is not None and times[-1] - start >= seconds else None

    def outage(self, since):
        """Longest silence between two consecutive replies that ends after ``since`` (seconds)."""
        times = self.replies()
        gaps = [b - a for a, b in zip(times, times[1:]) if b > since]
        return max(gaps, default=None)

    def stop(self):
        """Stop ping (SIGINT: it prints its statistics); the output stays readable until close()."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return Path(self.out.name).read_text(errors="replace")

    def close(self):
        self.stop()
        self.out.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.out.name)
