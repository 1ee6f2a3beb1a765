"""Processes, namespaces and files behind the netns harness (no topology logic)."""

import contextlib
import glob
import json as jsonlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from pyroute2 import netns

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
