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

import json
import os
import re
import tempfile
import time

from ..core.render import frr_delta
from ..core.render.frr import lint_frr

HOST_OWNED = re.compile(r"^(no )?(hostname |ip forwarding|ipv6 forwarding|log |service |frr |password |enable )")
MARKERS = ("Lines To Delete", "Lines To Add")
# A delta up to this many lines is applied and read back by one vtysh process with -c arguments; a larger one
# (a batch of enrollments) goes through a file, far from argv's size limit.
ONE_SESSION_LINES = 400
_CONTEXT = re.compile(r"^(router bgp \d+|address-family .*|exit|exit-address-family)$")   # not a change itself


class FrrError(Exception):
    """Apply failed; the message names the step; the running config is unchanged unless it says otherwise."""


class FrrMismatch(FrrError):
    """The delta was applied but FRR does not hold what it should for an object it touched (full path next)."""


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

    def vtysh_file(self, path, dry_run=False):
        """`vtysh -f PATH` (`-C`: grammar only, no daemon) -> (rc, output)."""
        argv = [self.vtysh, "-C", "-f", path] if dry_run else [self.vtysh] + self._vty() + ["-f", path]
        rc, out, err = self.run_command(argv)
        return rc, ((out or "") + (err or "")).strip()

    def configure(self, lines, shows=()):
        """One vtysh session: ``lines`` in configuration mode, then the ``shows`` -> (rc, output).

        vtysh stops at the first command it refuses (rc 1), so nothing after a refused line is sent.  The lines are
        in argv: only for small deltas (ONE_SESSION_LINES), and FRR configuration holds no secret here."""
        argv = [self.vtysh] + self._vty() + ["-c", "configure terminal"]
        for line in list(lines) + ["end"] + list(shows):
            argv += ["-c", line]
        rc, out, err = self.run_command(argv)
        return rc, ((out or "") + (err or "")).strip() if rc != 0 else (out or "")

    def show_json(self, commands):
        """The JSON documents a vtysh session prints for ``commands`` (FRR prints one per daemon asked)."""
        argv = [self.vtysh] + self._vty()
        for command in commands:
            argv += ["-c", command]
        rc, out, err = self.run_command(argv)
        if rc != 0:
            raise FrrError("vtysh show failed (is FRR running?): %s" % (err or out).strip()[:300])
        return _json_documents(out)

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
        if persist_path and not check_mode and persist(persist_path, text):
            changed = True
        after = frr.running() if changed and not check_mode else before
    finally:
        os.unlink(path)
    return {"changed": changed, "deletes": deletes, "adds": adds, "before": before, "after": after,
            "candidate": text}


def persist(path, text):
    """Write frr.conf atomically when its text changed; True when it did."""
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


def _json_documents(text):
    decoder, docs, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return docs
        try:
            doc, at = decoder.raw_decode(text, at)
        except ValueError:    # a warning line between documents
            newline = text.find("\n", at)
            at = len(text) if newline < 0 else newline + 1
            continue
        if isinstance(doc, dict):
            docs.append(doc)


def apply_delta(frr, last_candidate, candidate, tmpdir=None):
    """Apply only what changed since ``last_candidate`` (the candidate this process last applied and verified).

    The whole new candidate is linted (lint_frr) and the delta's commands are grammar-checked (vtysh -C) before
    anything is sent: an invalid delta is never applied.  Then one vtysh session applies it and reads back the
    objects it touched as JSON (a large batch: `vtysh -f`, then the read-back).  Raises
    frr_delta.DeltaUnsupported (a change this path does not handle), FrrError (refused or failed: possibly half
    applied) or FrrMismatch (FRR differs from the candidate): each means the caller takes the whole-configuration
    path, which repairs whatever state this left.
    """
    clock = Steps()
    delta = frr_delta.delta(last_candidate, candidate)
    lines = [line.strip() for line in delta.script if not _CONTEXT.match(line.strip())]
    result = {"changed": not delta.empty, "deletes": [line for line in lines if line.startswith("no ")],
              "adds": [line for line in lines if not line.startswith("no ")], "mode": "delta", "touched": delta.size(),
              "steps": clock.steps}
    clock.lap("delta")
    if delta.empty:
        return result
    problems = lint_frr(candidate)
    clock.lap("lint")
    if problems:
        raise FrrError("candidate rejected, nothing applied: " + "; ".join(problems))
    commands = verify_commands(delta)
    path = write_candidate(tmpdir or frr.rundir, "\n".join(delta.script) + "\n")
    try:
        rc, out = frr.vtysh_file(path, dry_run=True)
        clock.lap("grammar")
        if rc != 0:
            raise FrrError("delta refused by vtysh -C, nothing applied: %s" % out[:500])
        if len(delta.script) <= ONE_SESSION_LINES:
            # One vtysh process applies the delta and reads back what it touched: starting vtysh costs more
            # than a one-leaf change does in bgpd (about 0.1 s each on a busy RR, docs/scale.md).
            rc, out = frr.configure(delta.script, commands)
            docs = _json_documents(out)
        else:
            rc, out = frr.vtysh_file(path)
            docs = None
        clock.lap("vtysh")
        if rc != 0:
            raise FrrError("vtysh failed to apply the delta, it may be half applied: %s" % out[:500])
    finally:
        os.unlink(path)
    if docs is None and commands:
        docs = frr.show_json(commands)
    problems = differences(delta, docs or [])
    clock.lap("verify")
    if problems:
        raise FrrMismatch("FRR differs from the candidate after the delta: " + "; ".join(problems[:10]))
    return result


