# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Claim intent and signing (pure): what the inventory holds, and what the leaf agent fills in.

A leaf's SAMEnrollmentClaim in host_vars may hold its identity only (policyRef, rrSetRef, leafID,
joinAudience, tunnelAddress, endpoint, owned /32s, bgp, WireGuard endpoint): an *intent*.  The agent signs
it: ``sign_claim`` fills ``joinNonce``, ``joinTimestamp``, ``wireGuard.publicKey`` (when given) and
``joinHMAC``, computed with core/payload's routerd-compatible join HMAC, so the RR verifies it exactly as it
verifies a claim signed by hand or by routerd.  No randomness and no clock here: the caller passes the nonce
(32 lowercase hex characters, 128 random bits) and ``now``.
"""

import hashlib
import json
import re

from . import payload
from .fields import format_time

SIGNED_FIELDS = ("joinNonce", "joinTimestamp", "joinHMAC")
NONCE_RE = re.compile(r"^[0-9a-f]{32}$")


def _empty(value):
    return value is None or (isinstance(value, str) and not value.strip())


def _copy(value):
    """Deep copy of parsed YAML/JSON (mappings, lists, scalars): the copy module is outside the core's stdlib."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    return value


def is_intent(spec):
    """True when any of SIGNED_FIELDS is missing or empty: the claim is an intent the agent signs."""
    spec = spec if isinstance(spec, dict) else {}
    return any(_empty(spec.get(key)) for key in SIGNED_FIELDS)


def sign_claim(spec, key, nonce, now, wg_public_key=None):
    """A deep copy of ``spec`` signed with ``key`` (join-token bytes) at ``now`` with ``nonce``.

    joinNonce = ``nonce``, joinTimestamp = format_time(now), wireGuard.publicKey = ``wg_public_key`` unless it
    is None, joinHMAC = payload.join_hmac over the canonical payload of the result (lowercase hex).  Raises
    ValueError naming the field and the rule for a bad nonce or an empty key (never quoting the key).
    """
    if not isinstance(spec, dict):
        raise ValueError("spec [type] must be a mapping")
    if not isinstance(nonce, str) or not NONCE_RE.match(nonce):
        raise ValueError("spec.joinNonce [join-nonce-format] must be 32 lowercase hexadecimal characters "
                         "(128 random bits)")
    if not isinstance(key, (bytes, bytearray)) or not key:
        raise ValueError("key [join-token] must be non-empty bytes (the policy's join token)")
    if now is None or not hasattr(now, "astimezone"):
        raise ValueError("joinTimestamp [time] now must be a datetime")
    signed = _copy(spec)
    signed.pop("joinHMAC", None)
    signed["joinNonce"] = nonce
    signed["joinTimestamp"] = format_time(now)
    if wg_public_key is not None:
        wireguard = signed.get("wireGuard")
        if not isinstance(wireguard, dict):
            wireguard = signed["wireGuard"] = {}
        wireguard["publicKey"] = wg_public_key
    signed["joinHMAC"] = payload.join_hmac(bytes(key), signed)
    return signed


def intent_digest(spec):
    """'sha256:<hex>' over the spec without SIGNED_FIELDS and wireGuard.publicKey (canonical JSON, sort_keys).

    Equal for a claim and every signed version of it: the agent compares it to notice an operator's change.
    """
    bare = _copy(spec) if isinstance(spec, dict) else {}
    for key in SIGNED_FIELDS:
        bare.pop(key, None)
    wireguard = bare.get("wireGuard")
    if isinstance(wireguard, dict):
        wireguard.pop("publicKey", None)
        if not wireguard:
            del bare["wireGuard"]
    text = json.dumps(bare, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
