"""Network-namespace topology harness for tests against real BGP daemons (FRR, GoBGP).

Usage::

    with Topology(tmp_path, prefix="bm") as topo:
        topo.add_host("r1"); topo.add_host("r2")
        topo.link("r1", "r2", "172.31.0.0/30")          # r1 eth0 = .1, r2 eth0 = .2
        r1 = topo.start_frr("r1", "router bgp 65000\\n ...")
        wait_for(lambda: r1.json("show bgp summary json")["ipv4Unicast"]["peers"]["172.31.0.2"]["state"]
                 == "Established", message="r1-r2 session")

Every namespace, daemon and file the harness creates is owned by one ``Topology``; ``close()``
(also run from ``__exit__``, the pytest fixtures and ``atexit``) removes all of it.  Each topology
records its owner pid in ``/run/boma-netns/<prefix>-<runid>/state.json`` so that
``cleanup_stale(prefix)`` can remove what a crashed earlier run left behind without touching a
run that is still alive (other developers run these tests concurrently on the same machine).

Namespaces are named ``<prefix>-<runid>-<host>``; ``runid`` is 6 random hex digits per topology.
FRR runs as user ``frr``, so its runtime directory (config, vty sockets, pid and log files) lives
under ``/run/boma-netns`` (short, world-traversable paths; unix socket paths are limited to 108
bytes) and is copied into ``workdir/<host>/frr`` at ``close()`` for post-mortem reading.
"""

import atexit
import contextlib
import ipaddress
import json as jsonlib
import os
import pwd
import re
import secrets
import shlex
import shutil
import subprocess
from pathlib import Path

from pyroute2 import NetNS, netns

from .daemons import Frr, GoBGP, _compose_frr_conf
from .procs import (
    _LIVE,
    _NAME_RE,
    DEFAULT_PREFIX,
    RUN_BASE,
    VTYSH,
    CommandError,
    _mkdir,
    _netns_list,
    _pid_alive,
    _proc_stat,
    _remove_frr_tmp,
    _remove_netns,
    _stop_procs,
    _write,
    cleanup_stale,
    wait_for,
)

__all__ = ["DEFAULT_PREFIX", "CommandError", "Frr", "GoBGP", "Topology", "cleanup_stale", "wait_for"]


def _close_all():
    for topo in list(_LIVE):
        with contextlib.suppress(Exception):
            topo.close()


atexit.register(_close_all)


class _Host:
    def __init__(self, name, netns_name, ipr):
        self.name = name
        self.netns = netns_name
        self.ipr = ipr
        self.nics = 0
        self.frr = None
        self.gobgp = None


