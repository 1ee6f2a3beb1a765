"""FRR and gobgpd instances inside one namespace of a harness topology."""

import json as jsonlib
import os
import re
import subprocess
import time
from pathlib import Path

from .procs import FRR_BIN, FRR_RELOAD, START_TIMEOUT, VTYSH, CommandError, _remove_frr_tmp, _stop_procs, _tail, _write


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
        # the same API on a unix socket: reachable from outside the namespace (sam_gobgp's api_target)
        self.api_socket = str(Path(config_path).resolve().parent / "gobgpd.sock")
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def _start(self):
        argv = [
            "ip", "netns", "exec", self.netns, "gobgpd", "-f", self.config_path, "-t", "toml",
            "--api-hosts", f"127.0.0.1:{self.api_port},unix://{self.api_socket}", "--log-plain", "--pprof-disable",
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
