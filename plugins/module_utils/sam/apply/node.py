# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a node's materialized BGP state to this host's FRR (validated candidate, delta or frr-reload).

What the playbook does with sam_bgp, in one process: the RR daemon's reconcile loop (rr/reconcile.py) and the
leaf agent call it whenever their desired state changes.  The same helpers as the module are used
(frr.apply: never a bgpd restart), so both paths converge on the same FRR state.  The data plane is
apply/dataplane.py.
"""

import logging
import os
import subprocess
import tempfile

from ..core.render.frr import render_frr
from ..core.render.frr_delta import DeltaUnsupported
from .frr import Frr, FrrError, Steps, apply_delta, persist
from .frr import apply as frr_apply

LOG = logging.getLogger("samctl.apply")
VTYSH = "/usr/bin/vtysh"            # sam_bgp's default: frr-reload needs the directory of vtysh as --bindir
COMMAND_TIMEOUT = 120               # frr-reload on a large RR config takes seconds, never minutes


class ApplyError(ValueError):
    """Nothing (or only part) could be applied; the message says which part and why."""


def run_command(argv):
    """AnsibleModule.run_command's contract for Frr: argv -> (rc, stdout, stderr); a failure is an rc."""
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return 124, "", "%s timed out after %d s" % (argv[0], COMMAND_TIMEOUT)
    except OSError as exc:
        return 127, "", "%s: %s" % (argv[0], exc.strerror or exc)
    return proc.returncode, proc.stdout, proc.stderr


class FrrMemory:
    """What one long-running process (the RR's reconcile loop, the leaf agent) last applied to FRR and verified.

    With it apply_bgp sends only the delta from that candidate (apply/frr.apply_delta, issue 19); without a
    last candidate (start-up, after any failure) or with ``full`` it runs the whole-configuration path
    (frr-reload.py), which also repairs whatever a failed delta or a hand edit left.  ``on_fallback(reason)``
    is told when a delta failed and the full path ran instead (the RR writes an audit line).
    """

    def __init__(self, on_fallback=None):
        self.candidate = None      # render_frr output last applied and verified
        self.host_lines = None     # the running config's host-owned lines, for frr.conf (from the last full run)
        self.on_fallback = on_fallback
        self.full_runs = self.delta_runs = self.fallbacks = 0
        self.steps = {}            # seconds per step of the last run (render, delta, lint, grammar, vtysh, verify)

    def forget(self):
        self.candidate = None


def apply_bgp(state, vty_socket, confdir, options=None, memory=None, full=False):
    # sam_bgp's default options are render_frr's defaults; the role passes the same bfd to both.
    clock = Steps()
    candidate = render_frr(state, options)
    clock.lap("render")
    leaves = sum(len(r["spec"].get("admitted", ())) for r in state["resources"] if r["kind"] == "BGPDynamicPeer")
    if memory is not None:
        memory.steps = clock.steps
    if memory is not None and memory.candidate is not None and not full:
        summary = _apply_delta(memory, candidate, vty_socket, confdir, leaves)
        if summary is not None:
            return summary
    clock = Steps(clock.steps)
    try:
        if _writable_dir(confdir):
            result = _apply_frr(candidate, vty_socket, confdir, os.path.join(confdir, "frr.conf"))
        else:
            # frr-reload needs an existing --confdir and writes the running config there ("write"):
            # give it a scratch one rather than a system /etc/frr we were not allowed to change.
            with tempfile.TemporaryDirectory(prefix="boma-reconcile-") as scratch:
                result = _apply_frr(candidate, vty_socket, scratch, None)
    except Exception:
        if memory is not None:
            memory.forget()
        raise
    clock.lap("reload")
    if memory is not None:
        memory.candidate, memory.full_runs = candidate, memory.full_runs + 1
        memory.host_lines = result["candidate"][:len(result["candidate"]) - len(candidate)]
    if result["deletes"] or result["adds"]:
        LOG.debug("reconcile bgp delta: -%s +%s", result["deletes"], result["adds"])
        return "bgp changed +%d -%d lines (%d leaves)" % (len(result["adds"]), len(result["deletes"]), leaves)
    return "bgp %s (%d leaves)" % ("persisted" if result["changed"] else "unchanged", leaves)


def _apply_delta(memory, candidate, vty_socket, confdir, leaves):
    """The delta path; None when the full path must run (unsupported change, refused, failed or mismatched)."""
    frr = Frr(run_command, vtysh=VTYSH, vty_socket=vty_socket, confdir=confdir)
    try:
        result = apply_delta(frr, memory.candidate, candidate)
    except DeltaUnsupported as exc:
        LOG.info("bgp: full reload (%s)", exc)
        return None
    except FrrError as exc:
        memory.fallbacks += 1
        memory.forget()
        LOG.warning("bgp delta failed, full reload: %s", exc)
        if memory.on_fallback:
            memory.on_fallback(str(exc))
        return None
    memory.candidate, memory.delta_runs = candidate, memory.delta_runs + 1
    memory.steps.update(result["steps"])
    if result["changed"] and memory.host_lines is not None and _writable_dir(confdir):
        clock = Steps(memory.steps)
        persist(os.path.join(confdir, "frr.conf"), memory.host_lines + candidate)
        clock.lap("persist")
    if result["changed"]:
        return "bgp delta +%d -%d lines, %d objects verified (%d leaves)" % (
            len(result["adds"]), len(result["deletes"]), result["touched"], leaves)
    return "bgp unchanged (%d leaves)" % leaves


def _apply_frr(candidate, vty_socket, confdir, persist_path):
    frr = Frr(run_command, vtysh=VTYSH, vty_socket=vty_socket, confdir=confdir)
    return frr_apply(frr, candidate, persist_path=persist_path)


def _writable_dir(path):
    return bool(path) and os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)
