# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Nonce retention (issue 17, class 6): when an RR may forget a used joinNonce without reopening replay.

A replay resends a claim's signed fields unchanged (joinNonce, joinTimestamp, policyRef, ...).  ``expiresAt``
is admin-owned and not signed (payload.py), so a replay can drop it: the only bound a replay cannot escape is
joinTimestamp + the policy's ttl.  That instant is the nonce's ``validUntil``; once it lies more than the clock
margin in the past, the replay is refused as claim-expired whether the nonce is remembered or not.

A longer ttl configured later would make such a replay admissible again, so forgetting a nonce also raises
its policy's *horizon*: the latest joinTimestamp among the nonces the RR forgot.  A submitted claim whose
joinTimestamp is at or before its policy's horizon is refused (``nonce-horizon``): every forgotten nonce has
a joinTimestamp at or before it, whatever the ttl or the clock do later.  Under an unchanged ttl the horizon
lies more than ttl + margin in the past, so it never refuses a claim that is not expired anyway.

No ttl or no joinTimestamp: no ``validUntil``, and the nonce is kept forever.  Times are stored as
format_time text (UTC, whole seconds: text order is time order), rounded up to the next second so that a
stored bound is never earlier than the real one.
"""

import datetime

from .fields import format_time, parse_time
from .validate import DEFAULT_SKEW

RULE = "nonce-horizon"
_SECOND = datetime.timedelta(seconds=1)


def stamp(when):
    """format_time of ``when`` rounded up to the next whole second (None stays None, an overflow too)."""
    if when is None:
        return None
    try:
        return format_time(when if not when.microsecond else when.replace(microsecond=0) + _SECOND)
    except (OverflowError, ValueError):
        return None


def normalize(text):
    """A replicated validUntil/joinedAt as stored text, or None when it is not an RFC 3339 timestamp."""
    return stamp(parse_time(text)) if isinstance(text, str) and len(text) <= 64 else None


def window(policy, claim):
    """(validUntil, joinedAt) text of a parsed claim: when a replay of it stops being admissible (None: never),
    and its joinTimestamp (None when the claim has none), both as stored."""
    joined = stamp(claim.timestamp) if claim is not None else None
    if joined is None or policy is None or policy.ttl is None:
        return None, joined
    try:
        return stamp(claim.timestamp + policy.ttl), joined
    except OverflowError:   # a year-9999 joinTimestamp never expires: keep its nonce
        return None, joined


def cutoff(now, margin=DEFAULT_SKEW):
    """Nonces whose validUntil is before this text may be forgotten (``margin``: the clock skew tolerated)."""
    return format_time(now - margin)


def beyond_horizon(joined_at, horizon):
    """True when a claim joined at ``joined_at`` (stored text) is at or before the policy's ``horizon``."""
    return joined_at is not None and horizon is not None and joined_at <= horizon


def horizon_message(joined_at, horizon):
    return ("joinTimestamp %s is at or before the nonce horizon %s of its policy (nonces that old were forgotten "
            "once expired, so such a claim could be a replay); sign a new claim" % (joined_at, horizon))
