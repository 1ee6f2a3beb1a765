# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a candidate FRR configuration safely: validate, diff, reload (never restart bgpd).

Steps: carry the host-owned lines (hostname, forwarding, logging, service) of
the running config into the candidate so the reload never changes them;
check grammar (vtysh -C) and semantics (lint_frr); ask frr-reload.py --test
for the delta; reload only when there is one and not in check mode; then
test again and fail if the daemons did not converge.  An invalid candidate
is never applied.
"""

import os
import re
import tempfile

from ..core.render.frr import lint_frr

HOST_OWNED = re.compile(r"^(no )?(hostname |ip forwarding|ipv6 forwarding|log |service |frr |password |enable )")
MARKERS = ("Lines To Delete", "Lines To Add")


class FrrError(Exception):
    """Apply failed; the message names the step; the running config is unchanged unless it says otherwise."""


class Frr:
    def __init__(self, run_command, vtysh="vtysh", reload_script="/usr/lib/frr/frr-reload.py",
                 vty_socket=None, confdir="/etc/frr", rundir=None):
        self.run_command = run_command      # AnsibleModule.run_command-like: argv -> (rc, out, err)
        self.vtysh = vtysh
        self.reload_script = reload_script
        self.vty_socket = vty_socket
        self.confdir = confdir
        self.rundir = rundir or vty_socket or "/var/run/frr"

    def _vty(self):
        return ["--vty_socket", self.vty_socket] if self.vty_socket else []

    def running(self):
        rc, out, err = self.run_command([self.vtysh] + self._vty() + ["-c", "show running-config"])
        if rc != 0:
            raise FrrError("vtysh show running-config failed (is FRR running?): %s" % (err or out).strip()[:300])
        return out

    def with_host_lines(self, candidate, running):
        host = [line for line in running.splitlines() if HOST_OWNED.match(line)]
        return "\n".join(host + ["!"]) + "\n" + candidate

    def check(self, path, text):
        problems = lint_frr(text)
        rc, out, err = self.run_command([self.vtysh, "-C", "-f", path])
        if rc != 0:
            problems.append("vtysh -C: %s" % (err or out).strip()[:500])
        return problems

    def delta(self, path):
        """(lines to delete, lines to add) from frr-reload.py --test; raises on a refused candidate."""
        rc, out, err = self.run_command(self._reload_argv("--test", path))
        if rc != 0:
            # frr-reload prints a misleading diff on a bad candidate: trust the exit code.
            raise FrrError("frr-reload.py --test refused the candidate: %s" % (err or out).strip()[-500:])
        deletes, adds = parse_delta(out)
        # Host-owned lines were carried over from the running config; FRR reports some of them
        # per daemon (two "hostname" lines in a namespace) and never converges on them: not ours.
        return ([line for line in deletes if not HOST_OWNED.match(line.strip())],
                [line for line in adds if not HOST_OWNED.match(line.strip())])

    def reload(self, path):
        rc, out, err = self.run_command(self._reload_argv("--reload", path))
        if rc != 0:
            raise FrrError("frr-reload.py --reload failed: %s" % (err or out).strip()[-500:])

    def _reload_argv(self, mode, path):
        # Run by its own shebang: frr-reload.py belongs to the system Python FRR was built for.
        argv = [self.reload_script, mode, "--stdout", "--bindir", os.path.dirname(self._vtysh_path()),
                "--confdir", self.confdir, "--rundir", self.rundir]
        if self.vty_socket:
            argv += ["--vty_socket", self.vty_socket]
        return argv + [path]

    def _vtysh_path(self):
        return self.vtysh if os.path.isabs(self.vtysh) else "/usr/bin/" + self.vtysh


def parse_delta(out):
    """frr-reload.py --test output -> (deletes, adds) lists of command lines."""
    section, deletes, adds = None, [], []
    for line in out.splitlines():
        stripped = line.strip()
        if stripped in MARKERS:
            section = stripped
            continue
        if not stripped or set(stripped) == {"="} or section is None:
            continue
        if re.match(r"^\d{4}[-/]\d{2}[-/]\d{2} ", stripped):
            continue  # a log line interleaved on stdout
        (deletes if section == MARKERS[0] else adds).append(line.rstrip())
    return deletes, adds


def write_candidate(directory, text):
    handle, path = tempfile.mkstemp(prefix="boma-sam-", suffix=".conf", dir=directory)
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.chmod(path, 0o644)  # frr-reload/vtysh may read it as the frr user
    return path


def apply(frr, candidate, check_mode=False, persist_path=None, tmpdir=None):
    """Return a result dict {changed, deletes, adds, before, after}; raises FrrError."""
    before = frr.running()
    text = frr.with_host_lines(candidate, before)
    path = write_candidate(tmpdir or frr.rundir, text)
    try:
        problems = frr.check(path, text)
        if problems:
            raise FrrError("candidate rejected, nothing applied: " + "; ".join(problems))
        deletes, adds = frr.delta(path)
        changed = bool(deletes or adds)
        if changed and not check_mode:
            frr.reload(path)
            left = frr.delta(path)
            if left[0] or left[1]:
                raise FrrError("FRR did not converge after reload; still differs: %s"
                               % "; ".join((left[0] + left[1])[:10]))
        if persist_path and not check_mode and _persist(persist_path, text):
            changed = True
        after = frr.running() if changed and not check_mode else before
    finally:
        os.unlink(path)
    return {"changed": changed, "deletes": deletes, "adds": adds, "before": before, "after": after,
            "candidate": text}


def _persist(path, text):
    current = None
    if os.path.exists(path):
        with open(path, encoding="utf-8") as stream:
            current = stream.read()
    if current == text:
        return False
    directory = os.path.dirname(path) or "."
    handle, tmp = tempfile.mkstemp(prefix=".frr.conf.", dir=directory)
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.chmod(tmp, 0o640)
    os.replace(tmp, path)
    return True
