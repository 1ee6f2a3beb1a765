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
import glob
import ipaddress
import json as jsonlib
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from pyroute2 import NetNS, netns

DEFAULT_PREFIX = "bm"
RUN_BASE = Path("/run/boma-netns")
FRR_BIN = Path("/usr/lib/frr")
FRR_RELOAD = FRR_BIN / "frr-reload.py"
VTYSH = shutil.which("vtysh") or "/usr/bin/vtysh"
FRR_TMP = Path("/var/tmp/frr")
STOP_GRACE = 5.0
START_TIMEOUT = 20.0
STALE_UNOWNED_AGE = 60.0
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

_LIVE = set()


class CommandError(subprocess.CalledProcessError):
    """CalledProcessError whose message includes the captured output."""

    def __str__(self):
        text = super().__str__()
        for label, value in (("stdout", self.stdout), ("stderr", self.stderr)):
            if value:
                text += f"\n--- {label} ---\n{value.rstrip()}"
        return text


def wait_for(predicate, timeout=30.0, interval=0.25, message=""):
    """Poll ``predicate()`` until it returns something truthy and return that value.

    An exception raised by the predicate counts as "not yet" (handy for JSON lookups of keys
    that only appear once a session is up); on timeout the last value or exception is reported.
    """
    deadline = time.monotonic() + timeout
    last, last_exc = None, None
    while True:
        try:
            last, last_exc = predicate(), None
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last, last_exc = None, exc
        if time.monotonic() >= deadline:
            detail = f"last exception: {last_exc!r}" if last_exc is not None else f"last value: {last!r}"
            raise AssertionError(f"{message or 'condition not met'} (after {timeout:.1f}s; {detail})") from last_exc
        time.sleep(interval)


# --------------------------------------------------------------------------- process helpers


def _proc_stat(pid):
    """(state, starttime) of a pid from /proc, or None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _pid_alive(pid, start=None):
    stat = _proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return start is None or stat[1] == start


def _kill_pids(pids, grace=3.0):
    """SIGTERM then SIGKILL processes that are not our children (pid -> expected start time)."""
    alive = {pid: start for pid, start in pids.items() if _pid_alive(pid, start)}
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        alive = {pid: start for pid, start in alive.items() if _pid_alive(pid, start)}
        time.sleep(0.05)
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _stop_procs(procs, grace=STOP_GRACE):
    """SIGTERM all Popen objects at once, wait up to ``grace`` seconds, then SIGKILL the rest."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


def _remove_frr_tmp(pids):
    """FRR daemons leave /var/tmp/frr/<daemon>.<pid>/ behind when they are killed."""
    for pid in pids:
        for path in glob.glob(str(FRR_TMP / f"*.{int(pid)}")):
            shutil.rmtree(path, ignore_errors=True)


def _netns_list():
    return netns.listnetns()


def _netns_pids(name):
    res = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
    return [int(tok) for tok in res.stdout.split() if tok.isdigit()]


def _remove_netns(name):
    """Kill whatever still runs in namespace ``name`` and delete it."""
    pids = {pid: None for pid in _netns_pids(name) if pid != os.getpid()}
    _kill_pids(pids)
    _remove_frr_tmp(pids)
    with contextlib.suppress(OSError, FileNotFoundError):
        netns.remove(name)
    return list(pids)


def _tail(path, lines=40):
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError as exc:
        return f"<{path}: {exc}>"


def _write(path, text, owner=None, mode=0o644):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    if owner is not None:
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _mkdir(path, owner=None, mode=0o755):
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    os.chmod(path, mode)
    return path


# --------------------------------------------------------------------------- stale cleanup


def _read_state(path):
    try:
        return jsonlib.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _owner_alive(state):
    return _pid_alive(state.get("owner_pid", -1), state.get("owner_start"))


