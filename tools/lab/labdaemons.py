# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's processes (topology.py): FRR per host (gobgpd on an RR brought up with --rr-bgp HOST=gobgp), the RRs'
enrollment service launchers and the leaf agents."""

import contextlib
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from labnet import ns_name  # noqa: E402 - sibling module
from labvars import bgp_router, run_dir  # noqa: E402
from netns.daemons import Frr  # noqa: E402 - needs tests/ on sys.path
from netns.procs import _mkdir, _pid_alive, _proc_stat, _write, wait_for  # noqa: E402

SERVICE = "boma-sam-rr"   # sam_rr__service_name (the launcher under <host>/bin)
AGENT = "boma-sam-agent"  # sam_leaf__agent_service_name (the leaf agent's launcher under <host>/bin)
LOGCAP = Path(__file__).resolve().parent / "logcap.py"
FRR_LOG_MAX = 16 * 1024 * 1024   # per log file: 240 MiB at most for the lab's 15 FRR daemons


class _Keeper:
    """What tests/netns/daemons.Frr expects of its topology: pid bookkeeping (pids.json) and the frr user."""

    def __init__(self, lab):
        self.path = run_dir(lab) / "pids.json"
        self._frr_user = pwd.getpwnam("frr")

    def _track(self, pid):
        stat = _proc_stat(pid)
        _write(self.path, json.dumps([*_tracked(self.path), [pid, stat[1] if stat else None]]))


def _tracked(path):
    """[[pid, start], ...] of the daemons started by up (pids.json)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []


def _frr(lab, host, keeper):
    frr_dir = run_dir(lab, host) / "frr"
    vty = frr_dir / "run"
    # bfdd always: cheap, and sam_*__bgp_bfd can then be switched on by a playbook run (failover tests).
    frr = Frr(keeper, host, ns_name(lab, host), vty, ("zebra", "bgpd", "bfdd"))
    frr.config_dir, frr.config_path = str(frr_dir), str(frr_dir / "frr.conf")   # the roles' sam_*__frr_confdir
    return frr


def _frr_running(frr):
    return all(os.path.exists(os.path.join(frr.vty_dir, f"{d}.vty")) and _pid_alive(_pidfile(frr, d))
               for d in frr.daemons)  # fmt: skip


