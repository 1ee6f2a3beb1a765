# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The RR's reconcile loop for `samctl serve --reconcile bgp|all` (docs/api.md, "Reconcile").

``Reconciler`` runs ``apply()`` after changes and when a lease ends; ``factory(service, args)`` builds that
``apply()``: the desired state from the service's documents and accepted claims, then apply/node.py (FRR,
and the data plane with ``all``), so an admitted or revoked leaf reaches the RR's FRR and kernel in seconds
instead of at the next Ansible run.  An exception is logged and the run retried.
"""

import os
import threading
import time

from ..apply import netlink
from ..apply.dataplane import DataplaneMemory, apply_dataplane
from ..apply.frr import Steps
from ..apply.gobgp import Gobgpd, apply_state
from ..apply.node import ApplyError, FrrMemory, apply_bgp, run_command
from ..core.materialize import materialize, state_digest
from ..core.validate import validate_leaving_out
from .service import LOG

# A full apply (frr-reload's diff, netlink dumps) at least this often even when the desired state is unchanged.
REPAIR_INTERVAL = 300.0


class ReconcileError(ValueError):
    """A bad --reconcile setting, or a desired state that cannot be applied; the message says why."""


class Reconciler:
    """Runs ``apply()`` after changes and when a lease ends, never concurrently; a run that applied something is
    followed by ``interval`` s without one (a burst of changes folds into few runs), a run that did not by its own
    duration."""

    def __init__(self, apply, interval=0.5, next_due=None):
        self.apply = apply
        self.interval = interval
        # seconds until the next lease (or join token) ends, else None: expiry changes the state with no request
        self.next_due = next_due or (lambda: None)
        self.pending = threading.Event()
        self.stopping = threading.Event()
        self.runs = 0
        self.last_error = None
        self.failures = 0          # GET /metrics: failed runs, the last run's seconds, Unix time of the last success
        self.last_duration = 0.0
        self.last_success = 0.0

    def trigger(self):
        self.pending.set()

    def start(self):
        self.pending.set()   # reconcile once at start-up
        threading.Thread(target=self._loop, daemon=True, name="reconcile").start()

    def stop(self):
        self.stopping.set()
        self.pending.set()

    def _loop(self):
        while True:
            try:
                due = self.next_due()
            except Exception as exc:  # noqa: BLE001 - a bad record must not end the loop (issue 17)
                LOG.error("reconcile: cannot compute the next lease end: %s", type(exc).__name__)
                due = self.interval
            # +0.5 s: wake after the lease has ended, not just before it
            self.pending.wait(None if due is None else max(0.0, min(due + 0.5, 3600.0)))
            if self.stopping.is_set():
                return
            self.pending.clear()
            started = time.monotonic()
            try:
                summary = self.apply()
                self.last_error, self.last_success = None, time.time()
                LOG.info("reconcile: %s (%.2fs)%s", summary, time.monotonic() - started, _steps(self.apply))
            except Exception as exc:  # noqa: BLE001 - a failed apply is logged and retried, the service stays up
                self.last_error = "%s: %s" % (type(exc).__name__, exc)
                self.failures += 1
                LOG.error("reconcile failed: %s", self.last_error)
                self.pending.set()
            self.runs += 1
            self.last_duration = time.monotonic() - started
            # The interval batches changes that reach FRR.  A run that found the desired state unchanged (a
            # renewal) waits only as long as it took: a revocation right after a renewal is not held up for the
            # whole interval (measured: 0.65 s of a 0.76 s revocation at 200 leaves), and a storm of renewals
            # still leaves the thread idle half of the time.
            if getattr(self.apply, "applied", True):
                pause = self.interval - self.last_duration
            else:
                pause = min(self.interval, self.last_duration)
            self.stopping.wait(max(0.0, pause))


def _steps(apply):
    """" [state 0.07, render 0.04, ...]": where a run spent its seconds (factory's apply records them)."""
    steps = getattr(apply, "steps", None)
    if not steps:
        return ""
    return " [%s]" % ", ".join("%s %.3f" % item for item in steps.items())


def factory(service, args):
    mode = getattr(args, "reconcile", None)
    if mode not in ("bgp", "all"):
        raise ReconcileError("--reconcile must be bgp or all, not %r" % (mode,))
    if mode == "all" and not netlink.HAS_PYROUTE2:
        # Fail at start-up: retrying every interval cannot fix a missing library.
        raise ReconcileError("--reconcile all needs pyroute2: %s" % netlink.PYROUTE2_IMPORT_ERROR)
    vty = getattr(args, "frr_vty_socket", None)
    confdir = getattr(args, "frr_confdir", None) or "/etc/frr"

    rr_peering = bool(getattr(args, "rr_peering", False))
    bgp = _bgp_applier(args, vty, confdir, rr_peering)
    wireguard = {"key_file": getattr(args, "wg_key_file", None), "listen_port": getattr(args, "wg_listen_port", None)}
    options = {"bfd": bool(getattr(args, "bgp_bfd", False)),
               "leaf_routes": getattr(args, "bgp_leaf_routes", None) or "all"}

    repair = float(getattr(args, "repair_interval", None) or REPAIR_INTERVAL)
    last = {"marker": None, "at": None, "full_at": None}
    # The candidate last applied: a change is sent to FRR as its delta (issue 19), a failed delta is audited.
    memory = FrrMemory(on_fallback=lambda reason: service.note_event("frr-full-reload", "frr", reason))
    # The same for the data plane: a new leaf is its tunnel and route, not a dump of every link and route.
    data_memory = DataplaneMemory(on_fallback=lambda reason: service.note_event("dataplane-full", "netlink", reason))

    def apply():
        apply.steps = {}
        state = desired_state(service, args.node, rr_peering, steps=apply.steps)
        # A renewal, a refused claim or a replicated record that changes nothing leaves the desired state as it
        # was: then FRR and the kernel are not touched at all (no frr-reload run), except once per --repair-interval
        # to put back what someone changed by hand.  A rotated WireGuard key file changes the marker too.
        clock = Steps(apply.steps)
        marker = (state_digest(state), _file_stamp(wireguard["key_file"]) if mode == "all" else None)
        clock.lap("digest")
        now = time.monotonic()
        if marker == last["marker"] and now - last["at"] < repair:
            apply.applied = False
            return "unchanged (same desired state)"
        apply.applied = True
        # The whole-configuration path at start-up, after a failure (memory forgotten) and once per
        # --repair-interval; every other change is a delta.
        full = last["full_at"] is None or now - last["full_at"] >= repair
        parts, failed = [], []
        try:
            summary, whole = _apply_bgp_part(bgp, state, apply.steps, memory,
                                             lambda: apply_bgp(state, vty, confdir, options, memory=memory, full=full))
            parts.append(summary)
            if whole:        # asked for, or a delta that fell back (gobgpd: every run reads the whole file)
                last["full_at"] = now
        except Exception as exc:  # noqa: BLE001 - the data plane is still applied, the error is raised below
            failed.append("bgp failed: %s" % exc)
        if mode == "all":
            try:
                clock = Steps(apply.steps)
                parts.extend(apply_dataplane(state, wireguard, memory=data_memory, full=full))
                clock.lap("dataplane")
            except (netlink.NetlinkConfigError, netlink.Pyroute2Error, OSError, ApplyError) as exc:
                failed.append("dataplane failed: %s" % exc)
        if failed:
            raise ReconcileError(", ".join(parts + failed))
        last.update(marker=marker, at=now)
        return ", ".join(parts)

    return apply


def _apply_bgp_part(bgp, state, steps, memory, frr):
    """(summary, whether the whole configuration was applied) of the BGP part of a run: gobgpd when ``bgp`` is
    set, else FRR through ``frr()`` (apply/node.apply_bgp with ``memory``: a delta unless the run is a full one)."""
    if bgp is not None:
        clock = Steps(steps)
        summary = bgp(state)
        clock.lap("gobgp")
        return summary, True
    runs = memory.full_runs
    summary = frr()
    steps.update(memory.steps)
    return summary, memory.full_runs > runs


def _bgp_applier(args, vty, confdir, rr_peering):
    """None for FRR (apply/node.apply_bgp with its delta memory), else apply(state) for gobgpd (--bgp-daemon)."""
    daemon = getattr(args, "bgp_daemon", None) or "frr"
    if daemon == "frr":
        return None
    if daemon != "gobgp":
        raise ReconcileError("--bgp-daemon must be frr or gobgp, not %r" % (daemon,))
    if rr_peering:
        # render_gobgp refuses it (docs/bgp.md, "RR-to-RR peering"): say so at start-up, not on every run
        raise ReconcileError("--rr-peering is built for FRR only, not with --bgp-daemon gobgp (docs/bgp.md)")
    if getattr(args, "bgp_bfd", False) or (getattr(args, "bgp_leaf_routes", None) or "all") != "all":
        raise ReconcileError("--bgp-bfd and --bgp-leaf-routes aggregate are FRR options, not for --bgp-daemon gobgp")
    gobgpd = Gobgpd(run_command, config_path=getattr(args, "gobgp_config", None) or "/etc/gobgpd.conf",
                    api_target=getattr(args, "gobgp_api_target", None), pid=getattr(args, "gobgp_pid", None),
                    pid_file=getattr(args, "gobgp_pid_file", None),
                    service=getattr(args, "gobgp_service", None) or "gobgpd")
    return lambda state: apply_state(gobgpd, state)


def _file_stamp(path):
    """(inode, size, mtime) of a file, None when it is missing: notices a replaced key file without reading it."""
    try:
        st = os.stat(path) if path else None
    except OSError:
        return None
    return None if st is None else (st.st_ino, st.st_size, st.st_mtime_ns)


def desired_state(service, node, rr_peering=False, steps=None):
    """The RR's materialized state from its documents plus every active accepted claim.

    A record that loses a conflict, or fails validation, is left out with an audit line and the others are
    applied (issue 17, class 3); only an error in the RR's own documents stops the whole run.
    """
    # Accept/revoke/import change the registry under the service lock: copy the claims there (one
    # consistent snapshot), validate them outside it so submissions are not held up for O(claims).
    clock = Steps(steps)
    now = service.clock()
    with service.lock:
        clock.lap("lock")
        resources = service.registry.desired_resources(now)
        lost = dict(service.registry.conflicts(now))
    clock.lap("records")
    report, left_out = validate_leaving_out(resources, now=now)
    clock.lap("validate")
    if not report.ok:
        # Same rule as sam_materialize: an invalid document set is never half applied.
        raise ReconcileError("desired state invalid, nothing applied: %s"
                             % "; ".join(f.describe() for f in report.errors[:5]))
    for name, finding in lost.items():
        left_out.setdefault("SAMEnrollmentClaim/" + name, [finding])
    service.note_left_out(left_out)
    state = materialize(report, node, rr_peering=rr_peering)
    clock.lap("materialize")
    return state
