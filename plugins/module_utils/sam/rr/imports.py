# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks on records and nonces replicated from the peer RR, before they reach the store (issue 17, class 7).

The peer is trusted to hold the admin token, not to have checked everything: it may run an older release,
or have stored a record before a rule existed.  So an imported record gets what a submission gets (the
validator's rules and the join HMAC, at the time the peer accepted it) plus sanity checks on the fields
only a record has; a bad one is refused on its own and never reaches the store, the registry or a log line
unescaped.  A record this RR already holds under the same nonce only carries its revocation and expiry.
"""

from ..core import identifiers
from ..core.fields import log_text, parse_time, unicode_problem
from ..core.registry import Rejection
from ..core.validate import DEFAULT_SKEW

MAX_TEXT = 256            # nonces, policy names, timestamps: routerd's are far shorter
MAX_REASON = 1024
MAX_GENERATION = 2 ** 31 - 1
_REQUIRED = (("name", str), ("policy", str), ("nonce", str), ("spec", dict), ("generation", int),
             ("acceptedAt", str))


def _refuse(index, field, rule, message):
    raise Rejection(422, rule, "records[%d].%s: %s" % (index, field, message))


def _time(index, field, value, now):
    when = parse_time(value) if isinstance(value, str) and len(value) <= MAX_TEXT else None
    if when is None:
        _refuse(index, field, "time-format", "must be an RFC 3339 timestamp")
    if when > now + DEFAULT_SKEW:
        _refuse(index, field, "time-future", "%s is in the future" % value)
    return when


def check_record(registry, index, record, local, now):
    """Rejection (422) unless ``record`` may be imported; ``local`` is this RR's record of that name, if any."""
    accepted = _check_fields(registry, index, record, now)
    if local is not None and local["nonce"] == record["nonce"] and local["policy"] == record["policy"]:
        return  # the claim this RR already checked: only revocation and an earlier expiry come from the peer
    spec = record["spec"]
    if spec.get("joinNonce") != record["nonce"] or spec.get("policyRef") not in (
            record["policy"], "SAMEnrollmentPolicy/" + record["policy"]):
        _refuse(index, "spec", "record-mismatch", "spec.joinNonce and spec.policyRef must match the record's "
                "nonce and policy")
    # The rules a submission met, at the moment the peer accepted it (a lease that ended since is no reason).
    registry.check(record["name"], spec, registry.tokens, accepted)


def _check_fields(registry, index, record, now):
    """The fields only a record has; returns its acceptedAt as a datetime."""
    if not isinstance(record, dict):
        raise Rejection(422, "malformed-record", "records[%d]: must be an object" % index)
    for key, kind in _REQUIRED:
        value = record.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            _refuse(index, key, "malformed-record", "must be %s" % ("an integer" if kind is int else kind.__name__))
    try:
        problem = unicode_problem(record)
    except RecursionError:
        problem = "is nested too deeply"
    if problem:
        _refuse(index, "spec", "malformed-record", problem)
    if not identifiers.is_identifier(record["name"]):
        _refuse(index, "name", identifiers.RULE, identifiers.problem(record["name"]))
    if record["policy"] not in registry.mesh.policies:
        _refuse(index, "policy", "unknown-policy", "SAMEnrollmentPolicy/%s is not one of this RR's policies"
                % identifiers.show(record["policy"]))
    if not 1 <= record["generation"] <= MAX_GENERATION:
        _refuse(index, "generation", "malformed-record", "must be between 1 and %d" % MAX_GENERATION)
    if len(record["nonce"]) > MAX_TEXT or not record["nonce"].isprintable():
        _refuse(index, "nonce", "malformed-record", "must be printable text of at most %d characters" % MAX_TEXT)
    accepted = _time(index, "acceptedAt", record["acceptedAt"], now)
    _expiry(index, record.get("expiresAt"))
    reason = record.get("revokedReason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        _refuse(index, "revokedReason", "malformed-record", "must be text of at most %d characters" % MAX_REASON)
    return accepted


def _expiry(index, value):
    if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT or parse_time(value) is None):
        _refuse(index, "expiresAt", "time-format", "must be an RFC 3339 timestamp or null")


def nonce_problem(index, nonce, now):
    """Why a replicated nonce entry cannot be stored, or None."""
    if not isinstance(nonce, dict):
        return "nonces[%d]: must be an object" % index
    for key in ("policy", "nonce", "claim", "usedAt"):
        value = nonce.get(key)
        if not isinstance(value, str) or not value or len(value) > MAX_TEXT or not value.isprintable():
            return "nonces[%d].%s: must be printable text of at most %d characters" % (index, key, MAX_TEXT)
        if unicode_problem(value):
            return "nonces[%d].%s: %s" % (index, key, unicode_problem(value))
    used = parse_time(nonce["usedAt"])
    if used is None or used > now + DEFAULT_SKEW:
        return "nonces[%d].usedAt: must be an RFC 3339 timestamp, not in the future" % index
    until = nonce.get("validUntil")
    if until is not None and (not isinstance(until, str) or len(until) > MAX_TEXT or parse_time(until) is None):
        return "nonces[%d].validUntil: must be an RFC 3339 timestamp or null" % index
    return None


def refusal(index, item, rule, message, kind="records"):
    """The answer's entry for one refused item (names escaped: the peer sees it, the audit stores it)."""
    name = item.get("name") if isinstance(item, dict) and kind == "records" else None
    if isinstance(name, str) and identifiers.is_identifier(name):
        ref = "SAMEnrollmentClaim/" + name
    else:
        ref = "%s[%d]" % (kind, index)
    return {"ref": ref, "rule": rule, "message": log_text(message, 500)}
