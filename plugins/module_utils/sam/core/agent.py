# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The leaf agent's decisions (pure): what to do now, when to renew, how long to wait, what to report.

leaf/agent.py runs them (`samctl agent`); nothing here reads a clock or a file: ``now`` is an argument.
The agent state (STATE_DIR/agent.json, 0600) is a plain mapping:

``claimName``, ``intentDigest`` (signing.intent_digest of the claim it enrolled), ``signedClaim`` (the spec it
submitted: joinHMAC and nonce are not secrets), ``claimDigest``, ``generation``, ``rrSet``, ``expiresAt``,
``leaseStartedAt`` (the signed joinTimestamp), ``lastRenewalAt``, ``lastRefreshAt``, ``lastSuccessAt``,
``failures``, ``nextAttemptAt``, ``lastError``, ``attemptedIntent``, ``resign`` (why the next pass must sign),
``appliedDigest``, ``appliedAt``, ``applyError``, ``teardownPending`` (a revoked leaf's teardown
failed: retried each interval), ``revoked`` ({intentDigest, at, reason} or None), ``rrAnswered``,
``rrUnreachable``, ``nonces`` (the last few nonces it signed, newest last).
"""

import datetime
from dataclasses import dataclass

from . import lease, materialize
from .fields import format_time, parse_time

SIGN, REFRESH, WAIT, REVOKED = "sign", "refresh", "wait", "revoked-wait"
DEFAULT_REFRESH = datetime.timedelta(seconds=60)
MAX_SLEEP = datetime.timedelta(hours=1)   # wake at least this often (a clock jump, a lease without expiry)
KEEP_NONCES = 16
# Definitive topology answers (valid response MAC) after which the claim must be signed and submitted again.
RESIGN_RULES = ("claim-expired", "unknown-claim", "join-token-retired")
REVOKED_RULE = "claim-revoked"


@dataclass(frozen=True)
class Action:
    kind: str          # SIGN | REFRESH | WAIT | REVOKED
    reason: str
    wake_at: object = None   # datetime for WAIT (None: until a signal, e.g. REVOKED)


def renewal_window(length):
    """How long before its expiry a lease of ``length`` (timedelta) is renewed.

    One third of the lease: a failed renewal still has room for a few backed-off retries before the lease
    ends (with a 60 s lease: renew 20 s before, retries at ~10 s).  A lease up to 30 min renews at least
    lease.REFRESH_WINDOW (routerd's stateTTLRefreshBefore, what enrollment-join uses) before its end, but
    never in the first half of the lease, so a short lease is not renewed continuously; for a long lease
    one third is earlier than REFRESH_WINDOW anyway.
    """
    if length <= datetime.timedelta(0):
        return datetime.timedelta(0)
    return max(length / 3, min(lease.REFRESH_WINDOW, length / 2))


def renew_at(state):
    """When the current lease enters its renewal window (datetime), None without an expiry."""
    expires = parse_time((state or {}).get("expiresAt"))
    if expires is None:
        return None
    start = parse_time(state.get("leaseStartedAt")) or parse_time(state.get("lastRenewalAt")) or expires
    return expires - renewal_window(expires - start)


def backoff(failures, jitter, cap=lease.BACKOFF_MAX):
    """core/lease's backoff with jitter, capped at ``cap`` (timedelta) and never below one second."""
    return max(datetime.timedelta(seconds=1), min(cap, lease.backoff_delay(failures, jitter)))


def next_action(state, intent, now, interval=DEFAULT_REFRESH):
    """What the agent does now for its claim intent digest ``intent``."""
    state = state or {}
    revoked = state.get("revoked")
    if isinstance(revoked, dict) and revoked.get("intentDigest") == intent:
        # A teardown that failed (FRR refused or was down) is retried each interval; else only a signal wakes it.
        return Action(REVOKED, "revoked", now + interval if state.get("teardownPending") else None)
    changed = state.get("intentDigest") != intent
    not_before = parse_time(state.get("nextAttemptAt"))
    retried = not changed or state.get("attemptedIntent") == intent
    if state.get("failures") and not_before is not None and now < not_before and retried:
        return Action(WAIT, "backoff", not_before)
    if not isinstance(state.get("signedClaim"), dict) or not state.get("claimDigest"):
        return Action(SIGN, "no-lease")
    if changed:
        return Action(SIGN, "intent-changed")
    if isinstance(revoked, dict):
        return Action(SIGN, "intent-changed")
    if state.get("resign"):
        return Action(SIGN, str(state["resign"]))
    expires = parse_time(state.get("expiresAt"))
    if expires is not None and now >= expires:
        return Action(SIGN, "expired")
    renew = renew_at(state)
    if renew is not None and now >= renew:
        return Action(SIGN, "renewal-window")
    last = parse_time(state.get("lastRefreshAt"))
    due = now if last is None else last + interval
    if not isinstance(state.get("rrSet"), dict) or now >= due:
        return Action(REFRESH, "interval")
    if state.get("failures"):
        return Action(REFRESH, "retry")     # the backoff is over: try again now, not an interval later
    wake = min(t for t in (due, renew, now + MAX_SLEEP) if t is not None)
    return Action(WAIT, "fresh", wake)


def is_renewal(state, intent, reason):
    """A sign for the same intent with a lease held: ask the RRs first whether the claim was revoked."""
    return (state or {}).get("intentDigest") == intent and reason not in ("no-lease", "intent-changed") \
        and isinstance((state or {}).get("signedClaim"), dict)


def _members(rrset):
    spec = rrset.get("spec") if isinstance(rrset, dict) and isinstance(rrset.get("spec"), dict) else {}
    members = spec.get("members") if isinstance(spec.get("members"), list) else []
    return [m.get("nodeRef") if isinstance(m, dict) else str(m) for m in members]


def _reach(new, answered, unreachable):
    new["rrAnswered"] = answered
    new["rrUnreachable"] = list(unreachable or [])
    return new


def after_enrolled(state, name, intent, signed, doc, now, answered, unreachable=()):
    """New state after a submit accepted (or a nonce-replay) and a verified topology."""
    new = dict(state or {})
    nonces = [n for n in (new.get("nonces") or []) if n != signed.get("joinNonce")] + [signed.get("joinNonce")]
    new.update({"claimName": name, "intentDigest": intent, "signedClaim": signed,
                "claimDigest": lease.claim_digest(signed), "leaseStartedAt": signed.get("joinTimestamp"),
                "lastRenewalAt": format_time(now), "revoked": None, "resign": None, "teardownPending": None,
                "nonces": nonces[-KEEP_NONCES:]})
    return after_refreshed(new, doc, now, answered, unreachable)[0]


def after_refreshed(state, doc, now, answered, unreachable=()):
    """(new state, RRSet changed) after a verified topology for the held claim."""
    new = dict(state or {})
    changed = new.get("rrSet") != doc.get("rrSet")
    expires = parse_time(doc.get("expiresAt"))
    new.update({"rrSet": doc.get("rrSet"), "expiresAt": format_time(expires) if expires else None,
                "generation": doc.get("generation"), "lastRefreshAt": format_time(now),
                "lastSuccessAt": format_time(now), "failures": 0, "nextAttemptAt": None, "lastError": None,
                "attemptedIntent": None})
    return _reach(new, answered, unreachable), changed


def after_failure(state, intent, now, jitter, error, cap=lease.BACKOFF_MAX, unreachable=(), resign=None):
    """A failed pass: everything held (RRSet, applied state) is kept; the next attempt is backed off."""
    new = dict(state or {})
    new["failures"] = int(new.get("failures") or 0) + 1
    new["nextAttemptAt"] = format_time(now + backoff(new["failures"], jitter, cap))
    new["lastError"] = str(error)[:500]
    new["attemptedIntent"] = intent
    if resign:
        new["resign"] = resign
    return _reach(new, None, unreachable)


def after_resign_needed(state, rule, now):
    """A definitive topology answer that a new signed claim fixes (expired, unknown to the RR, token retired)."""
    new = dict(state or {})
    new["resign"] = rule
    new["lastRefreshAt"] = format_time(now)
    return new


def after_revoked(state, intent, now, reason, applied_digest=None):
    """The RRs say the claim is revoked: remember it for this intent (the agent waits for a new intent)."""
    new = dict(state or {})
    new.update({"revoked": {"intentDigest": intent, "at": format_time(now), "reason": str(reason)[:500]},
                "failures": 0, "nextAttemptAt": None, "lastError": "claim-revoked: " + str(reason)[:480],
                "resign": None, "lastRefreshAt": format_time(now)})
    if applied_digest is not None:
        new = after_teardown(new, now, applied_digest)
    return new


def after_teardown(state, now, applied_digest=None, error=None):
    """A revoked leaf's teardown done (``applied_digest``: the empty state's) or failed (``error``: retried)."""
    new = dict(state or {})
    if error is None:
        new.update({"appliedDigest": applied_digest, "appliedAt": format_time(now), "applyError": None,
                    "teardownPending": None})
    else:
        new.update({"applyError": str(error)[:500], "teardownPending": True})
    return new


def state_digest(desired):
    """materialize.state_digest: apply only when it changed."""
    return materialize.state_digest(desired)


def empty_state(node, desired=None):
    """The desired state of a revoked leaf: its BGPRouter only, exporting nothing (from ``desired``, its last
    materialized state): no BGP neighbour, tunnel, route or owned /32 (apply/node removes only what boma.mesh
    owns; FRR needs the router itself to render)."""
    routers = [r for r in (desired or {}).get("resources", ()) if isinstance(r, dict) and r.get("kind") == "BGPRouter"]
    kept = [dict(r, spec=dict(r.get("spec") or {}, exportPrefixes=[])) for r in routers[:1]]
    return {"node": node, "role": "leaf", "resources": kept}


def seconds_left(state, now):
    expires = parse_time((state or {}).get("expiresAt"))
    return None if expires is None else (expires - now).total_seconds()


def status(state, now):
    """`samctl agent status`: what an operator looks at (no token, no key: the state holds none)."""
    state = state or {}
    left = seconds_left(state, now)
    return {"claim": state.get("claimName"), "leaseExpiresAt": state.get("expiresAt"),
            "leaseSecondsLeft": None if left is None else int(left), "generation": state.get("generation"),
            "lastRenewalAt": state.get("lastRenewalAt"), "lastSuccessAt": state.get("lastSuccessAt"),
            "rrReachable": state.get("rrAnswered"), "rrUnreachable": state.get("rrUnreachable") or [],
            "members": _members(state.get("rrSet")), "lastError": state.get("lastError"),
            "appliedDigest": state.get("appliedDigest"), "appliedAt": state.get("appliedAt"),
            "failures": int(state.get("failures") or 0), "nextAttemptAt": state.get("nextAttemptAt"),
            "revoked": state.get("revoked")}


def metrics(state, now):
    """node_exporter textfile lines (Prometheus text format)."""
    state = state or {}
    left = seconds_left(state, now)
    success = parse_time(state.get("lastSuccessAt"))
    label = '{claim="%s"}' % str(state.get("claimName") or "").replace("\\", "").replace('"', "")
    rows = [("lease_seconds_left", "Seconds until the leaf's lease ends (negative: it ended).",
             0 if left is None else int(left)),
            ("last_success_timestamp_seconds", "When an RR last answered the agent (Unix time).",
             0 if success is None else int(success.timestamp())),
            ("failures", "Failed attempts since the last success.", int(state.get("failures") or 0)),
            ("revoked", "1 when the RRs revoked the claim the agent holds.", 1 if state.get("revoked") else 0)]
    out = []
    for name, text, value in rows:
        out += ["# HELP boma_sam_agent_%s %s" % (name, text), "# TYPE boma_sam_agent_%s gauge" % name,
                "boma_sam_agent_%s%s %d" % (name, label, value)]
    return "\n".join(out) + "\n"


def pass_changed(before, after):
    """Whether a pass changed the leaf: a new lease (generation), another RRSet, an applied change, a revocation.

    A refresh that found everything as it was is not a change (a second playbook run reports changed=0)."""
    keys = ("generation", "claimDigest", "rrSet", "appliedDigest", "revoked")
    return any((before or {}).get(k) != (after or {}).get(k) for k in keys)


def once_summary(state):
    """The one JSON line of `samctl agent --once` (no token, no key: the state holds none)."""
    state = state or {}
    return {"claim": state.get("claimName"), "expiresAt": state.get("expiresAt"),
            "generation": state.get("generation"), "members": _members(state.get("rrSet")),
            "appliedDigest": state.get("appliedDigest"), "rrSet": state.get("rrSet")}
