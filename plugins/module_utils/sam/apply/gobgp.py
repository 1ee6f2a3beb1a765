# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a gobgpd configuration safely: the same contract as apply/frr.py for FRR (issue 20).

1. The candidate is linted (core/render/gobgp_lint: what gobgpd would drop or run open) and checked by gobgpd
   itself (``gobgpd -f FILE -t toml -d``) before anything is written: an invalid candidate changes nothing.
2. It replaces the configuration file atomically (same directory, 0640, the owner and group of the file it
   replaces: the roles' gobgpd runs as user gobgpd and reads it through its group) and gobgpd reloads it on
   SIGHUP: peers whose settings did not change keep their sessions.  Debian's unit has
   ``ExecReload=/usr/bin/gobgpd -r``, which starts a second daemon instead of reloading, so the signal goes to
   the unit's main process.
3. The resets a policy change needs follow (gobgp_lint.reset_commands); an RR resets the dynamic sessions no
   range admits any more (a revoked leaf: gobgpd keeps them across a reload); a leaf's own /32s are originated
   (``gobgp global rib add``) and the ones it no longer owns withdrawn.
4. What gobgpd holds is read back as JSON and compared with the candidate: the AS and router ID, the global policy
   (its statements and default), every prefix and neighbor set, the configured neighbors and a leaf's originated
   prefixes.  gobgpd installs no policy at all when it refuses part of one, so this is what proves the reload
   took; and it never reloads its ``[global.config]``, so a changed AS or router ID is an error that says to
   restart it (every session drops: the apply does not do that by itself).

``apply`` takes the text (the module's ``config`` or render/gobgp.render_gobgp's) and the node's role;
``apply_state`` renders a materialized state first, for the RR's reconcile loop (``samctl serve --bgp-daemon
gobgp``), which runs it on every change: a reload costs what gobgpd's own diff of the file costs, so there is no
delta path as for FRR.
"""

import ipaddress
import json
import os
import signal
import tempfile
import time

from ..core.render.gobgp import render_gobgp
from ..core.render.gobgp_lint import is_address, lint_gobgp, parse, reset_commands

ACCEPT, REJECT = 1, 2     # gobgp's RouteAction in its JSON (default_action, route_action)
RELOAD_TIMEOUT = 10.0


class GobgpError(Exception):
    """Apply failed; the message names the step (the file is unchanged unless it says it was replaced)."""


class Gobgpd:
    """gobgpd on this host: its configuration file, its gRPC API (through the gobgp CLI) and its process."""

    def __init__(self, run_command, config_path="/etc/gobgpd.conf", gobgpd="/usr/bin/gobgpd", gobgp="/usr/bin/gobgp",
                 api_host="127.0.0.1", api_port=50051, api_target=None, pid=None, service="gobgpd", kill=os.kill,
                 pid_file=None):
        self.run_command = run_command     # AnsibleModule.run_command-like: argv -> (rc, out, err)
        self.config_path = config_path
        self.gobgpd, self.gobgp = gobgpd, gobgp
        # api_target: gobgp's --target (unix:///path of a gobgpd started with --api-hosts unix:///path)
        self.api = ["--target", api_target] if api_target else ["-u", str(api_host), "-p", str(int(api_port))]
        self.pid, self.service, self.kill = pid, service, kill
        self.pid_file = pid_file           # read at each reload: a supervisor that restarts gobgpd rewrites it

    def cli(self):
        return [self.gobgp] + self.api

    def current(self):
        try:
            with open(self.config_path, encoding="utf-8") as stream:
                return stream.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise GobgpError("%s: %s" % (self.config_path, exc.strerror or exc)) from None

    def check(self, path):
        rc, out, err = self.run_command([self.gobgpd, "-f", path, "-t", "toml", "-d"])
        return [] if rc == 0 else ["gobgpd -d: %s" % ((err or "") + (out or "")).strip()[-500:]]

    def main_pid(self):
        if self.pid:
            return int(self.pid)
        if self.pid_file:
            try:
                with open(self.pid_file, encoding="ascii") as stream:
                    pid = int((stream.read().split() or ["0"])[0])
            except (OSError, ValueError) as exc:
                raise GobgpError("gobgpd's pid file %s: %s" % (self.pid_file, getattr(exc, "strerror", None) or exc)) \
                    from None
            if pid <= 0:
                raise GobgpError("gobgpd's pid file %s names no process" % self.pid_file)
            return pid
        rc, out, err = self.run_command(["systemctl", "show", "--property", "MainPID", "--value", self.service])
        pid = int(out.strip()) if rc == 0 and out.strip().isdigit() else 0
        if pid <= 0:
            raise GobgpError("gobgpd is not running (systemd unit %s has no main process): %s"
                             % (self.service, (err or out or "").strip()[:200]))
        return pid

    def reload(self, pid=None):
        try:
            self.kill(pid or self.main_pid(), signal.SIGHUP)
        except OSError as exc:
            raise GobgpError("cannot signal gobgpd to reload: %s" % (exc.strerror or exc)) from None

    def run(self, argv):
        rc, out, err = self.run_command(argv)
        if rc != 0:
            raise GobgpError("%s failed: %s" % (" ".join(argv[len(self.cli()):]), (err or out).strip()[:300]))
        return out

    def answering(self, timeout):
        """``gobgp -j global`` once gobgpd's API answers: gobgpd tells systemd it is ready before its gRPC server
        accepts, so a read right after the role started it may fail. Raises the last error after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.show("global")
            except GobgpError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def show(self, *args):
        """gobgp -j ARGS as JSON (None when it prints nothing)."""
        out = self.run(self.cli() + ["-j"] + list(args))
        try:
            return json.loads(out) if out.strip() else None
        except ValueError:
            raise GobgpError("gobgp %s printed no JSON: %s" % (" ".join(args), out.strip()[:200])) from None