def cleanup_stale(prefix=DEFAULT_PREFIX):
    """Remove namespaces, daemons and runtime dirs left by crashed runs using ``prefix``.

    A run is stale when its owner process (recorded in state.json) is gone; runs whose owner is
    still alive (this process, or a concurrent pytest of another developer) are left alone.
    Returns the names of the namespaces removed.
    """
    dir_re = re.compile(rf"^{re.escape(prefix)}-([0-9a-f]{{6}})$")
    ns_re = re.compile(rf"^{re.escape(prefix)}-([0-9a-f]{{6}})-")
    # List namespaces before reading the run dirs: a run dir always exists before its namespaces,
    # so a run that starts while we scan cannot have a namespace in this snapshot without a dir.
    candidates = [name for name in _netns_list() if ns_re.match(name)]
    live, stale = set(), {}
    if RUN_BASE.is_dir():
        for entry in RUN_BASE.iterdir():
            match = dir_re.match(entry.name)
            if not match or not entry.is_dir():
                continue
            state = _read_state(entry / "state.json")
            if state is None:
                # Being created right now, or crashed before writing state: decide by age.
                with contextlib.suppress(OSError):
                    if time.time() - entry.stat().st_mtime < STALE_UNOWNED_AGE:
                        live.add(match.group(1))
                        continue
                state = {}
            elif _owner_alive(state):
                live.add(match.group(1))
                continue
            stale[match.group(1)] = (entry, state)
    removed = []
    for name in candidates:
        if ns_re.match(name).group(1) not in live:
            _remove_netns(name)
            removed.append(name)
    for entry, state in stale.values():
        pids = {int(rec["pid"]): rec.get("start") for rec in state.get("pids", [])}
        _kill_pids(pids)
        _remove_frr_tmp(pids)
        shutil.rmtree(entry, ignore_errors=True)
    return removed


def _close_all():
    for topo in list(_LIVE):
        with contextlib.suppress(Exception):
            topo.close()


atexit.register(_close_all)


# --------------------------------------------------------------------------- daemons


def _compose_frr_conf(host, text):
    """Prepend ``hostname`` and ``ip forwarding`` unless the caller sets them; keep ``frr ...`` lines first."""
    lines = text.strip("\n").splitlines()
    head = 0
    while head < len(lines) and (lines[head].startswith("frr ") or not lines[head].strip()):
        head += 1
    extra = []
    if not any(re.match(r"hostname\s", line) for line in lines):
        extra.append(f"hostname {host}")
    if not any(re.match(r"(no )?ip forwarding\s*$", line) for line in lines):
        extra.append("ip forwarding")
    return "\n".join(lines[:head] + extra + lines[head:]) + "\n"


