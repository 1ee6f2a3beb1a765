# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Enrollment wire format (routerd's control API) and the response MAC that lets a leaf tell a real RR.

The response MAC is our addition, in the ``X-Boma-Response-MAC`` header, keyed with the join token that
signed the claim.  Only a holder of the join token can produce it, so an impostor RR that answers the leaf
is refused.  Version 2 (``v2=<hex>``) is bound to the request: the leaf sends a fresh ``X-Boma-Request-Nonce``
with every request and the MAC covers the status, method, request target, that nonce, the claim digest the
answer is about and the body, so an answer recorded earlier or for another request is refused (issue 17
class 4).  A request without a nonce (a 0.1.x leaf) gets the legacy MAC over the body alone, which can be
replayed; docs/api.md, "Response MAC".
"""

import hashlib
import hmac
import re

API_PREFIX = "/api/control.routerd.net/v1alpha1"
CONTROL_API_VERSION = "control.routerd.net/v1alpha1"
CLAIM_API_VERSION = "mobility.routerd.net/v1alpha1"
RESPONSE_MAC_HEADER = "X-Boma-Response-MAC"
REQUEST_NONCE_HEADER = "X-Boma-Request-Nonce"
REQUEST_NONCE_RULE = "request-nonce"
MAC_V2_PREFIX = "v2="
# The leaf's downgrade for an RR that sends no response MAC (routerd's): docs/api.md, "A boma leaf with a routerd RR".
RESPONSE_MAC_REQUIRED = "required"
RESPONSE_MAC_OPTIONAL = "optional"
RESPONSE_MAC_CHOICES = (RESPONSE_MAC_REQUIRED, RESPONSE_MAC_OPTIONAL)
NO_DIGEST = "-"
_NONCE_RE = re.compile(r"[0-9a-f]{16,64}")
MAX_BODY = 64 * 1024
# Replication (issue 17, class 6).  The admin-only records POST takes bigger bodies than a submission, so any
# record (its spec came in under MAX_BODY) fits in one; the pusher splits its backlog into bodies of at most
# this size and PUSH_ITEMS records and nonces.  GET records answers pages of at most RECORDS_PAGE (by default;
# ``limit`` up to RECORDS_PAGE_MAX) records and nonces and RECORDS_PAGE_BYTES, far below the client's 8 MiB.
MAX_RECORDS_BODY = 1024 * 1024
PUSH_ITEMS = 500
RECORDS_PAGE = 500
RECORDS_PAGE_MAX = 5000
RECORDS_PAGE_BYTES = 2 * 1024 * 1024


class MacKey:
    """What an answer's response MAC is made with: the join token's key bytes and the claimDigest of the claim
    version the answer is about (None: "-").  Its repr never shows the key."""

    __slots__ = ("key", "digest")

    def __init__(self, key, digest):
        self.key, self.digest = bytes(key), digest

    def __repr__(self):
        return "MacKey(key=<hidden>, digest=%r)" % (self.digest,)


def submit_path():
    return API_PREFIX + "/sam-enrollment-claims"


def topology_path(rrset_name, claim_name):
    return "%s/sam-enrollment-topologies/%s?claim=SAMEnrollmentClaim/%s" % (API_PREFIX, rrset_name, claim_name)


def revoke_path(claim_name):
    return "%s/sam-enrollment-claims/%s/revoke" % (API_PREFIX, claim_name)


def expiry_path(claim_name):
    return "%s/sam-enrollment-claims/%s/expiry" % (API_PREFIX, claim_name)


def claims_path(retiring=False):
    return API_PREFIX + "/sam-enrollment-claims" + ("?retiring=true" if retiring else "")


def audit_path(limit=100):
    return "%s/sam-enrollment-audit?limit=%d" % (API_PREFIX, limit)


def records_path(after=None, limit=None):
    """POST: import; GET: one page (``limit`` records and nonces after the page cursor ``after``, URL-safe)."""
    query = ([] if limit is None else ["limit=%d" % limit]) + ([] if after is None else ["after=" + after])
    return API_PREFIX + "/sam-enrollment-records" + ("?" + "&".join(query) if query else "")


def health_path():
    return API_PREFIX + "/health"


def error_body(code, rule, message, findings=()):
    """The JSON error document every non-2xx answer carries (never a secret, never a traceback)."""
    return {"error": {"code": code, "rule": rule, "message": message, "findings": list(findings)}}


def submit_request(name, spec):
    """Body of a claim submission, as routerd's SAMEnrollmentClaimSubmitRequest."""
    return {"apiVersion": CONTROL_API_VERSION, "kind": "SAMEnrollmentClaimSubmitRequest",
            "claim": {"apiVersion": CLAIM_API_VERSION, "kind": "SAMEnrollmentClaim", "metadata": {"name": name},
                      "spec": spec}}


def response_mac(key, body):
    """Lowercase hex HMAC-SHA256 of the response body bytes keyed with the join token bytes."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_response_mac(key, body, mac):
    """The legacy (body-only) MAC; the leaf client no longer accepts it, it checks ``verify_response_mac_v2``."""
    if not isinstance(mac, str):
        return False
    return hmac.compare_digest(response_mac(key, body).encode("ascii"), mac.strip().encode("utf-8", "replace"))


def is_request_nonce(value):
    """A request nonce the RR accepts: 16 to 64 lowercase hex characters (the leaf sends 32: 16 random bytes)."""
    return isinstance(value, str) and _NONCE_RE.fullmatch(value) is not None


def response_mac_input(status, method, target, nonce, digest, body):
    """The bytes the v2 MAC covers; ``target`` is the request target as the RR received it (path?query, without
    the endpoint's base path), ``digest`` the claimDigest of the claim the answer is about or None."""
    head = "boma-response-mac/2\n%d\n%s %s\n%s\n%s\n" % (status, method, target, nonce, digest or NO_DIGEST)
    return head.encode("utf-8", "replace") + body


def response_mac_v2(key, status, method, target, nonce, digest, body):
    """``v2=`` and the lowercase hex HMAC-SHA256 of ``response_mac_input`` keyed with the join token bytes."""
    data = response_mac_input(status, method, target, nonce, digest, body)
    return MAC_V2_PREFIX + hmac.new(key, data, hashlib.sha256).hexdigest()


def verify_response_mac_v2(key, mac, status, method, target, nonce, digest, body):
    """True only for a v2 MAC over exactly this request, status, digest and body (a legacy MAC is refused)."""
    if not isinstance(mac, str) or not key or not is_request_nonce(nonce):
        return False
    expected = response_mac_v2(bytes(key), status, method, target, nonce, digest, body)
    return hmac.compare_digest(expected.encode("ascii"), mac.strip().encode("utf-8", "replace"))


def response_mac_header(key, body, status, method, target, nonce, digest):
    """The RR's header value: v2 when the request carried a nonce, else the legacy body-only MAC (0.1.x leaves)."""
    if nonce is None:
        return response_mac(key, body)
    return response_mac_v2(key, status, method, target, nonce, digest, body)
