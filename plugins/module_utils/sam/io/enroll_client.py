# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edge (does I/O): the leaf's enrollment client: submit the claim, fetch the RRSet, persist the state.

When to refresh and how long to back off are core/lease.py's decisions; http_client.py does the exchanges.
No exception, result or state holds a token.
"""

import datetime
import json
import secrets
from dataclasses import dataclass, field

from ..core import lease, wire
from ..core.fields import parse_time
from ..core.model import split_ref
from .atomic import replace_file
from .bearer import bearer_token
from .http_client import (
    DEFAULT_TIMEOUT,
    ApiError,
    Endpoint,
    EnrollError,
    TransportError,
    api_error,
    check_name,
    json_object,
    parse_endpoint,
    request,
)

MAX_STATE = 4 * 1024 * 1024
# A topology without an expiry is re-fetched after this long, so a later admin expiry or revocation is seen.
DEFAULT_LEASE = datetime.timedelta(hours=1)
# Answers that another RR may well answer differently; every other 4xx is the RRs' verdict on the claim.
RETRY_STATUSES = (408, 429)

# Re-exported: the modules sam_enroll and sam_claim and the tests reach the transport through this file.
__all__ = ["ApiError", "Endpoint", "EnrollError", "TransportError", "check_name", "parse_endpoint", "request"]


class _Skip(Exception):
    """This endpoint gave no usable answer; the next one is tried (``rule`` classifies why)."""

    def __init__(self, rule, message):
        super().__init__(message)
        self.rule = rule


@dataclass
class JoinResult:
    ok: bool                # no failure in this run (also when nothing had to be done)
    changed: bool           # a refresh brought a new lease or RRSet
    reason: str             # lease.refresh_decision's reason ("fresh", "backoff", "expired", ..., or "forced")
    attempted: bool         # endpoints were contacted, so ``state`` is new and should be written
    state: dict = None
    endpoint: str = None    # the RR that answered (the refresh or a definitive refusal)
    rule: str = None
    error: str = None
    findings: tuple = ()
    skipped: list = field(default_factory=list)   # why earlier endpoints were passed over
    not_before: object = None
    mac_verified: bool = None   # the answering RR's answers carried a valid response MAC (False: none, optional)


def public_state(state):
    """What may be shown (diff, logs): lease and RRSet member names; the state never holds tokens anyway."""
    if not state:
        return {}
    rrset = state.get("rrSet") if isinstance(state.get("rrSet"), dict) else {}
    spec = rrset.get("spec") if isinstance(rrset.get("spec"), dict) else rrset
    members = spec.get("members") if isinstance(spec.get("members"), list) else []
    meta = rrset.get("metadata") if isinstance(rrset.get("metadata"), dict) else {}
    return {"claimDigest": state.get("claimDigest"), "expiresAt": state.get("expiresAt"),
            "rrSet": meta.get("name"),
            "members": [m.get("nodeRef") if isinstance(m, dict) else str(m) for m in members],
            "failures": int(state.get("failures") or 0), "nextAttemptAt": state.get("nextAttemptAt")}


def _lease(state):
    state = state or {}
    return state.get("claimDigest"), state.get("expiresAt"), state.get("rrSet")


def _exchange(endpoint, ctx, method, path, body=None):
    """One request with a fresh random nonce -> (Response, (method, target, nonce) for the response MAC)."""
    nonce = secrets.token_hex(16)
    resp = request(endpoint, method, path, ctx["token"], body, ctx["timeout"], ctx["ca_file"],
                   headers={wire.REQUEST_NONCE_HEADER: nonce})
    return resp, (method, path, nonce)


def _signed(resp, join_key, sent, digest):
    """A v2 response MAC over this very request (method, target, nonce), the status, ``digest`` and the body.

    A legacy (body-only) MAC or one made for another request is refused: a recorded answer cannot be replayed.
    """
    method, target, nonce = sent
    return wire.verify_response_mac_v2(join_key, resp.headers.get(wire.RESPONSE_MAC_HEADER.lower()), resp.status,
                                       method, target, nonce, digest, resp.body)


def _verified_json(endpoint, resp, ctx, sent, digest, what):
    """The JSON answer when its MAC is valid; ``digest`` None: the claimDigest the answer states (a topology:
    the MAC binds the version the RR holds, and _join_one compares it with the leaf's own).

    With response_mac optional an answer WITHOUT the header is taken too (a routerd RR sends none) and the
    endpoint is marked unverified; a header that does not verify is still refused: a routerd RR never sends one,
    so a wrong MAC is an impostor or a tampered answer, never the downgrade's case.
    """
    doc = json_object(resp)
    if digest is None and doc is not None and isinstance(doc.get("claimDigest"), str):
        digest = doc["claimDigest"]
    if _signed(resp, ctx["key"], sent, digest):
        ctx["verified"].setdefault(str(endpoint), True)
    elif ctx["mac"] == wire.RESPONSE_MAC_OPTIONAL and wire.RESPONSE_MAC_HEADER.lower() not in resp.headers:
        ctx["verified"][str(endpoint)] = False
    else:
        raise _Skip("response-mac", "response MAC missing or invalid from %s (%s)" % (endpoint, what))
    if doc is None:
        raise _Skip("bad-response", "%s: %s answer is not a JSON object" % (endpoint, what))
    return doc


def _verdict(endpoint, resp, join_key, sent, digest):
    """Raise for a non-200 answer: ApiError when it is definitive, _Skip when another RR may do better.

    Only a refusal carrying a valid response MAC for this request and this claim (``digest``) is definitive: an
    impostor must not be able to stop the leaf from reaching the real RRs by answering first with a fake or
    replayed 4xx.  The RR leaves refusals of claims whose join HMAC did not verify unsigned, so those are
    never definitive either.
    """
    error = api_error(endpoint, resp)
    signed = _signed(resp, join_key, sent, digest)
    definitive = 400 <= resp.status < 500 and resp.status not in RETRY_STATUSES and not error.foreign and signed
    if definitive:
        raise error
    raise _Skip("server-error" if resp.status >= 500 else error.rule, error.describe())


def _join_one(endpoint, ctx):
    """Submit (or, after nonce-replay, only fetch) at one endpoint -> the verified topology document."""
    resp, sent = _exchange(endpoint, ctx, "POST", wire.submit_path(), wire.submit_request(ctx["name"], ctx["spec"]))
    if resp.status == 200:
        doc = _verified_json(endpoint, resp, ctx, sent, ctx["digest"], "submit")
        if doc.get("accepted") is not True:
            raise _Skip("bad-response", "%s: submit answer without accepted: true" % endpoint)
    elif resp.status != 409 or api_error(endpoint, resp).rule != "nonce-replay":
        _verdict(endpoint, resp, ctx["key"], sent, ctx["digest"])
    # Accepted now or earlier (nonce-replay: a restart or refresh of the same signed claim): fetch the RRSet.
    return _fetch_one(endpoint, ctx)


def _fetch_one(endpoint, ctx):
    """The verified topology document of an accepted claim at one endpoint (GET only, no claim sent)."""
    resp, sent = _exchange(endpoint, ctx, "GET", wire.topology_path(ctx["rrset"], ctx["name"]))
    if resp.status != 200:
        _verdict(endpoint, resp, ctx["key"], sent, ctx["digest"])
    doc = _verified_json(endpoint, resp, ctx, sent, None, "topology")
    # A routerd RR states its own digest form; only an answer without a MAC can come from one.
    digests = (ctx["digest"],) if ctx["verified"][str(endpoint)] else (ctx["digest"], ctx["routerd_digest"])
    if doc.get("claimDigest") not in digests:
        raise _Skip("claim-digest", "%s holds another version of SAMEnrollmentClaim/%s (claimDigest differs); "
                    "a changed claim needs a new joinNonce, joinTimestamp and joinHMAC" % (endpoint, ctx["name"]))
    rrset = doc.get("rrSet")
    if not isinstance(rrset, dict):
        raise _Skip("bad-response", "%s: topology answer without an rrSet mapping" % endpoint)
    meta = rrset.get("metadata") if isinstance(rrset.get("metadata"), dict) else {}
    if meta.get("name", ctx["rrset"]) != ctx["rrset"]:
        raise _Skip("bad-response", "%s: topology is for SAMRRSet/%s, not %s" % (endpoint, meta["name"], ctx["rrset"]))
    return doc


@dataclass
class Exchange:
    """What one pass over the endpoints gave: a verified topology, a definitive refusal, or nothing usable."""
    ok: bool
    doc: dict = None        # the verified topology document (ok)
    endpoint: str = None    # the RR that answered (the topology or a definitive refusal)
    rule: str = None
    error: str = None
    findings: tuple = ()
    definitive: bool = False   # an ApiError with a valid response MAC: the RRs' verdict on this claim
    skipped: list = field(default_factory=list)
    unreachable: list = field(default_factory=list)   # endpoints that did not answer at all
    mac_verified: bool = None  # False: ``endpoint``'s answers had no response MAC (taken: response_mac optional)


def _mac_mode(response_mac):
    if response_mac not in wire.RESPONSE_MAC_CHOICES:
        raise ValueError("response_mac must be one of %s, not %r" % (", ".join(wire.RESPONSE_MAC_CHOICES),
                                                                     response_mac))
    return response_mac


def _context(claim_name, claim_spec, api_token, join_key, timeout, ca_file, response_mac=wire.RESPONSE_MAC_REQUIRED):
    """The per-run context; ValueError for local input problems (names, tokens, key, response_mac)."""
    if not join_key:
        raise ValueError("a join token is required to verify the RR's response MAC")
    _mac_mode(response_mac)
    rrset = split_ref(claim_spec.get("rrSetRef"), "SAMRRSet")
    if not rrset:
        raise ValueError("SAMEnrollmentClaim/%s spec.rrSetRef must name a SAMRRSet" % claim_name)
    return {"name": check_name(claim_name), "spec": claim_spec, "rrset": check_name(rrset, "RRSet name"),
            "token": bearer_token(api_token), "key": join_key, "digest": lease.claim_digest(claim_spec),
            "routerd_digest": lease.routerd_claim_digest(claim_spec), "timeout": timeout, "ca_file": ca_file,
            "mac": response_mac, "verified": {}}


def _each(endpoints, ctx, one):
    """``one(endpoint, ctx)`` at each endpoint in order until one gives a topology or a definitive refusal."""
    endpoints = [parse_endpoint(e) for e in endpoints]
    if not endpoints:
        raise ValueError("no RR endpoint given")
    skipped, rules, unreachable = [], [], []
    for endpoint in endpoints:
        try:
            doc = one(endpoint, ctx)
        except TransportError as exc:
            rules.append("unreachable")
            skipped.append(str(exc))
            unreachable.append(str(endpoint))
            continue
        except _Skip as exc:
            rules.append(exc.rule)
            skipped.append(str(exc))
            continue
        except ApiError as exc:
            return Exchange(False, None, str(endpoint), exc.rule, exc.detail(), exc.findings, True, skipped,
                            unreachable, mac_verified=True), exc
        return Exchange(True, doc, str(endpoint), skipped=skipped, unreachable=unreachable,
                        mac_verified=ctx["verified"].get(str(endpoint), True)), None
    rule = rules[0] if len(set(rules)) == 1 else "all-rrs-failed"
    return Exchange(False, None, None, rule, "no RR gave a usable answer: " + "; ".join(skipped), (), False,
                    skipped, unreachable), None


def submit_and_fetch(endpoints, claim_name, claim_spec, api_token, join_key, timeout=DEFAULT_TIMEOUT, ca_file=None,
                     response_mac=wire.RESPONSE_MAC_REQUIRED):
    """Submit a signed claim to the first RR that answers usably and fetch its RRSet there -> Exchange."""
    ctx = _context(claim_name, claim_spec, api_token, join_key, timeout, ca_file, response_mac)
    return _each(endpoints, ctx, _join_one)[0]


def fetch_topology(endpoints, claim_name, claim_spec, api_token, join_key, timeout=DEFAULT_TIMEOUT, ca_file=None,
                   response_mac=wire.RESPONSE_MAC_REQUIRED):
    """Only fetch the RRSet of an accepted ``claim_spec`` (no claim sent) from the first RR that answers -> Exchange."""
    ctx = _context(claim_name, claim_spec, api_token, join_key, timeout, ca_file, response_mac)
    return _each(endpoints, ctx, _fetch_one)[0]


def decide(state, claim_spec, now, force=False):
    """lease.refresh_decision, or an unconditional refresh when forced."""
    if force:
        return lease.Decision(True, "forced")
    return lease.refresh_decision(state, claim_spec, now)


def join(endpoints, claim_name, claim_spec, api_token, join_key, state, now, jitter, force=False,
         timeout=DEFAULT_TIMEOUT, ca_file=None, response_mac=wire.RESPONSE_MAC_REQUIRED):
    """One leaf enrollment run; ``now`` is an aware datetime, ``jitter`` a number in [0, 1).

    Returns a JoinResult; raises ValueError only for local input problems (names, tokens, key, response_mac).
    """
    _mac_mode(response_mac)   # a typo must not wait for the next refresh to show
    decision = decide(state, claim_spec, now, force)
    if not decision.refresh:
        return JoinResult(True, False, decision.reason, False, state, not_before=decision.not_before)
    ctx = _context(claim_name, claim_spec, api_token, join_key, timeout, ca_file, response_mac)
    got, exc = _each(endpoints, ctx, _join_one)
    if exc is not None:
        new = lease.after_failure(state, now, jitter, exc.describe(), claim_spec)
        return JoinResult(False, False, decision.reason, True, new, got.endpoint, got.rule, got.error,
                          got.findings, got.skipped)
    if got.ok:
        doc = got.doc
        expires = parse_time(doc.get("expiresAt")) or now + DEFAULT_LEASE
        new = lease.after_success(claim_spec, doc["rrSet"], expires, now)
        return JoinResult(True, _lease(new) != _lease(state), decision.reason, True, new, got.endpoint,
                          skipped=got.skipped, mac_verified=got.mac_verified)
    new = lease.after_failure(state, now, jitter, "%s: %s" % (got.rule, got.error), claim_spec)
    return JoinResult(False, False, decision.reason, True, new, None, got.rule, got.error, (), got.skipped)


# --- state file ------------------------------------------------------------------------------------------------


def read_state(path):
    """(state, note): (None, None) without a file; (None, why) when it cannot be used, so the leaf starts over."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_STATE + 1)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, "state file %s is unreadable (%s); starting over" % (path, (exc.strerror or "error").lower())
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, "state file %s is not valid JSON; starting over" % path
    if not isinstance(doc, dict):
        return None, "state file %s is not a JSON object; starting over" % path
    return doc, None


def write_state(path, state):
    """Replace the state file atomically and durably (io/atomic.py), mode 0600: a reboot never brings back an old
    lease."""
    replace_file(path, (json.dumps(state, sort_keys=True, indent=2) + "\n").encode("utf-8"), mode=0o600)
