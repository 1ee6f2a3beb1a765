# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The leaf agent (`samctl agent`): sign and renew the leaf's claim, keep its RRSet fresh, apply its state.

Every decision (sign, refresh, wait, revoked-wait, the renewal window, backoff) is core/agent.py's; this file
does the I/O: io/enroll_client.py's submit_and_fetch / fetch_topology, apply/node.py, the state file
STATE_DIR/agent.json (0600, atomic) and the node_exporter textfile.  Tokens and the WireGuard private key
are never written, logged or put into the state: only the signed claim (nonce, timestamp, HMAC, public key).
"""

import contextlib
import dataclasses
import datetime
import fcntl
import logging
import os
import random
import secrets
import threading

from ..apply.dataplane import DataplaneMemory, apply_dataplane
from ..apply.gobgp import Gobgpd, apply_state
from ..apply.node import FrrMemory, apply_bgp, run_command
from ..core import agent as decide
from ..core import lease, signing
from ..core.fields import format_time, parse_time
from ..core.loader import Resource, load_resources
from ..core.materialize import materialize
from ..core.model import parse_rrset
from ..core.validate import validate
from ..io import enroll_client
from ..io.atomic import replace_file
from . import keys

LOG = logging.getLogger("samctl.agent")
STATE_FILE = "agent.json"
LOCK_FILE = "agent.lock"
KEY_FILE = "wg.key"
KIND = "SAMEnrollmentClaim"


class AgentInputError(ValueError):
    """The claim, the documents or a key cannot be used (exit code 2); the message names what, never a secret."""


class _Stop(BaseException):
    """Raised by the SIGTERM/SIGINT handler to leave an exchange in flight (the state file stays consistent)."""


@dataclasses.dataclass
class Settings:
    node: str
    endpoints: list
    api_token: object            # the bearer token (never logged)
    state_dir: str
    claim: str = None
    apply: str = "none"          # none | bgp | all
    refresh_interval: float = 60.0
    backoff_max: float = lease.BACKOFF_MAX.total_seconds()
    wg_key_file: str = None
    textfile: str = None
    frr_vty_socket: str = None
    frr_confdir: str = "/etc/frr"
    bgp_bfd: bool = False        # render_frr's options: the same as the play's sam_bgp, or the two would fight
    bgp_connect_timer: int = 2
    bgp_daemon: str = "frr"      # frr | gobgp (sam_gobgp's path: lint, gobgpd -d, file, SIGHUP, read-back)
    gobgp: dict = None           # apply/gobgp.Gobgpd's options (config_path, api_target, pid_file, service)
    wg_listen_port: int = None
    repair_interval: float = 300.0   # apply in full this often even when nothing changed (hand edits, reboots)
    ca_file: str = None
    timeout: float = enroll_client.DEFAULT_TIMEOUT
    response_mac: str = "required"   # optional: the downgrade for an RR without a response MAC (routerd's)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def pick_claim(documents, node, claim=None):
    """(name, spec) of --claim, else of the one SAMEnrollmentClaim whose leafID (or name) is ``node``."""
    resources, findings = load_resources(documents)
    claims = {r.name: r for r in resources if r.kind == KIND}
    if claim:
        name = claim.split("/", 1)[1] if claim.startswith(KIND + "/") else claim
        found = [claims[name]] if name in claims else []
    else:
        found = [r for r in claims.values() if r.spec.get("leafID") == node] or \
            [r for r in claims.values() if r.name == node]
    if len(found) != 1:
        errs = [str(f) for f in findings if f.severity == "error"][:3]
        raise AgentInputError("%s %s: %d found in --config%s" % (
            KIND, claim or "with leafID %s" % node, len(found), ("; " + "; ".join(errs)) if errs else ""))
    return found[0].name, found[0].spec


def desired_state(documents, node, signed, rrset, now):
    """The leaf's materialized state: its documents with the signed claim and the fetched RRSet (sam_materialize)."""
    resources, findings = load_resources(documents)
    name = signed[0]
    resources = [r for r in resources if r.kind != "SAMRRSet" and not (r.kind == KIND and r.name == name)]
    resources.append(Resource(KIND, name, signed[1], "agent"))
    report = validate(resources, now=now, findings=findings)
    if not report.ok:
        raise AgentInputError("the leaf's documents are invalid, nothing applied: %s"
                              % "; ".join(f.describe() for f in report.errors[:5]))
    fetched_resources, fetched_findings = load_resources([("fetched", rrset)])
    fetched = {r.name: parse_rrset(r, fetched_findings) for r in fetched_resources if r.kind == "SAMRRSet"}
    if fetched_findings:
        raise AgentInputError("fetched RRSet: " + "; ".join(f.describe() for f in fetched_findings[:5]))
    return materialize(report, node, fetched)