class Topology:
    """A set of namespaces ("hosts") linked by veth pairs, plus the daemons started in them."""

    def __init__(self, workdir, prefix=DEFAULT_PREFIX):
        if not re.match(r"^[A-Za-z0-9_.]+$", prefix):
            raise ValueError(f"prefix must match [A-Za-z0-9_.]+: {prefix!r}")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.hosts = {}
        self._pids = []
        self._closed = False
        self._frr_user = None
        _mkdir(RUN_BASE)
        while True:
            self.runid = secrets.token_hex(3)
            self.rundir = RUN_BASE / f"{prefix}-{self.runid}"
            try:
                self.rundir.mkdir(mode=0o755)
                break
            except FileExistsError:
                continue
        os.chmod(self.rundir, 0o755)
        _LIVE.add(self)
        self._save_state()

    # -- bookkeeping
    def _save_state(self):
        me = _proc_stat(os.getpid())
        state = {
            "owner_pid": os.getpid(),
            "owner_start": me[1] if me else None,
            "workdir": str(self.workdir),
            "netns": [host.netns for host in self.hosts.values()],
            "pids": [{"pid": pid, "start": start} for pid, start in self._pids],
        }
        _write(self.rundir / "state.json", jsonlib.dumps(state, indent=1))

    def _track(self, pid):
        stat = _proc_stat(pid)
        self._pids.append((pid, stat[1] if stat else None))
        self._save_state()

    @property
    def pids(self):
        """Every daemon pid this topology started (running or not)."""
        return [pid for pid, _start in self._pids]

    def _host(self, name):
        try:
            return self.hosts[name]
        except KeyError:
            raise KeyError(f"unknown host {name!r} (known: {sorted(self.hosts)})") from None

    def netns_name(self, host):
        return self._host(host).netns

    # -- topology building
    def add_host(self, name):
        if self._closed:
            raise RuntimeError("topology is closed")
        if not _NAME_RE.match(name) or name in self.hosts:
            raise ValueError(f"invalid or duplicate host name {name!r}")
        ns = f"{self.prefix}-{self.runid}-{name}"
        self.hosts[name] = host = _Host(name, ns, None)
        self._save_state()  # record before creating, so a crash in between is still cleaned up
        netns.create(ns)
        host.ipr = NetNS(ns)
        host.ipr.link("set", index=host.ipr.link_lookup(ifname="lo")[0], state="up")
        self.run(
            name,
            ["sysctl", "-q", "-e", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
             "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"],
        )  # fmt: skip
        return ns

    def _ifindex(self, host, dev):
        found = host.ipr.link_lookup(ifname=dev)
        if not found:
            raise ValueError(f"{host.name}: no interface {dev!r}")
        return found[0]

    def link(self, a, b, subnet):
        """veth pair a<->b; a gets the first address of ``subnet`` (.1, or .0 of a /31), b the next.

        Interfaces are named eth0, eth1, ... per host in creation order; returns (ifname_a, ifname_b).
        """
        ha, hb = self._host(a), self._host(b)
        net = ipaddress.ip_network(subnet)
        first = 0 if net.prefixlen >= net.max_prefixlen - 1 else 1
        addr_a, addr_b = net.network_address + first, net.network_address + first + 1
        if addr_b not in net:
            raise ValueError(f"subnet {subnet} too small for a link")
        if_a, if_b = f"eth{ha.nics}", f"eth{hb.nics}"
        ha.nics += 1
        hb.nics += 1
        ha.ipr.link("add", ifname=if_a, kind="veth", peer={"ifname": if_b, "net_ns_fd": hb.netns})
        ends = []
        for host, ifname, addr in ((ha, if_a, addr_a), (hb, if_b, addr_b)):
            idx = self._ifindex(host, ifname)
            host.ipr.addr("add", index=idx, address=str(addr), prefixlen=net.prefixlen)
            host.ipr.link("set", index=idx, state="up")
            ends.append((host, idx))
        # Carrier comes up asynchronously; a ping sent before that may be lost (seen with IPv6).
        wait_for(
            lambda: all(h.ipr.link("get", index=i)[0].get("IFLA_OPERSTATE") == "UP" for h, i in ends),
            timeout=5,
            interval=0.01,
            message=f"veth {a}:{if_a} <-> {b}:{if_b} operstate UP",
        )
        return if_a, if_b

    def address(self, host, cidr, dev="lo"):
        h = self._host(host)
        iface = ipaddress.ip_interface(cidr)
        h.ipr.addr("add", index=self._ifindex(h, dev), address=str(iface.ip), prefixlen=iface.network.prefixlen)

    def route(self, host, dest, via):
        h = self._host(host)
        if dest == "default":
            dest = "::/0" if ":" in str(via) else "0.0.0.0/0"
        net = ipaddress.ip_network(dest, strict=False)
        family = 10 if net.version == 6 else 2
        h.ipr.route("add", dst=str(net.network_address), dst_len=net.prefixlen, gateway=via, family=family)

    def run(self, host, argv, check=True, timeout=30):
        """Run argv (list, or a string split with shlex) inside the host's namespace."""
        if isinstance(argv, str):
            argv = shlex.split(argv)
        full = ["ip", "netns", "exec", self._host(host).netns, *map(str, argv)]
        res = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
        if check and res.returncode != 0:
            raise CommandError(res.returncode, full, res.stdout, res.stderr)
        return res

    # -- daemons
    def start_frr(self, host, config_text, daemons=("zebra", "bgpd")):
        h = self._host(host)
        if h.frr is not None:
            raise RuntimeError(f"{host}: FRR already started")
        if self._frr_user is None:
            self._frr_user = pwd.getpwnam("frr")
        rundir = _mkdir(self.rundir / host, owner=self._frr_user)
        conf = _compose_frr_conf(host, config_text)
        _write(rundir / "frr.conf", conf, owner=self._frr_user, mode=0o640)
        _write(rundir / "vtysh.conf", f"service integrated-vtysh-config\nhostname {host}\n",
               owner=self._frr_user, mode=0o640)  # fmt: skip
        check = subprocess.run(
            [VTYSH, "--config_dir", str(rundir), "-C", "-f", str(rundir / "frr.conf")],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if check.returncode != 0:
            raise ValueError(
                f"{host}: FRR config rejected by vtysh -C:\n{check.stdout}{check.stderr}\n--- config ---\n{conf}"
            )
        h.frr = frr = Frr(self, host, h.netns, rundir, daemons)
        frr._start()
        return frr

    def start_gobgpd(self, host, toml_text, api_port=50051):
        h = self._host(host)
        if h.gobgp is not None:
            raise RuntimeError(f"{host}: gobgpd already started")
        hostdir = _mkdir(self.workdir / host)
        conf = hostdir / "gobgpd.toml"
        conf.write_text(toml_text)
        h.gobgp = gobgp = GoBGP(self, host, h.netns, conf, hostdir / "gobgpd.log", api_port)
        gobgp._start()
        return gobgp

    # -- teardown
    def _collect_logs(self, host):
        src = self.rundir / host.name
        if not src.is_dir():
            return
        dst = _mkdir(self.workdir / host.name / "frr")
        for path in src.iterdir():
            if path.is_file() and path.suffix in (".log", ".conf", ".stdout"):
                with contextlib.suppress(OSError):
                    shutil.copy2(path, dst / path.name)

    def close(self):
        """Stop every daemon, delete every namespace and runtime dir.  Safe to call twice.

        Raises RuntimeError only if something could not be removed.
        """
        if self._closed:
            return
        # Every step is idempotent: if this is interrupted (a second Ctrl-C), the atexit hook
        # calls close() again and finishes the job.
        procs = []
        for host in self.hosts.values():
            if host.gobgp is not None and host.gobgp.proc is not None:
                procs.append(host.gobgp.proc)
            if host.frr is not None:
                procs.extend(host.frr.procs.values())
        _stop_procs(procs)
        for host in self.hosts.values():
            if host.ipr is not None:
                with contextlib.suppress(Exception):
                    host.ipr.close()
                host.ipr = None
            with contextlib.suppress(Exception):
                self._collect_logs(host)
            _remove_netns(host.netns)
        _remove_frr_tmp(self.pids)
        existing = set(_netns_list())
        leftovers = [h.netns for h in self.hosts.values() if h.netns in existing]
        alive = [pid for pid, start in self._pids if _pid_alive(pid, start)]
        if leftovers or alive:
            raise RuntimeError(f"topology cleanup incomplete: namespaces {leftovers}, pids {alive}")
        shutil.rmtree(self.rundir, ignore_errors=True)
        self._closed = True
        _LIVE.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.close()
        except Exception:
            if exc_type is None:
                raise
        return False
