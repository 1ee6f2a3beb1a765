# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Leaf enrollment client decisions (pure): when to refresh the fetched RRSet and how long to back off.

The state document (persisted 0600 by io/enroll_client.py) is a plain mapping:
``claimDigest``, ``rrSet``, ``expiresAt``, ``fetchedAt``, ``failures``, ``nextAttemptAt``, ``lastError``,
``attemptedDigest`` (the claim a failed attempt sent).
Only a missing state, a changed claim, or a state within the refresh window of its expiry trigger a
refresh; BGP or tunnel trouble is not an input here, so it can never cause a rejoin loop.
"""

import datetime
import hashlib
from dataclasses import dataclass

from .fields import format_time, parse_time
from .payload import canonical_payload, go_trim

BACKOFF_MIN = datetime.timedelta(seconds=10)
BACKOFF_MAX = datetime.timedelta(minutes=15)
REFRESH_WINDOW = datetime.timedelta(minutes=10)  # routerd's SAMEnrollmentClient stateTTLRefreshBefore default


@dataclass(frozen=True)
class Decision:
    refresh: bool
    reason: str
    not_before: object = None   # datetime: earliest next attempt while backing off


def _identity_text(spec, payload=None):
    hmac_text = go_trim(str(spec.get("joinHMAC") or "")) if isinstance(spec, dict) else ""
    return (canonical_payload(spec) if payload is None else payload) + "\njoinHMAC=" + hmac_text


def _sha256(text):
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def claim_digest(spec, payload=None):
    """routerd's client identity digest: sha256 over the signed payload (``payload`` if built) plus the joinHMAC."""
    return _sha256(_identity_text(spec, payload))


def routerd_claim_digest(spec):
    """The ``claimDigest`` routerd's RR states in a topology answer (its samenrollment.ClaimDigest of the claim it
    holds): claim_digest's text plus expiresAt and revoked.  Ours states claim_digest, so a leaf that talks to a
    routerd RR must know both forms (io/enroll_client, response_mac optional)."""
    spec = spec if isinstance(spec, dict) else {}
    return _sha256(_identity_text(spec) + "\nexpiresAt=" + go_trim(str(spec.get("expiresAt") or ""))
                   + "\nrevoked=" + ("true" if spec.get("revoked") is True else "false"))


def refresh_decision(state, claim_spec, now, window=REFRESH_WINDOW):
    """Decision for a leaf holding ``state`` (None when there is none) and its local claim."""
    digest = claim_digest(claim_spec)
    if not state:
        return Decision(True, "state-missing")
    changed = state.get("claimDigest") != digest
    # A claim that failed as it is now (never joined, or its change was refused) backs off too;
    # only a claim changed since the failed attempt goes straight to the RRs.
    retried = not changed or state.get("attemptedDigest") == digest
    not_before = parse_time(state.get("nextAttemptAt"))
    if state.get("failures") and not_before is not None and now < not_before and retried:
        return Decision(False, "backoff", not_before)
    if changed:
        return Decision(True, "claim-changed")
    expires = parse_time(state.get("expiresAt"))
    if expires is None or not isinstance(state.get("rrSet"), dict):
        return Decision(True, "state-incomplete")
    if now >= expires:
        return Decision(True, "expired")
    if now >= expires - window:
        return Decision(True, "near-expiry")
    return Decision(False, "fresh")


def backoff_delay(failures, jitter):
    """Exponential backoff with jitter: 10 s doubling per failure, capped at 15 min.

    ``jitter`` is a number in [0, 1) (``random.random()`` at the edge); the delay lies in
    [base/2, base] and never below BACKOFF_MIN, so a fleet that failed together spreads out.
    """
    exponent = min(max(failures, 1) - 1, 16)
    base = min(BACKOFF_MIN * (2 ** exponent), BACKOFF_MAX)
    return max(BACKOFF_MIN, base * (0.5 + min(max(jitter, 0.0), 1.0) / 2))


def after_failure(state, now, jitter, error, claim_spec=None):
    """New state after a failed attempt: the fetched RRSet (if any) is kept, the attempt is backed off."""
    new = dict(state or {})
    if claim_spec is not None:
        new["attemptedDigest"] = claim_digest(claim_spec)
    new["failures"] = int(new.get("failures") or 0) + 1
    new["nextAttemptAt"] = format_time(now + backoff_delay(new["failures"], jitter))
    new["lastError"] = str(error)[:500]
    return new


def after_success(claim_spec, rrset, expires_at, now):
    """New state after an accepted claim and a verified RRSet fetch."""
    return {"claimDigest": claim_digest(claim_spec), "rrSet": rrset, "expiresAt": format_time(expires_at),
            "fetchedAt": format_time(now), "failures": 0, "nextAttemptAt": None, "lastError": None}