def write_text(path, text):
    """Replace a small text file atomically (node_exporter reads it at any moment), mode 0644."""
    replace_file(path, text.encode("utf-8"), mode=0o644, durable=False)


class Agent:
    """One leaf's agent.  ``load_inputs()`` -> (documents, join key bytes), called at start and on SIGHUP."""

    def __init__(self, settings, load_inputs, clock=utcnow, jitter=random.random, transport=enroll_client,
                 applier=None):
        self.s = settings
        self.load_inputs = load_inputs
        self.clock, self.jitter, self.transport = clock, jitter, transport
        self.applier = applier or self._apply
        self.frr_memory = FrrMemory()    # a changed state goes to FRR as a delta; the first apply and repairs in full
        self.data_memory = DataplaneMemory()   # and to the kernel: only the tunnels and routes that changed
        self.path = os.path.join(settings.state_dir, STATE_FILE)
        self.interval = datetime.timedelta(seconds=settings.refresh_interval)
        self.cap = datetime.timedelta(seconds=settings.backoff_max)
        self.stop, self.hup, self.wake = threading.Event(), threading.Event(), threading.Event()
        self.busy = False
        self.last_pass_before = {}
        self.state, note = enroll_client.read_state(self.path)
        if note:
            LOG.warning("%s", note)
        self.state = self.state or {}
        self.documents = self.key = self.name = self.spec = self.intent = None
        self.wg_public = None
        self.unsigned_rrs = set()   # RRs already logged as answering without a response MAC
        self.reload()

    # -- inputs ------------------------------------------------------------------------------------------
    def reload(self):
        """Read the --config files and the join token again (start-up and SIGHUP)."""
        documents, key = self.load_inputs()
        name, spec = pick_claim(documents, self.s.node, self.s.claim)
        if isinstance(spec.get("wireGuard"), dict) and signing.is_intent(spec):
            path = self.s.wg_key_file or os.path.join(self.s.state_dir, KEY_FILE)
            try:
                self.wg_public = keys.load_or_create(path, create=not self.s.wg_key_file)[1]
            except keys.KeyFileError as exc:
                raise AgentInputError("--wg-key-file: %s" % exc) from None
        old = self.intent
        self.documents, self.key, self.name, self.spec = documents, key, name, spec
        self.intent = signing.intent_digest(spec)
        if old is not None and old != self.intent:
            LOG.info("claim %s: intent changed (%s)", name, self.intent[:19])

    def _signed(self, reason, now):
        """The claim to submit: a fully signed --config claim as written on its first enrollment, else signed now.

        A written claim cannot be renewed without a new nonce, timestamp and HMAC, so renewals (and a written
        claim the RRs refused) are re-signed with the join token, its identity fields kept (docs/operations.md).
        """
        written = lease.claim_digest(self.spec)
        if not signing.is_intent(self.spec) and reason in ("no-lease", "intent-changed") \
                and self.state.get("writtenRefused") != written:
            return self.spec
        return signing.sign_claim(self.spec, self.key, secrets.token_hex(16), now, self.wg_public)

    # -- exchanges ---------------------------------------------------------------------------------------
    def _call(self, what, spec):
        self.busy = True
        try:
            # Only a downgrade is passed on, so a transport written before the option keeps working.
            extra = {} if self.s.response_mac == "required" else {"response_mac": self.s.response_mac}
            ex = getattr(self.transport, what)(self.s.endpoints, self.name, spec, self.s.api_token, self.key,
                                               timeout=self.s.timeout, ca_file=self.s.ca_file, **extra)
        finally:
            self.busy = False
        if getattr(ex, "mac_verified", None) is False and ex.endpoint not in self.unsigned_rrs:
            self.unsigned_rrs.add(ex.endpoint)
            LOG.warning("%s answers without a response MAC; trusted because --response-mac optional: its RRSet is "
                        "not authenticated", ex.endpoint)
        return ex

    def _fail(self, now, ex, kind):
        LOG.warning("%s failed (%s): %s; next attempt in the backoff", kind, ex.rule, ex.error)
        self.state = decide.after_failure(self.state, self.intent, now, self.jitter(),
                                          "%s: %s" % (ex.rule, ex.error), self.cap, ex.unreachable)

    def _enroll(self, now, reason):
        if decide.is_renewal(self.state, self.intent, reason):
            # A renewal is a new claim the RRs would accept even after a revocation: ask first.
            ex = self._call("fetch_topology", self.state["signedClaim"])
            if ex.definitive and ex.rule == decide.REVOKED_RULE:
                return self._revoke(now, ex.error)
        signed = self._signed(reason, now)
        ex = self._call("submit_and_fetch", signed)
        if ex.ok:
            renewed = self.state.get("claimDigest") is not None
            self.state = decide.after_enrolled(self.state, self.name, self.intent, signed, ex.doc, now,
                                               ex.endpoint, ex.unreachable)
            LOG.info("%s %s through %s (%s): generation %s, lease until %s", "renewed" if renewed else "enrolled",
                     self.name, ex.endpoint, reason, self.state.get("generation"), self.state.get("expiresAt"))
        elif ex.definitive and ex.rule == decide.REVOKED_RULE:
            self._revoke(now, ex.error)
        else:
            if ex.definitive and signed is self.spec:
                self.state["writtenRefused"] = lease.claim_digest(signed)
            self._fail(now, ex, "submit")
        return None

    def _refresh(self, now):
        ex = self._call("fetch_topology", self.state["signedClaim"])
        if ex.ok:
            self.state, changed = decide.after_refreshed(self.state, ex.doc, now, ex.endpoint, ex.unreachable)
            if changed:
                LOG.info("RRSet changed: members %s", decide.status(self.state, now)["members"])
        elif ex.definitive and ex.rule == decide.REVOKED_RULE:
            self._revoke(now, ex.error)
        elif ex.definitive and ex.rule in decide.RESIGN_RULES:
            LOG.info("topology: %s: signing a new claim", ex.rule)
            self.state = decide.after_resign_needed(self.state, ex.rule, now)
        else:
            self._fail(now, ex, "topology refresh")

    def _revoke(self, now, reason):
        LOG.warning("claim %s revoked by the RRs: %s; tearing down and waiting for a changed claim", self.name, reason)
        self.state = decide.after_revoked(self.state, self.intent, now, reason)
        self._teardown(now)

    def _teardown(self, now):
        """Apply the empty state (apply none: nothing to do); a failure is recorded and retried each interval."""
        if self.s.apply == "none":
            return
        try:
            last = desired_state(self.documents, self.s.node, (self.name, self.state["signedClaim"]),
                                 self.state["rrSet"], now)
        except Exception:  # noqa: BLE001 - without the last state only an empty one is left to apply
            last = None
        empty = decide.empty_state(self.s.node, last)
        try:
            LOG.info("teardown: %s", self.applier(empty))
        except Exception as exc:  # noqa: BLE001 - recorded and retried, the revocation still holds
            LOG.error("teardown failed (retried in %ds): %s: %s", self.s.refresh_interval, type(exc).__name__, exc)
            self.state = decide.after_teardown(self.state, now, error="%s: %s" % (type(exc).__name__, exc))
            return
        self.state = decide.after_teardown(self.state, now, decide.state_digest(empty))

    # -- apply -------------------------------------------------------------------------------------------
    def _apply(self, desired):
        if self.s.bgp_daemon == "gobgp":
            # no delta memory: gobgpd diffs the file itself on a reload (apply/gobgp.py)
            gobgpd = Gobgpd(run_command, **(self.s.gobgp or {}))
            parts = [apply_state(gobgpd, desired, {"connect_retry": self.s.bgp_connect_timer})]
        else:
            options = {"bfd": self.s.bgp_bfd, "connect_timer": self.s.bgp_connect_timer}
            parts = [apply_bgp(desired, self.s.frr_vty_socket, self.s.frr_confdir, options, memory=self.frr_memory)]
        if self.s.apply == "all":
            key_file = self.s.wg_key_file or os.path.join(self.s.state_dir, KEY_FILE)
            parts.extend(apply_dataplane(desired, {"key_file": key_file, "listen_port": self.s.wg_listen_port},
                                         memory=self.data_memory))
        return ", ".join(parts)

    def _maybe_apply(self, now):
        state = self.state
        if self.s.apply == "none" or state.get("revoked") or not isinstance(state.get("rrSet"), dict) \
                or not isinstance(state.get("signedClaim"), dict):
            return
        try:
            desired = desired_state(self.documents, self.s.node, (self.name, state["signedClaim"]),
                                    state["rrSet"], now)
            digest = decide.state_digest(desired)
            applied_at = parse_time(state.get("appliedAt"))
            if digest == state.get("appliedDigest") and applied_at is not None \
                    and datetime.timedelta(0) <= now - applied_at < datetime.timedelta(seconds=self.s.repair_interval):
                return
            if digest == state.get("appliedDigest"):
                self.frr_memory.forget()     # the repair pass: the whole paths put back hand edits
                self.data_memory.forget()
            LOG.info("apply: %s", self.applier(desired))
        except Exception as exc:  # noqa: BLE001 - logged and retried next pass; the last applied state stays
            LOG.error("apply failed: %s: %s", type(exc).__name__, exc)
            self.state = dict(state, applyError="%s: %s" % (type(exc).__name__, str(exc)[:400]))
            return
        self.state = dict(state, appliedDigest=digest, appliedAt=format_time(now), applyError=None)

    # -- passes ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self):
        """The state directory's lock for one pass, and the state as the last pass left it on disk.

        The running agent and the play's `samctl agent --once` share STATE_DIR: the second one waits for the
        first one's pass to end, then starts from what it wrote (never from a stale copy in memory)."""
        fd = os.open(os.path.join(self.s.state_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state, note = enroll_client.read_state(self.path)
            if note:
                LOG.warning("%s", note)
            self.state = state or {}
            yield
        finally:
            os.close(fd)   # closing the descriptor releases the lock

    def preview(self):
        """What `--once --check` reports: the next action from the saved state; nothing is signed, sent or applied."""
        with self.locked():
            return decide.next_action(self.state, self.intent, self.clock(), datetime.timedelta(0))

    def step(self, once=False):
        """One pass under the state lock; returns the next core Action (when to wake)."""
        with self.locked():
            return self._step(once)

    def _step(self, once):
        now = self.clock()
        before = self.last_pass_before = dict(self.state)
        action = decide.next_action(self.state, self.intent, now, self.interval)
        if once and action.kind == decide.WAIT:
            # An operator's --once ignores the backoff and always fetches the topology.
            action = decide.next_action(dict(self.state, failures=0), self.intent, now, datetime.timedelta(0))
        if action.kind == decide.SIGN:
            self._enroll(now, action.reason)
        elif action.kind == decide.REFRESH:
            self._refresh(now)
        elif action.kind == decide.REVOKED and self.state.get("teardownPending"):
            self._teardown(now)
        self._maybe_apply(self.clock())
        self.save(before)
        return decide.next_action(self.state, self.intent, self.clock(), self.interval)

    def save(self, before=None):
        if self.state != before:
            enroll_client.write_state(self.path, self.state)
        if self.s.textfile:
            try:
                write_text(self.s.textfile, decide.metrics(self.state, self.clock()))
            except OSError as exc:
                LOG.error("textfile %s: %s", self.s.textfile, (exc.strerror or "error").lower())

    def run(self):
        """Until stop: one pass, then sleep until the next wake-up, a SIGHUP or a stop."""
        while not self.stop.is_set():
            if self.hup.is_set():
                self.hup.clear()
                try:
                    self.reload()
                except Exception as exc:  # noqa: BLE001 - a broken edit of --config must not stop the leaf
                    LOG.error("reload failed, keeping the previous claim: %s", exc)
            try:
                action = self.step()
            except _Stop:
                break
            except OSError as exc:    # the state file or the textfile: logged, retried after an interval
                LOG.error("pass failed: %s: %s", type(exc).__name__, exc)
                action = decide.Action(decide.WAIT, "error", self.clock() + self.interval)
            self.wake.wait(self.sleep_for(action))
            self.wake.clear()

    def sleep_for(self, action):
        """Seconds until the next pass.  A sign or a refresh that is already due (a pass longer than the refresh
        interval, a lease that ended or a claim the RRs want signed again) runs at once; only a wait sleeps, and
        revoked-wait (no wake_at) until a signal or MAX_SLEEP."""
        if action.kind in (decide.SIGN, decide.REFRESH):
            return 0.05
        wake = action.wake_at
        delay = decide.MAX_SLEEP.total_seconds() if wake is None else (wake - self.clock()).total_seconds()
        return min(max(delay, 0.05), decide.MAX_SLEEP.total_seconds())

    # -- signals -----------------------------------------------------------------------------------------
    # A handler runs in the main thread between two bytecodes, possibly inside self.wake.wait() while that thread
    # holds the Event's lock: setting an Event there would wait for that lock forever (the RR service once
    # ignored a SIGTERM that way).  So the handlers set the Events from another thread.
    @staticmethod
    def _set_soon(*events):
        threading.Thread(target=lambda: [event.set() for event in events], daemon=True).start()

    def on_hup(self, *_args):
        self._set_soon(self.hup, self.wake)

    def on_stop(self, *_args):
        self._set_soon(self.stop, self.wake)
        if self.busy:
            raise _Stop()