class Steps:
    """Seconds per named step, each from the end of the one before: the reconcile log's ``[validate 0.04, render
    0.02, ...]`` (what a slow change spent its time on).  ``steps`` may be a dict to add to."""

    def __init__(self, steps=None):
        self.steps = {} if steps is None else steps
        self.at = time.monotonic()

    def lap(self, name):
        now = time.monotonic()
        self.steps[name] = now - self.at
        self.at = now


def verify_commands(delta):
    """The vtysh show commands that read back each object the delta touched."""
    commands = ["show ip prefix-list %s json" % name for name in delta.prefix_lists]
    commands += ["show route-map %s json" % name for name in sorted({name for name, _seq in delta.route_maps})]
    commands += ["show bgp peer-group %s json" % group
                 for group in sorted({g for _r, g in delta.listen_ranges} | set(delta.peer_groups))]
    commands += ["show bgp neighbors %s json" % address for address in delta.neighbors]
    commands += ["show bgp ipv4 unicast %s json" % prefix for prefix in delta.networks]
    return commands


def differences(delta, docs):
    """What FRR holds (``docs``: the answers to verify_commands) against the candidate: a list of differences."""
    held = _held(docs)
    return _list_differences(delta, held) + _presence_differences(delta, held)


def _held(docs):
    """The objects in vtysh's JSON answers, by kind."""
    bgp = [doc["BGP"] for doc in docs if isinstance(doc.get("BGP"), dict)]
    return {
        "lists": {name: body.get("entries") for body_map in bgp for name, body in body_map.items()
                  if isinstance(body, dict) and "entries" in body},
        "maps": {name: body.get("rules") for body_map in bgp for name, body in body_map.items()
                 if isinstance(body, dict) and "rules" in body},
        # FRR answers a peer-group it does not have with an empty document
        "groups": {name: body for doc in docs for name, body in doc.items()
                   if isinstance(body, dict) and ("dynamicRanges" in body or "remoteAs" in body)},
        "neighbors": {name for doc in docs for name, body in doc.items()
                      if isinstance(body, dict) and "bgpState" in body},
        "sourced": {doc.get("prefix") for doc in docs
                    if any(isinstance(p, dict) and p.get("sourced") for p in doc.get("paths") or ())},
    }


def _list_differences(delta, held):
    problems = []
    for name, expected in delta.prefix_lists.items():
        have = sorted((e.get("sequenceNumber"), e.get("type"), e.get("prefix")) for e in held["lists"].get(name) or ())
        if have != expected:
            problems.append("prefix-list %s: %s, expected %s" % (name, have, expected))
    for (name, seq), expected in delta.route_maps.items():
        rules = {r.get("sequenceNumber"): r for r in held["maps"].get(name) or () if isinstance(r, dict)}
        rule = rules.get(seq)
        clauses = [] if rule is None else (["match " + c for c in rule.get("matchClauses") or ()]
                                           + ["set " + c for c in rule.get("setClauses") or ()])
        have = None if rule is None else (rule.get("type"), sorted(clauses))
        if have != expected:
            problems.append("route-map %s %s: %s, expected %s" % (name, seq, have, expected))
    return problems


def _presence_differences(delta, held):
    problems = []
    for (prefix, group), present in delta.listen_ranges.items():
        ranges = ((held["groups"].get(group) or {}).get("dynamicRanges") or {}).get("IPv4", {}).get("ranges") or []
        if (prefix in ranges) != present:
            problems.append("bgp listen range %s peer-group %s: %s" % (prefix, group, "missing" if present else "left"))
    checks = [("peer-group", delta.peer_groups, held["groups"]), ("neighbor", delta.neighbors, held["neighbors"]),
              ("network", delta.networks, held["sourced"])]
    for kind, expected, have in checks:
        problems += ["%s %s: %s" % (kind, name, "missing" if present else "left")
                     for name, present in expected.items() if (name in have) != present]
    return problems