def apply(gobgpd, candidate, role, check_mode=False, export_any=False, timeout=RELOAD_TIMEOUT):
    """{changed, before, after, commands} after making gobgpd run ``candidate``; raises GobgpError."""
    problems = lint_gobgp(candidate, role, export_any=export_any)
    before = gobgpd.current()
    directory = os.path.dirname(gobgpd.config_path) or "."
    handle, path = tempfile.mkstemp(prefix=".gobgpd.conf.", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(candidate)
        _keep_owner(path, gobgpd.config_path)
        os.chmod(path, 0o640)
        if not problems:
            problems = gobgpd.check(path)
        if problems:
            raise GobgpError("candidate rejected, nothing applied: " + "; ".join(problems[:10]))
        doc = parse(candidate)[0]
        changed = before != candidate
        commands = []
        if not changed:
            glob = None if check_mode else gobgpd.answering(timeout)
            differences = held_differences(gobgpd, doc, role, export_any, glob)
            changed = bool(differences)      # the file is right, the daemon is not: reload it (repair)
        if changed and check_mode:
            return {"changed": True, "before": before, "after": candidate, "commands": []}
        if changed:
            # A gobgpd that is not running would read the file only when it starts, as its owner sees it: replace
            # nothing then (the roles write its first file, root:gobgpd, before they start it).
            pid = gobgpd.main_pid()
            if before != candidate:
                os.replace(path, gobgpd.config_path)
                path = None
            gobgpd.reload(pid)
            differences = _wait_held(gobgpd, doc, role, export_any, timeout)
            if differences:
                raise GobgpError("gobgpd does not hold the candidate after the reload (%s): %s"
                                 % ("the file was replaced" if path is None else "the file was right",
                                    "; ".join(differences[:10])))
            commands = reset_commands(before, candidate, gobgpd.cli())
            for argv in commands:
                gobgpd.run(argv)
        commands += drop_unadmitted(gobgpd, doc, role, check_mode)
        commands += originate(gobgpd, before, doc, role, check_mode)
        return {"changed": changed or bool(commands), "before": before, "after": candidate,
                "commands": [" ".join(argv[len(gobgpd.cli()):]) for argv in commands]}
    finally:
        if path is not None and os.path.exists(path):
            os.unlink(path)


def _keep_owner(path, target):
    """``path`` gets the owner and group of ``target`` (when it exists): gobgpd reads it as its own user."""
    try:
        old = os.stat(target)
    except FileNotFoundError:
        return
    if (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
        try:
            os.chown(path, old.st_uid, old.st_gid)
        except OSError as exc:
            raise GobgpError("cannot give the candidate %s's owner and group (gobgpd could not read it): %s"
                             % (target, exc.strerror or exc)) from None


def _wait_held(gobgpd, doc, role, export_any, timeout):
    """held_differences until there are none or ``timeout`` s passed (gobgpd reloads asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            differences = held_differences(gobgpd, doc, role, export_any)
        except GobgpError:       # its API is busy with the reload: ask again until the deadline
            if time.monotonic() > deadline:
                raise
            differences = ["no answer yet"]
        if not differences or time.monotonic() > deadline:
            return differences
        time.sleep(0.2)


def expected(doc, role, export_any=False):
    """What gobgpd should hold for a candidate (a parsed TOML): policy, sets, neighbors, exports."""
    config = ((doc.get("global") or {}).get("apply-policy") or {}).get("config") or {}
    direction = "import" if role == "rr" else "export"
    names = list(config.get("%s-policy-list" % direction) or [])
    statements = {p.get("name"): [s.get("name") for s in p.get("statements") or ()]
                  for p in doc.get("policy-definitions") or ()}
    defined = doc.get("defined-sets") or {}
    glob = (doc.get("global") or {}).get("config") or {}
    return {
        "global": (glob.get("as"), glob.get("router-id")),
        "direction": direction,
        "policies": [(name, statements.get(name, [])) for name in names],
        "default": ACCEPT if role != "rr" and export_any else REJECT,
        "prefix_sets": {s.get("prefix-set-name"): sorted(i.get("ip-prefix") for i in s.get("prefix-list") or ())
                        for s in defined.get("prefix-sets") or ()},
        "neighbor_sets": {s.get("neighbor-set-name"): sorted(s.get("neighbor-info-list") or ())
                          for s in defined.get("neighbor-sets") or ()},
        "neighbors": sorted((n.get("config") or {}).get("neighbor-address") for n in doc.get("neighbors") or ()),
    }


def held_differences(gobgpd, doc, role, export_any=False, glob=None):
    """What gobgpd holds against the candidate, as a list of differences (empty: it runs the candidate); ``glob``:
    ``gobgp -j global`` when the caller has just read it."""
    want = expected(doc, role, export_any)
    problems = []
    held = (glob if glob is not None else gobgpd.show("global")) or {}
    if (held.get("asn"), held.get("router_id")) != want["global"]:
        # gobgpd reads [global.config] only when it starts; a reload keeps the old AS and router ID
        problems.append("AS and router ID %s/%s, expected %s/%s: gobgpd applies [global.config] only when it starts;"
                        " restart it (every session drops)" % (held.get("asn"), held.get("router_id"), *want["global"]))
    policy = gobgpd.show("global", "policy", want["direction"]) or {}
    have = [(p.get("name"), [s.get("name") for s in p.get("statements") or ()]) for p in policy.get("policies") or ()]
    if have != want["policies"]:
        problems.append("global %s policy %s, expected %s" % (want["direction"], have, want["policies"]))
    if policy.get("default_action") != want["default"]:
        problems.append("global %s default action %s, expected %s"
                        % (want["direction"], policy.get("default_action"), want["default"]))
    prefix_sets = {s.get("name"): sorted(p.get("ip_prefix") for p in s.get("prefixes") or ())
                   for s in gobgpd.show("policy", "prefix") or ()}
    if prefix_sets != want["prefix_sets"]:
        problems.append("prefix sets %s, expected %s" % (_keys_differing(prefix_sets, want["prefix_sets"])))
    neighbor_sets = {s.get("name"): sorted(s.get("list") or ()) for s in gobgpd.show("policy", "neighbor") or ()}
    if neighbor_sets != want["neighbor_sets"]:
        problems.append("neighbor sets %s, expected %s" % (_keys_differing(neighbor_sets, want["neighbor_sets"])))
    # a session accepted through a dynamic-neighbors range has no configured address (conf.neighbor_address)
    configured = sorted((n.get("conf") or {}).get("neighbor_address") for n in gobgpd.show("neighbor") or ()
                        if (n.get("conf") or {}).get("neighbor_address"))
    if configured != want["neighbors"]:
        problems.append("neighbors %s, expected %s" % (configured, want["neighbors"]))
    return problems


def _keys_differing(have, want):
    names = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
    return ({k: have.get(k) for k in names[:5]}, {k: want.get(k) for k in names[:5]})


def drop_unadmitted(gobgpd, doc, role, check_mode=False):
    """An RR's dynamic sessions from addresses no ``[[dynamic-neighbors]]`` range admits any more (a revoked leaf):
    gobgpd keeps them across a reload; a reset ends them, and the leaf cannot come back.  Returns the argv lists."""
    if role != "rr":
        return []
    ranges = [ipaddress.IPv4Network(d.get("config", {}).get("prefix", "0.0.0.0/32"))
              for d in doc.get("dynamic-neighbors") or ()]
    stale = []
    for neighbor in gobgpd.show("neighbor") or ():
        address = (neighbor.get("state") or {}).get("neighbor_address")
        if address and not (neighbor.get("conf") or {}).get("neighbor_address") \
                and not any(ipaddress.IPv4Address(address) in r for r in ranges):
            stale.append(address)
    commands = [gobgpd.cli() + ["neighbor", address, "reset"] for address in sorted(stale)]
    if not check_mode:
        for argv in commands:
            gobgpd.run(argv)
    return commands


def originate(gobgpd, before, doc, role, check_mode=False):
    """A leaf's owned /32s in gobgpd's global RIB: add the missing ones, withdraw those it exported before and no
    longer owns (only those: other local routes are not ours).  Returns the gobgp argv lists it ran."""
    if role == "rr":
        return []
    sets = {s.get("prefix-set-name"): s for s in (doc.get("defined-sets") or {}).get("prefix-sets") or ()}
    owned = sorted(i.get("ip-prefix") for s in sets.values() for i in s.get("prefix-list") or ())
    old_doc = parse(before)[0] if before else None
    old_sets = (old_doc or {}).get("defined-sets") or {}
    previous = {i.get("ip-prefix") for s in old_sets.get("prefix-sets") or () for i in s.get("prefix-list") or ()}
    local = {prefix for prefix, paths in (gobgpd.show("global", "rib", "-a", "ipv4") or {}).items()
             if any(not p.get("neighbor-ip") for p in paths)}     # a local path names no neighbor
    commands = [gobgpd.cli() + ["global", "rib", "add", "-a", "ipv4", p] for p in owned if p not in local]
    commands += [gobgpd.cli() + ["global", "rib", "del", "-a", "ipv4", p]
                 for p in sorted(previous - set(owned)) if p in local]
    if not check_mode:
        for argv in commands:
            gobgpd.run(argv)
    return commands


def apply_state(gobgpd, state, options=None):
    """Render ``state`` (render_gobgp) and apply it; the reconcile log's summary.  Raises GobgpError (or the
    renderer's ValueError: an RR-to-RR peering, an identifier it will not write)."""
    result = apply(gobgpd, render_gobgp(state, options), state.get("role"))
    leaves = sum(len((r.get("spec") or {}).get("admitted") or ()) for r in state.get("resources", ())
                 if r.get("kind") == "BGPDynamicPeer")
    if not result["changed"]:
        return "gobgp unchanged (%d leaves)" % leaves
    return "gobgp reloaded and verified%s (%d leaves)" % (
        ", then " + ", ".join(result["commands"]) if result["commands"] else "", leaves)


def peer_info_outputs(gobgpd, peer_group, config_path=None):
    """The gobgp JSON core/bgp_status_gobgp.gobgp_peer_status reads, for the peers of ``peer_group``; the group's
    dynamic-neighbors ranges from ``config_path`` (gobgp's CLI does not list them), else None."""
    neighbors = gobgpd.show("neighbor") or []
    outputs = {"neighbors": neighbors, "rib": gobgpd.show("global", "rib", "-a", "ipv4") or {}, "adj_in": {},
               "ranges": None}
    for neighbor in neighbors:
        conf, state = neighbor.get("conf") or {}, neighbor.get("state") or {}
        address = state.get("neighbor_address") or conf.get("neighbor_address")
        if conf.get("peer_group") == peer_group and is_address(address):   # an argv element, never a shell word
            outputs["adj_in"][address] = gobgpd.show("neighbor", address, "adj-in", "-a", "ipv4") or {}
    if config_path:
        try:
            with open(config_path, encoding="utf-8") as stream:
                doc = parse(stream.read())[0] or {}
        except OSError as exc:
            raise GobgpError("%s: %s" % (config_path, exc.strerror or exc)) from None
        outputs["ranges"] = [(d.get("config") or {}).get("prefix") for d in doc.get("dynamic-neighbors") or ()
                             if (d.get("config") or {}).get("peer-group") == peer_group]
    return outputs