class Frr:
    """FRR daemons of one host; all of them share ``vty_dir`` == ``config_dir`` (owned by frr)."""

    def __init__(self, topo, host, netns_name, rundir, daemons):
        self._topo = topo
        self.host = host
        self.netns = netns_name
        self.vty_dir = str(rundir)
        self.config_dir = str(rundir)
        self.config_path = str(Path(rundir) / "frr.conf")
        self.daemons = tuple(daemons)
        self.procs = {}

    # -- lifecycle
    def _argv(self, daemon):
        run = Path(self.vty_dir)
        argv = [
            "ip", "netns", "exec", self.netns, str(FRR_BIN / daemon),
            "-f", self.config_path,
            "-i", str(run / f"{daemon}.pid"),
            "--vty_socket", self.vty_dir,
            "--log", f"file:{run / f'{daemon}.log'}",
        ]  # fmt: skip
        # zebra serves the zserv socket, every other daemon connects to it.
        return [*argv, "-z", str(run / "zserv.api")]

    def _spawn(self, daemon):
        # Foreground (no -d): the harness is the parent, so it reaps the daemon (PID 1 in a container
        # may not reap orphans), and ``ip netns exec`` execs it, so Popen.pid is the daemon's pid.
        # Own session: a Ctrl-C reaches pytest only, whose teardown then stops the daemons in order.
        with open(Path(self.vty_dir) / f"{daemon}.stdout", "ab") as out:
            proc = subprocess.Popen(
                self._argv(daemon), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.procs[daemon] = proc
        self._topo._track(proc.pid)
        return proc

    def _wait_ready(self, daemons, files_for):
        def ready():
            for daemon in daemons:
                proc = self.procs[daemon]
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.host}: {daemon} exited with status {proc.returncode} during start-up\n"
                        f"--- {daemon}.log ---\n{self.log_tail(daemon)}"
                    )
            return all(os.path.exists(os.path.join(self.vty_dir, f)) for d in daemons for f in files_for(d))

        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {d}.log ---\n{self.log_tail(d)}" for d in daemons)
                raise RuntimeError(f"{self.host}: FRR daemons {daemons} not ready after {START_TIMEOUT}s\n{tails}")
            time.sleep(0.02)

    def _start(self):
        first = [d for d in self.daemons if d == "zebra"]
        rest = [d for d in self.daemons if d != "zebra"]
        for group, files in ((first, ("{}.vty", "zserv.api")), (rest, ("{}.vty",))):
            if not group:
                continue
            for daemon in group:
                self._spawn(daemon)
            self._wait_ready(group, lambda d, files=files: [f.format(d) for f in files])

    def stop(self, daemon=None):
        """SIGTERM one daemon (or all), SIGKILL after 5 s; removes their /var/tmp/frr dirs."""
        names = [daemon] if daemon else list(self.procs)
        procs = [self.procs[name] for name in names if name in self.procs]
        _stop_procs(procs)
        _remove_frr_tmp([proc.pid for proc in procs])

    def is_running(self, daemon="bgpd"):
        proc = self.procs.get(daemon)
        return proc is not None and proc.poll() is None

    def pid(self, daemon="bgpd"):
        return self.procs[daemon].pid

    def log_path(self, daemon="bgpd"):
        return os.path.join(self.vty_dir, f"{daemon}.log")

    def log_tail(self, daemon="bgpd", lines=40):
        text = _tail(self.log_path(daemon), lines) if os.path.exists(self.log_path(daemon)) else ""
        stdout = Path(self.vty_dir) / f"{daemon}.stdout"
        if stdout.exists() and stdout.stat().st_size:
            text += f"--- {daemon} stdout/stderr ---\n{_tail(stdout, lines)}"
        return text

    # -- CLI
    def _vtysh_argv(self):
        return [VTYSH, "--vty_socket", self.vty_dir, "--config_dir", self.config_dir]

    def vtysh(self, *commands, check=True):
        argv = self._vtysh_argv()
        for command in commands:
            argv += ["-c", command]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if check and res.returncode != 0:
            raise CommandError(res.returncode, argv, res.stdout, res.stderr)
        return res.stdout

    def json(self, command):
        if not command.rstrip().endswith("json"):
            command = command.rstrip() + " json"
        out = self.vtysh(command)
        try:
            return jsonlib.loads(out)
        except ValueError as exc:
            raise ValueError(f"{self.host}: {command!r} did not return JSON: {out[:500]!r}") from exc

    def reload(self, config_text, check=True):
        """Apply ``config_text`` (same composition as start_frr) with frr-reload.py, without restarting.

        frr-reload.py then writes the running config to ``config_dir/frr.conf``.
        """
        new = Path(self.config_dir) / "frr-new.conf"
        _write(new, _compose_frr_conf(self.host, config_text), owner=self._topo._frr_user, mode=0o640)
        argv = [
            str(FRR_RELOAD), "--reload", "--stdout",
            "--bindir", os.path.dirname(VTYSH), "--confdir", self.config_dir,
            "--rundir", self.vty_dir, "--vty_socket", self.vty_dir, str(new),
        ]  # fmt: skip
        res = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if check and res.returncode != 0:
            raise CommandError(res.returncode, argv, res.stdout, res.stderr)
        return res


class GoBGP:
    """A gobgpd in one namespace, API on 127.0.0.1:<api_port> of that namespace."""

    def __init__(self, topo, host, netns_name, config_path, log_path, api_port):
        self._topo = topo
        self.host = host
        self.netns = netns_name
        self.config_path = str(config_path)
        self.log_path = str(log_path)
        self.api_port = api_port
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def _start(self):
        argv = [
            "ip", "netns", "exec", self.netns, "gobgpd", "-f", self.config_path, "-t", "toml",
            "--api-hosts", f"127.0.0.1:{self.api_port}", "--log-plain", "--pprof-disable",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._topo._track(self.proc.pid)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.host}: gobgpd exited with status {self.proc.returncode}\n{_tail(self.log_path)}"
                )
            res = self._run(["global"], True, check=False)
            return res.returncode == 0 and '"error"' not in res.stdout

        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.host}: gobgpd API not answering after {START_TIMEOUT}s\n{_tail(self.log_path)}"
                )
            time.sleep(0.1)

    def _run(self, args, as_json, check=True):
        argv = ["gobgp", "-p", str(self.api_port), *(["-j"] if as_json else []), *args]
        return self._topo.run(self.host, argv, check=check)

    def gobgp(self, *args, json=True):
        """Run ``gobgp -p PORT [-j] args...`` in the namespace; parsed JSON (None if empty) or text."""
        res = self._run(list(args), json)
        if not json:
            return res.stdout
        data = jsonlib.loads(res.stdout) if res.stdout.strip() else None
        if isinstance(data, dict) and set(data) == {"error"}:
            raise CommandError(res.returncode, res.args, res.stdout, res.stderr)
        return data

    def stop(self):
        if self.proc is not None:
            _stop_procs([self.proc])

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None


# --------------------------------------------------------------------------- topology


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