def _pidfile(frr, daemon):
    try:
        return int(Path(frr.vty_dir, f"{daemon}.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return -1


def frr_up(lab, host, keeper):
    """zebra+bgpd in the host's namespace on the roles' per-host FRR paths (kept if they already run)."""
    frr = _frr(lab, host, keeper)
    if _frr_running(frr):
        return False
    running = [d for d in frr.daemons if os.path.exists(os.path.join(frr.vty_dir, f"{d}.vty"))
               and _pid_alive(_pidfile(frr, d))]  # fmt: skip
    if "zebra" in running:   # a lab started before bfdd was in the set: start only the missing daemons
        frr.daemons = tuple(d for d in frr.daemons if d not in running)
        frr._start()
        return True
    user = keeper._frr_user
    _mkdir(frr.config_dir, owner=user, mode=0o755)
    _mkdir(frr.vty_dir, owner=user, mode=0o755)
    if not Path(frr.config_path).exists():
        _write(frr.config_path, f"frr defaults traditional\nhostname {host}\nip forwarding\n!\n", owner=user,
               mode=0o640)
    vtysh = Path(frr.config_dir) / "vtysh.conf"
    if not vtysh.exists():
        _write(vtysh, f"service integrated-vtysh-config\nhostname {host}\n", owner=user, mode=0o640)
    frr._start()
    _cap_logs(frr, keeper)
    return True


def _cap_logs(frr, keeper):
    """logcap.py on the host's FRR log directory: it ends by itself when `down` removes the directory."""
    proc = subprocess.Popen([sys.executable, str(LOGCAP), frr.vty_dir, str(FRR_LOG_MAX)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    keeper._track(proc.pid)


def gobgp_paths(lab, host):
    """(config, API socket, pid file, log) of the host's gobgpd: the sam_rr__gobgp_* paths of the lab's group_vars."""
    base = run_dir(lab, host) / "gobgp"
    return base / "gobgpd.conf", base / "api.sock", base / "gobgpd.pid", base / "gobgpd.log"


def gobgp(lab, host, *args):
    """``gobgp -j ARGS`` on the host's API socket (reachable from outside the namespace); None when it fails."""
    socket = gobgp_paths(lab, host)[1]
    res = subprocess.run(["gobgp", "--target", f"unix://{socket}", "-j", *args], capture_output=True, text=True,
                         timeout=30, check=False)  # fmt: skip
    with contextlib.suppress(ValueError):
        return json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else None
    return None


def gobgp_running(lab, host):
    with contextlib.suppress(OSError, ValueError, IndexError):
        return _pid_alive(int(gobgp_paths(lab, host)[2].read_text().split()[0]))
    return False


def gobgp_up(lab, host, keeper, timeout=30):
    """gobgpd in the host's namespace from a bare [global.config] (the RR's AS and router ID: gobgpd reloads
    everything else, never that), API on a unix socket only; the pid file is sam_rr__gobgp_pid_file."""
    config, socket, pidfile, log = gobgp_paths(lab, host)
    if gobgp_running(lab, host):
        return False
    _mkdir(config.parent, mode=0o755)
    if not config.exists():
        asn, router_id = bgp_router(lab, host)
        _write(config, f'[global.config]\n  as = {asn}\n  router-id = "{router_id}"\n', mode=0o640)
    with open(log, "ab") as out:
        # ip netns exec execs gobgpd: this pid is the daemon's, the one a reload signals
        proc = subprocess.Popen(["ip", "netns", "exec", ns_name(lab, host), "gobgpd", "-f", str(config), "-t", "toml",
                                 "--api-hosts", f"unix://{socket}", "--log-plain", "--pprof-disable"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    keeper._track(proc.pid)
    _write(pidfile, f"{proc.pid}\n")
    wait_for(lambda: gobgp(lab, host, "global") is not None, timeout=timeout, interval=0.1,
             message=f"{host}: gobgpd API on {socket}")
    return True


def _service_paths(lab, host):
    hostdir = run_dir(lab, host)
    return hostdir / "bin" / SERVICE, hostdir / "service.log", hostdir / "service.pid"


def _running_pid(pidfile):
    """The pid a launcher's pid file names while that very process runs (its start time matches), else None."""
    with contextlib.suppress(OSError, ValueError):
        pid, start = json.loads(pidfile.read_text())
        if _pid_alive(pid, start):
            return pid
    return None


def _service_pid(lab, host):
    return _running_pid(_service_paths(lab, host)[2])


def services_up(lab, hosts=None, timeout=30):
    """Each RR's enrollment service (the launcher the sam_rr role wrote) in its namespace."""
    return _daemons_up(lab, hosts, "sam_rrs", _service_paths, _service_pid, b"listening on",
                       "enrollment service listening", timeout)


def _daemons_up(lab, hosts, group, paths, pid_of, ready, what, timeout):
    """Start the launcher of each ``group`` host that runs none, as systemd would; wait for ``ready`` in its log."""
    started = []
    for host in hosts or lab["hosts"]:
        if lab["groups"].get(host) != group or pid_of(lab, host):
            continue
        launcher, log, pidfile = paths(lab, host)
        if not launcher.exists():
            raise SystemExit(f"{host}: no {launcher} (run the playbook first: the role writes it)")
        offset = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", ns_name(lab, host), str(launcher)],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
        stat = _proc_stat(proc.pid)
        _write(pidfile, json.dumps([proc.pid, stat[1] if stat else None]))

        def up(log=log, offset=offset, proc=proc, host=host, name=launcher.name):
            if proc.poll() is not None:
                raise SystemExit(f"{host}: {name} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            with open(log, "rb") as fh:
                fh.seek(offset)
                return ready in fh.read()

        wait_for(up, timeout=timeout, interval=0.1, message=f"{host}: {what}")
        started.append(host)
    return started


def _agent_paths(lab, host):
    hostdir = run_dir(lab, host)
    return hostdir / "bin" / AGENT, hostdir / "agent.log", hostdir / "agent.pid"


def agent_pid(lab, host):
    return _running_pid(_agent_paths(lab, host)[2])


def agents_up(lab, hosts=None, timeout=180):
    """Each leaf's agent daemon (the launcher the sam_leaf role wrote) in its namespace, as systemd would run it;
    log <host>/agent.log, pid <host>/agent.pid. A leaf whose agent runs is left alone."""
    return _daemons_up(lab, hosts, "sam_leaves", _agent_paths, agent_pid, b"started for", "leaf agent started",
                       timeout)
